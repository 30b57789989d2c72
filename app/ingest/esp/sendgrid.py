"""SendGrid's Event Webhook: ECDSA P-256 signatures over the timestamp and the raw body.

SendGrid signs ``timestamp + body`` (the bytes exactly as posted) with the account's key and
sends the base64 DER signature in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp
in ``X-Twilio-Email-Event-Webhook-Timestamp``. The verification key is the base64 DER
(SubjectPublicKeyInfo) string SendGrid's settings page shows. The body must be verified before
it is parsed: re-serialising JSON changes the bytes and breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

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

ESP = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# SendGrid's event names -> ours; every other event (processed, open, click, ...) is ignored.
EVENTS: Mapping[str, EventKind] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "dropped",
    "spamreport": "complained",
}


def load_public_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), refused unless it is P-256.

    A wrong or truncated key is a configuration error, so it raises ``ValueError`` rather
    than rejecting the request.
    """
    try:
        key = load_der_public_key(base64.b64decode(public_key.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the SendGrid verification key is not base64 DER") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the SendGrid verification key is not an ECDSA P-256 key")
    return key


def verify(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    public_key: str | ec.EllipticCurvePublicKey,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Accept the request only if SendGrid's key signed ``timestamp + body`` recently.

    ``signature`` and ``timestamp`` are the two headers' values; ``now`` (Unix seconds) is
    for tests. The signature is checked before the timestamp, so an unsigned request learns
    nothing about the window. Raises ``WebhookRejected``.
    """
    if not signature or not timestamp:
        raise WebhookRejected("bad_signature", "the signature or timestamp header is missing")
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise WebhookRejected("bad_signature", "the signature is not base64") from None
    try:
        key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise WebhookRejected("bad_signature", "the signature does not verify") from None
    check_fresh(timestamp, tolerance, now)


def parse(body: bytes | str, *, id_key: str = DEFAULT_ID_KEY) -> list[DeliveryEvent]:
    """The delivery events of a verified body (a JSON array of events; one object is taken
    as a batch of one). ``id_key`` names the custom arg that carries the sender's id."""
    data = load_json(body)
    items: list[Any] = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise WebhookRejected("malformed", "the body is not a JSON array of events")
    events = []
    for item in items:
        if not isinstance(item, dict):
            raise WebhookRejected("malformed", "an event is not a JSON object")
        raw_type = item.get("event")
        kind = EVENTS.get(raw_type) if isinstance(raw_type, str) else None
        if kind is None:
            continue
        permanent: bool | None = None
        if kind == "bounced":
            # "bounce" is a hard bounce; "blocked" is a refusal worth retrying later.
            permanent = {"bounce": True, "blocked": False}.get(str(item.get("type")))
        events.append(
            DeliveryEvent(
                esp=ESP,
                event=kind,
                message_id=text_or_none(item.get(id_key)),
                recipient=text_or_none(item.get("email")),
                occurred_at=from_unix(item.get("timestamp")),
                permanent=permanent,
                raw_type=str(raw_type),
            )
        )
    return events
