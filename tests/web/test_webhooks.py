"""POST /webhooks/<esp>: each ESP's request accepted, refused when altered or stale, replays
changing nothing, and every refusal a JSON error, never a 5xx.

Requests are signed here with keys made for the tests (an ECDSA key for SendGrid, an HMAC key
for Mailgun, Basic credentials for Postmark, an RSA certificate served by an injected fetcher
for SNS). The ESPs' published samples and signed vectors are read from the reference data,
never copied here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.accounts import create_api_token
from app.config import ConfigError
from app.db import get_engine
from app.ingest.campaigns import personalizer
from app.ingest.esp import WebhookRejected
from app.models import Delivery, DeliveryEvent, Variant, WebhookToken
from app.reports.stats import delivered_count
from app.tokens import MessageIdCodec, message_id_codec
from app.web import csrf, webhooks
from tests.factories import AuthActions, Sent, empty_tables, make_app, send
from tests.prerequisites import require_shared

ESPS = ("sendgrid", "mailgun", "postmark", "ses")
# Postmark's requests carry no time: nothing can be stale.
TIMED = ("sendgrid", "mailgun", "ses")
MAILGUN_KEY = "test-mailgun-signing-key-0123456789"
POSTMARK = ("hook", "a-long-random-test-password")
TOPIC = "arn:aws:sns:us-east-1:123456789012:clickmap-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    + TOPIC
    + "&Token=abc"
)


# -- keys and an app configured with them ---------------------------------------------------------


@dataclass
class Keys:
    sendgrid: ec.EllipticCurvePrivateKey
    sns: rsa.RSAPrivateKey
    pem: bytes

    @property
    def sendgrid_public(self) -> str:
        der = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys() -> Keys:
    sns = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sns.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(sns, hashes.SHA256())
    )
    return Keys(
        ec.generate_private_key(ec.SECP256R1()), sns, cert.public_bytes(serialization.Encoding.PEM)
    )


class Fetcher:
    """Serves the test certificate for any URL (and an answer to a confirmation), offline,
    remembering what was asked."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"


def webhook_config(keys: Keys, fetcher: Fetcher) -> dict[str, Any]:
    return {
        "WEBHOOK_SENDGRID_PUBLIC_KEY": keys.sendgrid_public,
        "WEBHOOK_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "WEBHOOK_POSTMARK_USER": POSTMARK[0],
        "WEBHOOK_POSTMARK_PASSWORD": POSTMARK[1],
        "WEBHOOK_SES_TOPIC_ARNS": [TOPIC],
        "WEBHOOK_MAX_BYTES": 64 * 1024,
        "WEBHOOK_FETCH": fetcher,
    }


@pytest.fixture
def fetcher(keys: Keys) -> Fetcher:
    return Fetcher(keys.pem)


@pytest.fixture
def hooked(
    backends: Any, backend: str, tmp_path: Path, keys: Keys, fetcher: Fetcher
) -> Iterator[Flask]:
    """An app with every ESP configured, on each backend."""
    application = make_app(backends.url(backend), tmp_path, **webhook_config(keys, fetcher))
    yield application
    empty_tables(application)
    get_engine(application).dispose()


@pytest.fixture
def web(hooked: Flask) -> FlaskClient:
    return hooked.test_client()


@pytest.fixture
def sent(hooked: Flask) -> Sent:
    return send(hooked)


def clickmap_id(app: Flask, sent: Sent, recipient: int = 0) -> str:
    return message_id_codec(app).encode(
        sent.campaign_id, sent.variant_id, sent.recipients[recipient]
    )


# -- requests as each ESP sends them --------------------------------------------------------------


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]


SENDGRID_EVENTS = {
    "delivered": {"event": "delivered"},
    "bounced": {"event": "bounce", "type": "bounce"},
    "complained": {"event": "spamreport"},
    "transient": {"event": "bounce", "type": "blocked"},
}
MAILGUN_EVENTS = {
    "delivered": {"event": "delivered"},
    "bounced": {"event": "failed", "severity": "permanent"},
    "complained": {"event": "complained"},
    "transient": {"event": "failed", "severity": "temporary"},
}
POSTMARK_EVENTS = {
    "delivered": {"RecordType": "Delivery"},
    "bounced": {"RecordType": "Bounce", "Type": "HardBounce"},
    "complained": {"RecordType": "SpamComplaint"},
    "transient": {"RecordType": "Bounce", "Type": "SoftBounce"},
}


