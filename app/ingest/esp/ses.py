"""Amazon SES events through SNS: the SNS message signature, its certificate's origin, the topic.

SNS signs each message with RSA (``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA) over
a canonical string of the message's fields, and names the certificate to check it with in
``SigningCertURL``. Anyone can post a message naming their own certificate, so the URL is the
crux: it must be https on ``sns.<region>.amazonaws.com`` (or ``.amazonaws.com.cn``), read with
the project's one URL parser and fetched exactly as parsed, by a caller-supplied
``fetch_certificate`` that must check TLS (it is injected so this module stays pure and tests
stay offline). A valid message from a topic the user did not configure is refused too: every
AWS account can publish to any endpoint it subscribes.

SES reaches SNS two ways, both read here: event publishing (a configuration set; the event's
kind is ``eventType``) and the older identity notifications (``notificationType``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.ingest.esp import (
    DEFAULT_ID_KEY,
    DeliveryEvent,
    EventKind,
    WebhookRejected,
    from_iso,
    load_json,
    text_or_none,
)
from app.urls import UnsafeDestination, parse_web_address

ESP = "ses"
DEFAULT_ID_HEADER = "X-Clickmap-Id"
DEFAULT_MAX_AGE_SECONDS = 3600.0

# The signed fields, in AWS's documented order; Subject is signed only when present.
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
FIELDS = {
    "Notification": NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": CONFIRMATION_FIELDS,
}
HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com")
SNS_HOST_CN = re.compile(r"sns\.cn-[a-z]+-\d\.amazonaws\.com\.cn")


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """A verified SNS message. ``subscribe_url`` (a SubscriptionConfirmation's, already
    checked to be SNS's own https address) is what the caller requests to confirm."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: datetime
    subscribe_url: str | None


def sns_address(value: object, *, allow_china: bool, code: str) -> str:
    """``value`` as SNS's own https address (the parser's serialization), else ``code``.

    The host is matched whole after the WHATWG parse, so ``sns.us-east-1.amazonaws.com.evil``,
    a path naming the host, user info or a port, and http all fail. The text must also be
    the parser's own serialization (AWS's addresses always are): an address another parser
    could read differently (``\\``, spaces, odd case) is refused rather than reinterpreted.
    """
    if not isinstance(value, str):
        raise WebhookRejected(code, "the address is missing")
    try:
        address = parse_web_address(value)
    except UnsafeDestination:
        raise WebhookRejected(code, "the address does not parse") from None
    host_ok = SNS_HOST.fullmatch(address.hostname) is not None or (
        allow_china and SNS_HOST_CN.fullmatch(address.hostname) is not None
    )
    if (
        address.scheme != "https"
        or not host_ok
        or address.port is not None
        or address.has_credentials
        or address.href != value
    ):
        raise WebhookRejected(code, "the address is not SNS's own https address")
    return address.href


def signing_string(message: Mapping[str, Any]) -> bytes:
    """AWS's canonical string: ``name\\nvalue\\n`` for each signed field, in order."""
    kind = message.get("Type")
    fields = FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise WebhookRejected("malformed", "unknown SNS message type")
    parts = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise WebhookRejected("malformed", f"the SNS field {name} is missing")
        parts.append(f"{name}\n{value}\n")
    # A lone surrogate (JSON allows "\ud800") is kept as bytes no signer produced: the
    # signature then fails, rather than the encoding.
    return "".join(parts).encode("utf-8", "surrogatepass")


def verify(
    body: bytes | str | Mapping[str, Any],
    *,
    topic_arns: Collection[str],
    fetch_certificate: Callable[[str], bytes],
    allow_china: bool = False,
    max_age: float | None = DEFAULT_MAX_AGE_SECONDS,
    now: datetime | None = None,
) -> SnsMessage:
    """The SNS message in ``body``, once its topic, certificate URL and signature check out.

    ``topic_arns`` are the configured topics; ``fetch_certificate(url)`` returns the PEM at
    the checked, normalized URL. A message whose ``Timestamp`` is more than ``max_age``
    seconds old (None: no limit) is refused, which bounds replays of captured messages.
    The cheap checks run first, so a forged message never makes Clickmap fetch anything.
    Raises ``WebhookRejected``.
    """
    message = body if isinstance(body, Mapping) else load_json(body)
    if not isinstance(message, Mapping):
        raise WebhookRejected("malformed", "the body is not a JSON object")
    if isinstance(topic_arns, str):  # ``in`` would match any substring of one ARN
        raise TypeError("topic_arns must be a collection of ARNs, not one string")
    data = signing_string(message)
    topic = message["TopicArn"]
    if topic not in topic_arns:
        raise WebhookRejected("unexpected_topic", "the message is from another topic")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise WebhookRejected("bad_signature", "unknown SignatureVersion")
    cert_url = sns_address(
        message.get("SigningCertURL"), allow_china=allow_china, code="bad_certificate_url"
    )
    if not cert_url.endswith(".pem"):
        raise WebhookRejected("bad_certificate_url", "the certificate URL is not a .pem")
    try:
        signature = base64.b64decode(str(message.get("Signature")), validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise WebhookRejected("bad_signature", "the signature is not base64") from None
    try:
        key = x509.load_pem_x509_certificate(fetch_certificate(cert_url)).public_key()
    except ValueError:
        raise WebhookRejected("bad_signature", "the signing certificate is unreadable") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected("bad_signature", "the signing certificate is not RSA")
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise WebhookRejected("bad_signature", "the signature does not verify") from None
    timestamp = from_iso(message["Timestamp"])
    if timestamp is None:
        raise WebhookRejected("malformed", "the Timestamp is not a time")
    current = now or datetime.now(UTC)
    if max_age is not None and abs((current - timestamp).total_seconds()) > max_age:
        raise WebhookRejected("stale_timestamp", "the message is too old")
    subscribe_url = None
    if message["Type"] == "SubscriptionConfirmation":
        subscribe_url = sns_address(
            message["SubscribeURL"], allow_china=allow_china, code="bad_subscribe_url"
        )
    return SnsMessage(
        type=message["Type"],
        message_id=message["MessageId"],
        topic_arn=topic,
        message=message["Message"],
        timestamp=timestamp,
        subscribe_url=subscribe_url,
    )


def _sender_id(mail: Mapping[str, Any], id_key: str, id_header: str | None) -> str | None:
    """The sender's id: the message tag ``id_key``, else the header ``id_header`` (SES
    includes headers only when the configuration set asks for them)."""
    tags = mail.get("tags")
    if isinstance(tags, Mapping):
        values = tags.get(id_key)
        if isinstance(values, list) and values and text_or_none(values[0]):
            return str(values[0])
    headers = mail.get("headers")
    if id_header and isinstance(headers, list):
        for header in headers:
            if isinstance(header, Mapping) and str(header.get("name")).lower() == (
                id_header.lower()
            ):
                return text_or_none(header.get("value"))
    return None


def _items(value: object) -> list[Any]:
    """A JSON array's items; anything else (absent, a string, a number) holds none."""
    return list(value) if isinstance(value, list) else []


def _addresses(value: object) -> list[Any]:
    """The ``emailAddress`` of each recipient object of a bounce or complaint."""
    return [r.get("emailAddress") for r in _items(value) if isinstance(r, Mapping)]


def _outcome(
    record: Mapping[str, Any], kind: str
) -> tuple[EventKind, bool | None, Mapping[str, Any], list[Any]] | None:
    """(event, permanent, the record's detail object, its recipients) for the kinds we keep."""
    if kind == "Delivery":
        detail = record.get("delivery")
        if isinstance(detail, Mapping):
            return "delivered", None, detail, _items(detail.get("recipients"))
    elif kind == "Bounce":
        detail = record.get("bounce")
        if isinstance(detail, Mapping):
            permanent = {"Permanent": True, "Transient": False}.get(str(detail.get("bounceType")))
            return "bounced", permanent, detail, _addresses(detail.get("bouncedRecipients"))
    elif kind == "Complaint":
        detail = record.get("complaint")
        if isinstance(detail, Mapping):
            return "complained", None, detail, _addresses(detail.get("complainedRecipients"))
    else:
        return None
    raise WebhookRejected("malformed", f"the {kind} record has no details")


def parse(
    message: SnsMessage | bytes | str | Mapping[str, Any],
    *,
    id_key: str = DEFAULT_ID_KEY,
    id_header: str | None = DEFAULT_ID_HEADER,
) -> list[DeliveryEvent]:
    """The delivery events of a verified SES record, one per recipient.

    ``message`` is a verified ``SnsMessage`` (confirmations yield nothing) or the SES record
    it carries (its ``Message``), raw or decoded.
    """
    if isinstance(message, SnsMessage):
        if message.type != "Notification":
            return []
        message = message.message
    record = message if isinstance(message, Mapping) else load_json(message)
    if not isinstance(record, Mapping):
        raise WebhookRejected("malformed", "the SES record is not a JSON object")
    kind = record.get("eventType", record.get("notificationType"))
    found = _outcome(record, kind) if isinstance(kind, str) else None
    if found is None:
        return []
    event, permanent, detail, recipients = found
    mail = record.get("mail")
    sender_id = _sender_id(mail, id_key, id_header) if isinstance(mail, Mapping) else None
    occurred_at = from_iso(detail.get("timestamp"))
    return [
        DeliveryEvent(
            esp=ESP,
            event=event,
            message_id=sender_id,
            recipient=text_or_none(recipient),
            occurred_at=occurred_at,
            permanent=permanent,
            raw_type=kind,
        )
        for recipient in recipients
    ]
