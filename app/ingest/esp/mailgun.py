"""Mailgun webhooks: an HMAC-SHA256 of timestamp + token, a time window and one use per token.

Mailgun posts ``{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}``; the
signature is ``hex(HMAC-SHA256(webhook signing key, timestamp + token))``. It does not cover
``event-data``, so what makes a captured request useless to replay is the token: each is
random and may be accepted once. The caller keeps the tokens it has accepted (for longer than
the window) and answers ``seen(token)``; this module stays pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from app.ingest.esp import (
    DEFAULT_ID_KEY,
    DEFAULT_TOLERANCE_SECONDS,
    DeliveryEvent,
    EventKind,
    WebhookRejected,
    check_fresh,
    from_unix,
    load_json,
    text_or_none,
)

ESP = "mailgun"


def _body(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    data = body if isinstance(body, Mapping) else load_json(body)
    if not isinstance(data, Mapping):
        raise WebhookRejected("malformed", "the body is not a JSON object")
    return data


def verify(
    body: bytes | str | Mapping[str, Any],
    signing_key: str,
    seen: Callable[[str], bool],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Accept the webhook only if its signature block is Mailgun's, recent and new.

    ``body`` is the posted JSON (raw or already decoded); ``signing_key`` is the domain's
    HTTP webhook signing key. Checks run in order signature, window, replay, so ``seen`` is
    asked only about authentic, recent tokens: the caller may record the token there (an
    insert that reports whether it existed is race-free). Raises ``WebhookRejected``.
    """
    if not signing_key:
        # Anyone can compute an HMAC under an empty key: a missing setting must not pass.
        raise ValueError("the Mailgun webhook signing key must not be empty")
    block = _body(body).get("signature")
    if not isinstance(block, Mapping):
        raise WebhookRejected("malformed", "the signature block is missing")
    raw_timestamp, token, signature = (block.get(k) for k in ("timestamp", "token", "signature"))
    # Mailgun sends the timestamp as a string; a client library may have made it a number.
    timestamp = str(raw_timestamp) if type(raw_timestamp) is int else raw_timestamp
    if not (
        isinstance(timestamp, str)
        and isinstance(token, str)
        and isinstance(signature, str)
        and timestamp
        and token
        and signature
    ):
        raise WebhookRejected("malformed", "timestamp, token and signature must be strings")
    # "surrogatepass": JSON may spell lone surrogates, which must fail the check, not encoding.
    expected = hmac.new(
        signing_key.encode("utf-8"),
        (timestamp + token).encode("utf-8", "surrogatepass"),
        hashlib.sha256,
    ).hexdigest()
    given = signature.lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise WebhookRejected("bad_signature", "the signature does not match")
    check_fresh(timestamp, tolerance, now)
    if seen(token):
        raise WebhookRejected("replayed", "this token was already used")


def _kind(event: Mapping[str, Any]) -> tuple[EventKind, bool | None] | None:
    raw = event.get("event")
    if raw == "delivered":
        return "delivered", None
    if raw == "complained":
        return "complained", None
    if raw == "failed" and event.get("severity") == "permanent":
        # Temporary failures are retried by Mailgun; only a permanent one is a bounce.
        return "bounced", True
    return None


def parse(
    body: bytes | str | Mapping[str, Any], *, id_key: str = DEFAULT_ID_KEY
) -> list[DeliveryEvent]:
    """The delivery event of a verified webhook (at most one: Mailgun posts one per request).

    ``id_key`` names the user variable (``X-Mailgun-Variables`` / ``v:`` parameters) that
    carries the sender's id.
    """
    event = _body(body).get("event-data")
    if not isinstance(event, Mapping):
        raise WebhookRejected("malformed", "event-data is missing")
    found = _kind(event)
    if found is None:
        return []
    kind, permanent = found
    variables = event.get("user-variables")
    message_id = text_or_none(variables.get(id_key)) if isinstance(variables, Mapping) else None
    return [
        DeliveryEvent(
            esp=ESP,
            event=kind,
            message_id=message_id,
            recipient=text_or_none(event.get("recipient")),
            occurred_at=from_unix(event.get("timestamp")),
            permanent=permanent,
            raw_type=str(event.get("event")),
        )
    ]