def sign_sendgrid(keys: Keys, body: bytes, timestamp: int) -> Request:
    signature = keys.sendgrid.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return Request(
        body,
        {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "Content-Type": "application/json",
        },
    )


def mailgun_body(event_data: Any, timestamp: int, token: str | None = None) -> bytes:
    token = token or secrets.token_hex(25)
    digest = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    signature = {"timestamp": str(timestamp), "token": token, "signature": digest.hexdigest()}
    return json.dumps({"signature": signature, "event-data": event_data}).encode()


def postmark_headers(user: str = POSTMARK[0], password: str = POSTMARK[1]) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}", "Content-Type": "application/json"}


def sns_envelope(keys: Keys, message: str, moment: datetime, **fields: str) -> bytes:
    """An SNS notification (or, with ``Type``, a confirmation) signed with the test key."""
    envelope = {
        "Type": "Notification",
        "MessageId": secrets.token_hex(16),
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        **fields,
    }
    if envelope["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{envelope[n]}\n" for n in names if n in envelope)
    signature = keys.sns.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    envelope |= {
        "SignatureVersion": "2",
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": CERT_URL,
    }
    return json.dumps(envelope).encode()


def ses_record(kind: str, cid: str | None, moment: datetime) -> dict[str, Any]:
    at = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tags = {"ses:configuration-set": ["clickmap"]} | ({"clickmap_id": [cid]} if cid else {})
    mail = {"timestamp": at, "messageId": "0100-ses", "destination": ["a@x.example"], "tags": tags}
    details: dict[str, tuple[str, str, dict[str, Any]]] = {
        "delivered": ("Delivery", "delivery", {"recipients": ["a@x.example"]}),
        "bounced": (
            "Bounce",
            "bounce",
            {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "a@x.example"}]},
        ),
        "transient": (
            "Bounce",
            "bounce",
            {"bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "a@x.example"}]},
        ),
        "complained": (
            "Complaint",
            "complaint",
            {"complainedRecipients": [{"emailAddress": "a@x.example"}]},
        ),
    }
    event_type, key, detail = details[kind]
    return {"eventType": event_type, "mail": mail, key: {**detail, "timestamp": at}}


def build(esp: str, keys: Keys, kind: str, cid: str | None, *, age: float = 0.0) -> Request:
    """One ``kind`` event (delivered, bounced, complained, transient) for email ``cid``,
    as ``esp`` posts it, signed ``age`` seconds ago."""
    now = time.time() - age
    moment = datetime.fromtimestamp(now, UTC)
    extra = {"clickmap_id": cid} if cid else {}
    if esp == "sendgrid":
        event = {"email": "a@x.example", "timestamp": int(now), **SENDGRID_EVENTS[kind], **extra}
        return sign_sendgrid(keys, json.dumps([event]).encode(), int(now))
    if esp == "mailgun":
        data = {
            "recipient": "a@x.example",
            "timestamp": now,
            "user-variables": extra,
            **MAILGUN_EVENTS[kind],
        }
        return Request(mailgun_body(data, int(now)), {"Content-Type": "application/json"})
    if esp == "postmark":
        record = {
            "Recipient": "a@x.example",
            "Email": "a@x.example",
            "Metadata": extra,
            "DeliveredAt": moment.isoformat(),
            "BouncedAt": moment.isoformat(),
            **POSTMARK_EVENTS[kind],
        }
        return Request(json.dumps(record).encode(), postmark_headers())
    body = sns_envelope(keys, json.dumps(ses_record(kind, cid, moment)), moment)
    return Request(body, {"Content-Type": "text/plain; charset=UTF-8"})


def post(client: FlaskClient, esp: str, request: Request) -> TestResponse:
    return client.post(f"/webhooks/{esp}", data=request.body, headers=request.headers)


def counts(app: Flask) -> tuple[int, int, list[str]]:
    """(stored events, delivery rows, their statuses)."""
    with app.extensions["clickmap.sessionmaker"]() as s:
        events = s.scalar(select(func.count()).select_from(DeliveryEvent)) or 0
        statuses = sorted(s.scalars(select(Delivery.status)))
    return int(events), len(statuses), statuses


