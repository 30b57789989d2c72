"""Amazon SES through SNS: signatures v1 and v2, the certificate URL, the topic, SES records.

A self-signed RSA certificate made here is served by the injected fetcher, so nothing goes
online. AWS's published samples are read from the reference data, never copied here; their
signatures are placeholders, so the tests sign the published envelopes again with the test
key to check the canonical string on AWS's own field sets.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from app.ingest.esp import WebhookRejected
from app.ingest.esp.ses import SnsMessage, parse, verify
from tests.prerequisites import require_shared

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:clickmap-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem"


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Fetcher:
    """Serves one PEM for any URL and remembers what was asked."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


@pytest.fixture
def fetcher(key: rsa.RSAPrivateKey) -> Fetcher:
    return Fetcher(_certificate(key))


def _sign(key: rsa.RSAPrivateKey, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
    """``message`` signed as SNS does, the canonical string written out from AWS's docs."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
    }


def _notification(record: dict[str, Any] | str, **fields: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "00000000-1111-2222-3333-444444444444",
        "TopicArn": TOPIC,
        "Message": record if isinstance(record, str) else json.dumps(record),
        "Timestamp": "2026-11-30T11:59:30.123Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        **fields,
    }


DELIVERY = {
    "eventType": "Delivery",
    "mail": {"messageId": "m1", "tags": {"clickmap_id": ["cm_42"]}},
    "delivery": {"timestamp": "2026-11-30T11:59:29.000Z", "recipients": ["a@x.example"]},
}


def _verify(body: dict[str, Any] | bytes, fetcher: Fetcher, **options: Any) -> SnsMessage:
    return verify(body, topic_arns={TOPIC}, fetch_certificate=fetcher, now=NOW, **options)


@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_1_and_2_verify(
    key: rsa.RSAPrivateKey, fetcher: Fetcher, version: str
) -> None:
    signed = _sign(key, _notification(DELIVERY), version)
    message = _verify(json.dumps(signed).encode(), fetcher)
    assert (message.type, message.topic_arn, message.subscribe_url) == (
        "Notification",
        TOPIC,
        None,
    )
    assert fetcher.urls == [CERT_URL]
    [event] = parse(message)
    assert (event.event, event.recipient, event.message_id) == ("delivered", "a@x.example", "cm_42")


def test_subject_is_signed_when_present(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    signed = _sign(key, _notification(DELIVERY, Subject="Amazon SES Email Event"), "2")
    _verify(signed, fetcher)
    with pytest.raises(WebhookRejected) as caught:
        _verify({**signed, "Subject": "changed"}, fetcher)
    assert caught.value.code == "bad_signature"


def test_version_mismatch_is_refused(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    signed = _sign(key, _notification(DELIVERY), "1")
    for version in ("2", "3", None):
        with pytest.raises(WebhookRejected) as caught:
            _verify({**signed, "SignatureVersion": version}, fetcher)
        assert caught.value.code == "bad_signature"


def test_tampered_message_is_refused(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    signed = _sign(key, _notification(DELIVERY), "2")
    forged = {**DELIVERY, "eventType": "Bounce"}
    with pytest.raises(WebhookRejected) as caught:
        _verify({**signed, "Message": json.dumps(forged)}, fetcher)
    assert caught.value.code == "bad_signature"


def test_wrong_key_is_refused(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(WebhookRejected) as caught:
        _verify(_sign(other, _notification(DELIVERY), "2"), fetcher)
    assert caught.value.code == "bad_signature"


def test_certificate_that_is_not_rsa_is_refused(key: rsa.RSAPrivateKey) -> None:
    fetcher = Fetcher(_certificate(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(WebhookRejected) as caught:
        _verify(_sign(key, _notification(DELIVERY), "2"), fetcher)
    assert caught.value.code == "bad_signature"


def test_stale_message_is_refused(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    old = _sign(key, _notification(DELIVERY, Timestamp="2026-11-30T10:00:00.000Z"), "2")
    with pytest.raises(WebhookRejected) as caught:
        _verify(old, fetcher)
    assert caught.value.code == "stale_timestamp"
    _verify(old, fetcher, max_age=None)


def test_unexpected_topic_is_refused_before_any_fetch(
    key: rsa.RSAPrivateKey, fetcher: Fetcher
) -> None:
    other = "arn:aws:sns:us-east-1:999999999999:someone-elses"
    signed = _sign(key, _notification(DELIVERY, TopicArn=other), "2")
    with pytest.raises(WebhookRejected) as caught:
        _verify(signed, fetcher)
    assert caught.value.code == "unexpected_topic"
    assert fetcher.urls == []


def test_topic_configured_as_one_string_is_an_error(
    key: rsa.RSAPrivateKey, fetcher: Fetcher
) -> None:
    signed = _sign(key, _notification(DELIVERY, TopicArn=TOPIC[:-3]), "2")
    with pytest.raises(TypeError):
        verify(signed, topic_arns=TOPIC, fetch_certificate=fetcher, now=NOW)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc123.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://evil.com/?https://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.com/x.pem",
        "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
        "https://evil.com#@sns.us-east-1.amazonaws.com/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://evilsns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.cn/x.pem",  # China only when allowed
        "https://s3.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "//sns.us-east-1.amazonaws.com/x.pem",
        "file:///etc/ssl/x.pem",
        "",
    ],
)
def test_certificate_url_off_sns_is_refused_before_any_fetch(
    key: rsa.RSAPrivateKey, fetcher: Fetcher, url: str
) -> None:
    signed = _sign(key, _notification(DELIVERY, SigningCertURL=url), "2")
    with pytest.raises(WebhookRejected) as caught:
        _verify(signed, fetcher)
    assert caught.value.code == "bad_certificate_url"
    assert fetcher.urls == []


def test_certificate_url_is_refused_unless_already_normalized(
    key: rsa.RSAPrivateKey, fetcher: Fetcher
) -> None:
    # Another parser might read these differently from the one that checked them.
    for url in (
        "HTTPS://SNS.us-east-1.AmazonAWS.com/SimpleNotificationService-abc123.pem",
        " " + CERT_URL,
        CERT_URL.replace("/Simple", "/\tSimple"),
    ):
        with pytest.raises(WebhookRejected) as caught:
            _verify(_sign(key, _notification(DELIVERY, SigningCertURL=url), "2"), fetcher)
        assert caught.value.code == "bad_certificate_url"
    assert fetcher.urls == []


def test_china_regions_when_allowed(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem"
    _verify(_sign(key, _notification(DELIVERY, SigningCertURL=url), "2"), fetcher, allow_china=True)


def _confirmation(subscribe_url: str) -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m-confirm",
        "Token": "tok",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2026-11-30T11:59:00.000Z",
        "SigningCertURL": CERT_URL,
    }


def test_subscription_confirmation_returns_the_subscribe_url(
    key: rsa.RSAPrivateKey, fetcher: Fetcher
) -> None:
    url = f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
    message = _verify(_sign(key, _confirmation(url), "1"), fetcher)
    assert message.type == "SubscriptionConfirmation"
    assert message.subscribe_url == url
    assert parse(message) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
        "https://evil.com/sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    ],
)
def test_subscribe_url_off_sns_is_refused(
    key: rsa.RSAPrivateKey, fetcher: Fetcher, url: str
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        _verify(_sign(key, _confirmation(url), "2"), fetcher)
    assert caught.value.code == "bad_subscribe_url"


def test_confirmation_fields_are_all_signed(key: rsa.RSAPrivateKey, fetcher: Fetcher) -> None:
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    signed = _sign(key, _confirmation(url), "2")
    with pytest.raises(WebhookRejected) as caught:
        _verify({**signed, "Token": "other"}, fetcher)
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize(
    "body", [b"<xml/>", b"[]", b'{"Type": "Other"}', b'{"Type": "Notification"}']
)
def test_malformed_envelopes_are_refused(fetcher: Fetcher, body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        _verify(body, fetcher)
    assert caught.value.code == "malformed"


def test_records_yield_one_event_per_recipient() -> None:
    bounce = {
        "notificationType": "Bounce",
        "mail": {"headers": [{"name": "x-clickmap-id", "value": "cm_7"}]},
        "bounce": {
            "bounceType": "Transient",
            "timestamp": "2026-11-30T11:00:00.000Z",
            "bouncedRecipients": [{"emailAddress": "a@x.example"}, {"emailAddress": "b@x.example"}],
        },
    }
    events = parse(bounce)
    assert [(e.event, e.recipient, e.permanent, e.message_id) for e in events] == [
        ("bounced", "a@x.example", False, "cm_7"),
        ("bounced", "b@x.example", False, "cm_7"),
    ]
    assert events[0].occurred_at == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    assert parse(bounce, id_header=None)[0].message_id is None
    undetermined = {**bounce, "bounce": {**bounce["bounce"], "bounceType": "Undetermined"}}
    assert parse(undetermined)[0].permanent is None


# AWS's published samples.


def _shared() -> Path:
    return require_shared("esp") / "ses"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_shared() / name).read_text(encoding="utf-8"))
    return data


SAMPLES: list[tuple[str, list[tuple[str, str, bool | None]]]] = [
    ("event-delivery.json", [("delivered", "recipient@example.com", None)]),
    ("event-bounce.json", [("bounced", "recipient@example.com", True)]),
    ("event-complaint.json", [("complained", "recipient@example.com", None)]),
    ("notification-delivery.json", [("delivered", "jane@example.com", None)]),
    (
        "notification-bounce-with-dsn.json",
        [("bounced", "jane@example.com", True)],
    ),
    (
        "notification-bounce-without-dsn.json",
        [("bounced", "jane@example.com", True), ("bounced", "richard@example.com", True)],
    ),
    ("notification-complaint-with-feedback.json", [("complained", "richard@example.com", None)]),
    (
        "notification-complaint-without-feedback.json",
        [("complained", "richard@example.com", None)],
    ),
    ("event-send.json", []),
    ("event-reject.json", []),
    ("event-open.json", []),
    ("event-click.json", []),
    ("event-rendering-failure.json", []),
    ("event-delivery-delay.json", []),
    ("event-subscription.json", []),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_published_records_parse(name: str, expected: list[tuple[str, str, bool | None]]) -> None:
    events = parse((_shared() / name).read_bytes())
    assert [(e.event, e.recipient, e.permanent) for e in events] == expected
    assert all(e.esp == "ses" and e.occurred_at is not None for e in events)


def test_published_tags_are_read_by_key() -> None:
    [event] = parse(_load("event-delivery.json"), id_key="myCustomTag1")
    assert event.message_id == "myCustomTagValue1"


@pytest.mark.parametrize("name", ["event-delivery.json", "notification-bounce-with-dsn.json"])
def test_published_record_inside_a_signed_envelope(
    key: rsa.RSAPrivateKey, fetcher: Fetcher, name: str
) -> None:
    # No AWS page shows an SES record inside SNS: SNS carries it as a string in Message.
    text = (_shared() / name).read_text(encoding="utf-8")
    message = _verify(_sign(key, _notification(text), "2"), fetcher)
    assert message.message == text
    assert parse(message) == parse(text)


@pytest.mark.parametrize(
    "name",
    [
        "sns-notification.json",
        "sns-subscription-confirmation.json",
        "sns-unsubscribe-confirmation.json",
    ],
)
def test_published_envelopes_resigned_verify(
    key: rsa.RSAPrivateKey, fetcher: Fetcher, name: str
) -> None:
    sample = _load(name)
    when = datetime.fromisoformat(sample["Timestamp"].replace("Z", "+00:00"))
    signed = _sign(key, sample, sample["SignatureVersion"])
    message = verify(signed, topic_arns={sample["TopicArn"]}, fetch_certificate=fetcher, now=when)
    assert message.type == sample["Type"]
    assert fetcher.urls == [sample["SigningCertURL"]]
    if sample["Type"] == "SubscriptionConfirmation":
        assert message.subscribe_url == sample["SubscribeURL"]
    # The published placeholder signature itself does not verify.
    with pytest.raises(WebhookRejected) as caught:
        verify(sample, topic_arns={sample["TopicArn"]}, fetch_certificate=fetcher, now=when)
    assert caught.value.code == "bad_signature"
