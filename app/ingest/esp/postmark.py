"""Postmark webhooks: not signed, so authenticated by HTTP Basic credentials in the hook's URL.

Postmark signs nothing; the documented way to know a webhook is Postmark's is to give it a URL
with credentials (``https://user:pass@host/...``), which Postmark sends as
``Authorization: Basic``. The user chooses both, Clickmap compares them with the whole
``user:pass`` in constant time, so a guess learns nothing from timing, not even which half was
wrong. There is no timestamp or nonce to check: HTTPS is what keeps the credentials secret.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any

from app.ingest.esp import (
    DEFAULT_ID_KEY,
    DeliveryEvent,
    EventKind,
    WebhookRejected,
    from_iso,
    load_json,
    text_or_none,
)

ESP = "postmark"

# Bounce ``Type``s that say the address will never accept mail, and those that may clear up.
PERMANENT_BOUNCES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
TRANSIENT_BOUNCES = frozenset({"SoftBounce", "Transient", "DnsError", "Blocked"})
# Bounce records that are not a failure to deliver: automatic replies and list chatter.
NOT_BOUNCES = frozenset(
    {
        "AutoResponder",
        "AddressChange",
        "Subscribe",
        "Unsubscribe",
        "ChallengeVerification",
        "OpenRelayTest",
    }
)


def verify(authorization: str | None, username: str, password: str) -> None:
    """Accept the request only if its ``Authorization`` header holds exactly the configured
    Basic credentials. Raises ``WebhookRejected`` (``bad_credentials``); empty configured
    credentials are a configuration error (``ValueError``), never an open door."""
    if not username or not password:
        raise ValueError("Postmark webhook credentials must not be empty")
    expected = f"{username}:{password}".encode()
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        raise WebhookRejected("bad_credentials", "no Basic credentials")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise WebhookRejected("bad_credentials", "the credentials are not base64") from None
    if not hmac.compare_digest(given, expected):
        raise WebhookRejected("bad_credentials", "the credentials do not match")


def _kind(record: Mapping[str, Any]) -> tuple[EventKind, bool | None, str, str] | None:
    """(event, permanent, recipient field, time field) for the record types we keep."""
    match record.get("RecordType"):
        case "Delivery":
            return "delivered", None, "Recipient", "DeliveredAt"
        case "SpamComplaint":
            return "complained", None, "Email", "BouncedAt"
        case "Bounce" if isinstance(record.get("Type"), str | None) and (
            record.get("Type") not in NOT_BOUNCES
        ):
            kind = record.get("Type")
            permanent = (
                True if kind in PERMANENT_BOUNCES else False if kind in TRANSIENT_BOUNCES else None
            )
            return "bounced", permanent, "Email", "BouncedAt"
    return None


def parse(
    body: bytes | str | Mapping[str, Any], *, id_key: str = DEFAULT_ID_KEY
) -> list[DeliveryEvent]:
    """The delivery event of a verified webhook (Postmark posts one record per request).

    ``id_key`` names the ``Metadata`` field that carries the sender's id.
    """
    record = body if isinstance(body, Mapping) else load_json(body)
    if not isinstance(record, Mapping):
        raise WebhookRejected("malformed", "the body is not a JSON object")
    found = _kind(record)
    if found is None:
        return []
    kind, permanent, recipient_field, time_field = found
    metadata = record.get("Metadata")
    message_id = text_or_none(metadata.get(id_key)) if isinstance(metadata, Mapping) else None
    raw_type = str(record.get("RecordType"))
    if kind == "bounced":
        raw_type += f"/{record.get('Type')}"
    return [
        DeliveryEvent(
            esp=ESP,
            event=kind,
            message_id=message_id,
            recipient=text_or_none(record.get(recipient_field)),
            occurred_at=from_iso(record.get(time_field)),
            permanent=permanent,
            raw_type=raw_type,
        )
    ]
