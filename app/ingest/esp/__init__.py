"""Delivery events from email service providers: verify a webhook, then read its events.

Each ESP gets a module with two pure functions: ``verify`` decides whether a request really
comes from the ESP (and refuses it with a ``WebhookRejected`` otherwise), ``parse`` turns the
verified body into ``DeliveryEvent`` values. Nothing here touches requests, the database or the
network: the caller passes the raw body, the headers it needs, the configured secrets, and any
state (tokens already seen, a certificate fetcher) as arguments, so every rule is testable with
keys made in the test. docs/esp-webhooks.md describes each ESP's setup.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

EventKind = Literal["delivered", "bounced", "complained", "dropped"]

DEFAULT_ID_KEY = "clickmap_id"
DEFAULT_TOLERANCE_SECONDS = 300.0


class WebhookRejected(Exception):
    """A webhook that must not be believed. ``code`` is stable; the message is for logs.

    Codes: ``bad_signature``, ``stale_timestamp``, ``replayed``, ``bad_certificate_url``,
    ``unexpected_topic``, ``malformed``, ``bad_credentials``, ``bad_subscribe_url``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One recipient's delivery outcome, the same shape whatever ESP reported it.

    ``message_id`` is the sender's own id carried through the ESP (the ``clickmap_id`` custom
    field by default), which is what ties the event to a campaign and recipient; ``permanent``
    is only known for bounces (None elsewhere, or when the ESP cannot tell).
    """

    esp: str
    event: EventKind
    message_id: str | None
    recipient: str | None
    occurred_at: datetime | None
    permanent: bool | None
    raw_type: str


def check_fresh(timestamp: object, tolerance: float, now: float | None) -> float:
    """The request's Unix timestamp, refused when it is further than ``tolerance`` from now.

    A captured, validly signed request can be sent again later; a window bounds how long.
    Future timestamps are refused too, so a clock skewed on purpose does not extend it.
    """
    try:
        value = float(str(timestamp).strip())
    except ValueError:
        raise WebhookRejected("malformed", "the timestamp is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise WebhookRejected("malformed", "the timestamp is not a number")
    current = time.time() if now is None else now
    if abs(current - value) > tolerance:
        raise WebhookRejected("stale_timestamp", "the timestamp is outside the allowed window")
    return value


def load_json(body: bytes | str) -> Any:
    """The body's JSON, or ``malformed``: ESPs post JSON, anything else is not theirs."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays nested thousands deep, which no ESP posts.
        raise WebhookRejected("malformed", "the body is not JSON") from None


def from_unix(value: object) -> datetime | None:
    """A Unix timestamp (seconds, int or float) as an aware UTC datetime, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso(value: object) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset, up to 7 fraction digits) as UTC, else None.

    .NET writes 7 fraction digits (Postmark) where Python reads at most 6; the extra digit is
    dropped, as it is below a microsecond.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def text_or_none(value: object) -> str | None:
    """A non-empty string, else None: ids and addresses are strings or absent."""
    return value if isinstance(value, str) and value else None