def assert_json_error(response: TestResponse, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.data
    assert response.is_json
    error = response.json["error"]
    assert set(error) >= {"code", "message"}
    if code is not None:
        assert error["code"] == code


# -- accepted, and what each event does -----------------------------------------------------------


@pytest.mark.parametrize("esp", ESPS)
def test_a_delivered_event_records_the_delivery(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    response = post(web, esp, build(esp, keys, "delivered", clickmap_id(hooked, sent)))
    assert response.status_code == 200, response.data
    assert response.json == {
        "received": 1,
        "recorded": 1,
        "duplicates": 0,
        "ignored": 0,
        "refused": 0,
    }
    assert counts(hooked) == (1, 1, ["delivered"])
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("esp", ESPS)
def test_a_replayed_request_changes_nothing(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    request = build(esp, keys, "bounced", clickmap_id(hooked, sent))
    assert post(web, esp, request).status_code == 200
    before = counts(hooked)
    again = post(web, esp, request)
    assert again.status_code == 200, again.data
    if esp == "mailgun":  # its token was used: refused as a replay before anything is read
        assert again.json == {"received": 0, "duplicate": True}
    else:  # believed, and each event found stored already
        assert again.json["duplicates"] == 1 and again.json["recorded"] == 0
    assert counts(hooked) == before == (1, 1, ["bounced"])


def test_a_mailgun_token_is_remembered_by_every_process(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, tmp_path: Path
) -> None:
    """Another instance on the same database refuses the token too; old tokens are pruned."""
    request = build("mailgun", keys, "delivered", clickmap_id(hooked, sent))
    assert post(web, "mailgun", request).status_code == 200
    other = make_app(
        hooked.config["DATABASE_URL"], tmp_path / "other", **webhook_config(keys, Fetcher(keys.pem))
    )
    try:
        assert post(other.test_client(), "mailgun", request).json == {
            "received": 0,
            "duplicate": True,
        }
        with hooked.extensions["clickmap.sessionmaker"]() as s:
            s.execute(
                WebhookToken.__table__.update().values(
                    seen_at=datetime.now(UTC) - timedelta(hours=1)
                )
            )
            s.commit()
        fresh = build("mailgun", keys, "delivered", clickmap_id(hooked, sent, 1))
        assert post(web, "mailgun", fresh).status_code == 200
        with hooked.extensions["clickmap.sessionmaker"]() as s:
            assert s.scalar(select(func.count()).select_from(WebhookToken)) == 1  # the old one went
    finally:
        get_engine(other).dispose()


@pytest.mark.parametrize("esp", ESPS)
def test_bounced_and_complained_recipients_leave_delivered(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str, session: Session
) -> None:
    alice, bob = clickmap_id(hooked, sent, 0), clickmap_id(hooked, sent, 1)
    for kind, cid in (
        ("delivered", alice),
        ("delivered", bob),
        ("bounced", alice),
        ("complained", bob),
    ):
        assert post(web, esp, build(esp, keys, kind, cid)).status_code == 200
    assert counts(hooked) == (4, 2, ["bounced", "complained"])
    with hooked.extensions["clickmap.sessionmaker"]() as s:
        assert delivered_count(s, sent.campaign_id, None) == 0


@pytest.mark.parametrize("esp", ESPS)
def test_a_transient_bounce_is_kept_but_changes_nothing(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    cid = clickmap_id(hooked, sent)
    assert post(web, esp, build(esp, keys, "delivered", cid)).status_code == 200
    assert post(web, esp, build(esp, keys, "transient", cid)).status_code == 200
    # Mailgun's temporary failures are not read at all (Mailgun retries them itself).
    assert counts(hooked) == (1 if esp == "mailgun" else 2, 1, ["delivered"])


def test_a_late_delivered_event_does_not_undo_a_bounce(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent
) -> None:
    cid = clickmap_id(hooked, sent)
    assert post(web, "sendgrid", build("sendgrid", keys, "bounced", cid)).status_code == 200
    assert (
        post(web, "sendgrid", build("sendgrid", keys, "delivered", cid, age=1)).status_code == 200
    )
    assert counts(hooked) == (2, 1, ["bounced"])


def test_the_campaign_page_and_the_api_show_bounces_and_complaints(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent
) -> None:
    alice, bob = clickmap_id(hooked, sent, 0), clickmap_id(hooked, sent, 1)
    for kind, cid in (("delivered", alice), ("delivered", bob), ("bounced", alice)):
        assert post(web, "sendgrid", build("sendgrid", keys, kind, cid)).status_code == 200
    with hooked.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "test")
        s.commit()
    summary = web.get(
        f"/api/v1/campaigns/{sent.campaign_id}/heatmap",
        headers={"Authorization": f"Bearer {token}"},
    ).json
    assert (summary["deliveries"], summary["bounces"], summary["complaints"]) == (1, 1, 0)
    auth = AuthActions(hooked, web)
    auth.add_user()
    auth.login()
    page = web.get(f"/campaigns/{sent.campaign_id}").get_data(as_text=True)
    assert '<span data-figure="bounced">1</span> bounced' in page
    assert '<span data-figure="complained">0</span> complained' in page


# -- refused --------------------------------------------------------------------------------------


def one_byte_changed(esp: str, request: Request) -> Request:
    """The request with one byte changed where its ESP's check covers it: the body for
    SendGrid and SNS (a character of the address), the signed token for Mailgun (its
    signature does not cover the event), the password for Postmark (nothing else is checked)."""
    if esp in ("sendgrid", "ses"):
        return Request(request.body.replace(b"a@x.example", b"b@x.example", 1), request.headers)
    if esp == "mailgun":
        data = json.loads(request.body)
        token = data["signature"]["token"]
        data["signature"]["token"] = ("0" if token[0] != "0" else "1") + token[1:]
        return Request(json.dumps(data).encode(), request.headers)
    return Request(request.body, postmark_headers(password=POSTMARK[1][:-1] + "X"))


@pytest.mark.parametrize("esp", ESPS)
def test_a_request_with_one_byte_changed_is_refused(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    request = one_byte_changed(esp, build(esp, keys, "delivered", clickmap_id(hooked, sent)))
    response = post(web, esp, request)
    expected = (401, "bad_credentials") if esp == "postmark" else (403, "bad_signature")
    assert_json_error(response, *expected)
    assert counts(hooked) == (0, 0, [])


@pytest.mark.parametrize("esp", TIMED)
def test_a_stale_request_is_refused(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    age = 2 * 3600 if esp == "ses" else 600  # SNS messages are believed for an hour
    response = post(web, esp, build(esp, keys, "delivered", clickmap_id(hooked, sent), age=age))
    assert_json_error(response, 403, "stale_timestamp")
    assert counts(hooked) == (0, 0, [])


@pytest.mark.parametrize("esp", ESPS)
def test_a_forged_or_missing_id_is_left_out(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str
) -> None:
    real = clickmap_id(hooked, sent)
    forged = MessageIdCodec(["another-secret"]).encode(
        sent.campaign_id, sent.variant_id, sent.recipients[0]
    )
    altered = real[:-3] + ("A" if real[-3] != "A" else "B") + real[-2:]
    outcomes = [
        post(web, esp, build(esp, keys, "delivered", cid)).json
        for cid in (forged, altered, "cm_" + "x" * 200, None)
    ]
    assert [(o["refused"], o["ignored"]) for o in outcomes] == [(1, 0), (1, 0), (1, 0), (0, 1)]
    assert counts(hooked) == (0, 0, [])


def test_an_unconfigured_or_unknown_esp_is_a_json_404(client: FlaskClient) -> None:
    for esp in ESPS:
        assert_json_error(
            client.post(f"/webhooks/{esp}", data=b"{}"), 404, "webhook_not_configured"
        )
    assert_json_error(client.post("/webhooks/sparkpost", data=b"{}"), 404, "unknown_esp")
    assert_json_error(client.get("/webhooks/sendgrid"), 405)


@pytest.mark.parametrize("esp", ESPS)
def test_a_body_over_the_limit_is_413(web: FlaskClient, esp: str) -> None:
    response = web.post(f"/webhooks/{esp}", data=b"[" + b" " * 70_000 + b"]")
    assert_json_error(response, 413, "body_too_large")


GARBAGE = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"null",
    b"42",
    b'"text"',
    b"[]",
    b"{}",
    b"[1, 2]",
    b'[{"event": ["delivered"]}]',
    b"[" * 20_000 + b"]" * 20_000,
    b'{"signature": "x", "event-data": []}',
    b'{"Type": {"a": 1}}',
    b'{"RecordType": "Bounce", "Type": ["HardBounce"], "Metadata": 5}',
    b'{"signature": {"timestamp": "\\ud800", "token": "\\udfff", "signature": "\\u00e9"}}',
    json.dumps(
        {
            "Type": "Notification",
            "MessageId": "1",
            "TopicArn": TOPIC,
            "Message": "x",
            "Timestamp": "2026-01-01T00:00:00Z",
            "SignatureVersion": "1",
            "Signature": "\u00e9\u00e9",
            "SigningCertURL": CERT_URL,
        }
    ).encode(),
]


@pytest.mark.parametrize("esp", ESPS)
def test_garbage_is_a_json_error_never_a_5xx(hooked: Flask, web: FlaskClient, esp: str) -> None:
    """Only Postmark's right credentials can make garbage acceptable: a JSON object that is
    no delivery record is believed and holds nothing."""
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": "\u00e9",
        "X-Twilio-Email-Event-Webhook-Timestamp": "1",
    }
    for body in GARBAGE:
        for extra in ({}, headers, {"Authorization": "Basic \u00e9\u00e9"}, postmark_headers()):
            response = web.post(f"/webhooks/{esp}", data=body, headers=extra)
            assert response.is_json, (body[:40], extra, response.data)
            if esp == "postmark" and extra and response.status_code == 200:
                assert extra["Authorization"] == postmark_headers()["Authorization"]
                assert response.json["received"] == 0
                continue
            assert 400 <= response.status_code < 500, (body[:40], extra, response.data)
            assert "code" in response.json["error"]
    assert counts(hooked) == (0, 0, [])


SIGNED_GARBAGE: list[Any] = [
    None,
    5,
    "x",
    [],
    {},
    {"event": 5},
    {"event": "bounce", "type": []},
    {"event": "delivered", "clickmap_id": ["cm_x"], "timestamp": "soon"},
    {"event": "delivered", "clickmap_id": "cm_\ud800", "timestamp": 1e308},
]


@pytest.mark.parametrize("esp", ESPS)
def test_signed_garbage_is_a_client_error_never_a_5xx(
    hooked: Flask, web: FlaskClient, keys: Keys, esp: str
) -> None:
    """Authentic requests whose content is not what the ESP documents."""
    now = int(time.time())
    moment = datetime.now(UTC)
    for item in SIGNED_GARBAGE:
        if esp == "sendgrid":
            request = sign_sendgrid(keys, json.dumps([item]).encode(), now)
        elif esp == "mailgun":
            request = Request(mailgun_body(item, now), {})
        elif esp == "postmark":
            request = Request(json.dumps(item).encode(), postmark_headers())
        else:
            request = Request(sns_envelope(keys, json.dumps(item), moment), {})
        response = post(web, esp, request)
        assert response.status_code in (200, 400), (item, response.data)
        assert response.is_json
    assert counts(hooked) == (0, 0, [])


# -- SNS subscriptions and certificates -----------------------------------------------------------


def test_an_sns_subscription_is_confirmed_at_its_pinned_address(
    web: FlaskClient, keys: Keys, fetcher: Fetcher
) -> None:
    moment = datetime.now(UTC)
    body = sns_envelope(
        keys,
        "You have chosen to subscribe",
        moment,
        Type="SubscriptionConfirmation",
        SubscribeURL=SUBSCRIBE_URL,
        Token="abc",
    )
    response = web.post("/webhooks/ses", data=body)
    assert response.status_code == 200 and response.json["confirmed"] is True
    assert fetcher.urls == [CERT_URL, SUBSCRIBE_URL]


@pytest.mark.parametrize(
    "address",
    [
        "https://sns.us-east-1.amazonaws.com.evil.example/?Action=ConfirmSubscription",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "https://evil.example/sns.us-east-1.amazonaws.com/",
        "https://user@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    ],
)
def test_a_subscribe_url_elsewhere_is_never_requested(
    web: FlaskClient, keys: Keys, fetcher: Fetcher, address: str
) -> None:
    body = sns_envelope(
        keys,
        "subscribe",
        datetime.now(UTC),
        Type="SubscriptionConfirmation",
        SubscribeURL=address,
        Token="abc",
    )
    assert_json_error(web.post("/webhooks/ses", data=body), 403, "bad_subscribe_url")
    assert fetcher.urls == [CERT_URL]


def test_a_certificate_elsewhere_is_never_fetched(
    web: FlaskClient, keys: Keys, fetcher: Fetcher, hooked: Flask, sent: Sent
) -> None:
    request = build("ses", keys, "delivered", clickmap_id(hooked, sent))
    envelope = json.loads(request.body)
    envelope["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"
    response = web.post("/webhooks/ses", data=json.dumps(envelope).encode())
    assert_json_error(response, 403, "bad_certificate_url")
    assert fetcher.urls == []


@pytest.mark.parametrize(
    "address",
    [
        "https://evil.example/SimpleNotificationService-x.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
    ],
)
def test_the_real_fetcher_asks_nothing_but_snss_own_https_address(address: str) -> None:
    """Refused before any connection is made, whoever calls it."""
    with pytest.raises(WebhookRejected) as caught:
        webhooks.fetch_from_sns(address)
    assert caught.value.code == "bad_certificate_url"


def test_an_unreachable_sns_is_a_503_so_sns_retries(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent
) -> None:
    def down(url: str) -> bytes:
        raise webhooks.Unavailable("sns_unreachable", "SNS could not be reached")

    hooked.config["WEBHOOK_FETCH"] = down
    response = post(web, "ses", build("ses", keys, "delivered", clickmap_id(hooked, sent)))
    assert_json_error(response, 503, "sns_unreachable")
    assert counts(hooked) == (0, 0, [])


def test_a_topic_not_configured_is_refused(web: FlaskClient, keys: Keys, fetcher: Fetcher) -> None:
    moment = datetime.now(UTC)
    envelope = json.loads(sns_envelope(keys, "{}", moment))
    envelope["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-else"
    assert_json_error(web.post("/webhooks/ses", data=json.dumps(envelope)), 403, "unexpected_topic")
    assert fetcher.urls == []


# -- the ESPs' published samples and signed vectors -----------------------------------------------


def test_sendgrids_signed_vector_is_accepted(hooked: Flask, tmp_path: Path) -> None:
    vector = json.loads((require_shared("esp") / "sendgrid" / "signed-vector.json").read_text())
    hooked.config["WEBHOOK_SENDGRID_PUBLIC_KEY"] = vector["public_key"]
    hooked.config["WEBHOOK_CLOCK"] = lambda: float(vector["timestamp"])
    response = hooked.test_client().post(
        "/webhooks/sendgrid",
        data=vector["payload"].encode(),
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": vector["signature"],
            "X-Twilio-Email-Event-Webhook-Timestamp": vector["timestamp"],
        },
    )
    assert response.status_code == 200, response.data
    # A dropped event of mail that was not Clickmap's (no clickmap_id): believed, left out.
    assert response.json["received"] == 1 and response.json["ignored"] == 1
    hooked.config["WEBHOOK_CLOCK"] = lambda: float(vector["timestamp"]) + 301
    stale = hooked.test_client().post(
        "/webhooks/sendgrid",
        data=vector["payload"].encode(),
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": vector["signature"],
            "X-Twilio-Email-Event-Webhook-Timestamp": vector["timestamp"],
        },
    )
    assert_json_error(stale, 403, "stale_timestamp")


def test_mailguns_signed_vector_is_accepted_once(hooked: Flask, web: FlaskClient) -> None:
    shared = require_shared("esp") / "mailgun"
    vector = json.loads((shared / "signed-vector.json").read_text())
    invalid = json.loads((shared / "signed-vector-invalid.json").read_text())[0]
    event = json.loads((shared / "delivered.json").read_text())
    hooked.config["WEBHOOK_MAILGUN_SIGNING_KEY"] = vector["signing_key"]
    hooked.config["WEBHOOK_CLOCK"] = lambda: float(vector["signature"]["timestamp"])
    body = json.dumps({"signature": vector["signature"], "event-data": event}).encode()
    first = web.post("/webhooks/mailgun", data=body)
    assert first.status_code == 200 and first.json["ignored"] == 1, first.data
    assert web.post("/webhooks/mailgun", data=body).json == {"received": 0, "duplicate": True}
    bad = json.dumps({"signature": invalid["signature"], "event-data": event}).encode()
    assert_json_error(web.post("/webhooks/mailgun", data=bad), 403, "bad_signature")


SAMPLES = [
    ("sendgrid", "delivered.json", "delivered"),
    ("sendgrid", "bounce.json", "bounced"),
    ("sendgrid", "spamreport.json", "complained"),
    ("sendgrid", "dropped.json", "dropped"),
    ("mailgun", "delivered.json", "delivered"),
    ("mailgun", "failed-permanent.json", "bounced"),
    ("mailgun", "complained.json", "complained"),
    ("postmark", "delivery.json", "delivered"),
    ("postmark", "bounce.json", "bounced"),
    ("postmark", "spam-complaint.json", "complained"),
    ("ses", "event-delivery.json", "delivered"),
    ("ses", "event-bounce.json", "bounced"),
    ("ses", "event-complaint.json", "complained"),
    ("ses", "notification-delivery.json", "delivered"),
    ("ses", "notification-bounce-without-dsn.json", "bounced"),
]


def with_id(esp: str, sample: Any, cid: str) -> Any:
    """The published sample carrying a Clickmap id where its ESP posts the sender's values."""
    if esp == "sendgrid":
        return [{**event, "clickmap_id": cid} for event in sample]
    if esp == "mailgun":
        return {**sample, "user-variables": {"clickmap_id": cid}}
    if esp == "postmark":
        return {**sample, "Metadata": {"clickmap_id": cid}}
    mail = dict(sample["mail"])
    if "eventType" in sample:
        mail["tags"] = {**(mail.get("tags") or {}), "clickmap_id": [cid]}
    else:  # identity notifications carry headers, never tags
        mail["headers"] = [*(mail.get("headers") or []), {"name": "X-Clickmap-Id", "value": cid}]
    return {**sample, "mail": mail}


@pytest.mark.parametrize(("esp", "name", "status"), SAMPLES)
def test_the_esps_published_samples_are_applied(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent, esp: str, name: str, status: str
) -> None:
    sample = json.loads((require_shared("esp") / esp / name).read_text())
    data = with_id(esp, sample, clickmap_id(hooked, sent))
    now = int(time.time())
    if esp == "sendgrid":
        request = sign_sendgrid(keys, json.dumps(data).encode(), now)
    elif esp == "mailgun":
        request = Request(mailgun_body(data, now), {})
    elif esp == "postmark":
        request = Request(json.dumps(data).encode(), postmark_headers())
    else:
        request = Request(sns_envelope(keys, json.dumps(data), datetime.now(UTC)), {})
    response = post(web, esp, request)
    assert response.status_code == 200, response.data
    assert response.json["recorded"] == response.json["received"] >= 1
    assert counts(hooked)[2] == [status]


def test_snss_published_notification_is_believed_only_when_signed(web: FlaskClient) -> None:
    """AWS's sample envelope carries a placeholder signature: refused, never a 5xx."""
    sample = (require_shared("esp") / "ses" / "sns-notification.json").read_bytes()
    response = web.post("/webhooks/ses", data=sample)
    assert response.status_code in (400, 403)
    assert response.is_json


# -- the routes' place in the app -----------------------------------------------------------------


def test_every_route_taking_posts_is_csrf_protected_or_exempt_on_purpose(app: Flask) -> None:
    unchecked = set()
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or set()) and rule.endpoint != "static":
            blueprint = rule.endpoint.partition(".")[0]
            if blueprint not in csrf.PROTECTED and blueprint not in csrf.EXEMPT:
                unchecked.add(rule.rule)
    assert unchecked == set()
    assert "webhooks" in csrf.EXEMPT and "webhooks" not in csrf.PROTECTED


def test_a_logged_in_browser_gets_nothing_from_a_webhook(
    hooked: Flask, web: FlaskClient, keys: Keys, sent: Sent
) -> None:
    """The login cookie is neither read nor refreshed on these paths."""
    auth = AuthActions(hooked, web)
    auth.add_user()
    auth.login()
    response = post(
        web, "postmark", build("postmark", keys, "delivered", clickmap_id(hooked, sent))
    )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_the_personalized_email_carries_its_id(hooked: Flask, sent: Sent) -> None:
    with hooked.extensions["clickmap.sessionmaker"]() as s:
        variant = s.get(Variant, sent.variant_id)
        assert variant is not None
        email = next(personalizer(hooked).personalize(s, variant, ["alice"]))
    assert email["headers"] == {"X-Clickmap-Id": email["clickmapId"]}
    assert "alice" not in email["clickmapId"]
    found = message_id_codec(hooked).decode(email["clickmapId"])
    assert (found.campaign_id, found.variant_id, found.recipient_id) == (
        sent.campaign_id,
        sent.variant_id,
        sent.recipients[0],
    )


def test_a_bad_sendgrid_key_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SENDGRID_PUBLIC_KEY"):
        make_app("sqlite://", tmp_path, WEBHOOK_SENDGRID_PUBLIC_KEY="not-a-key")
