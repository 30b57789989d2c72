"""SendGrid: the ECDSA signature over timestamp + raw body, the window, and event parsing.

Keys are made in the test; SendGrid's own signed vector and samples are read from the
reference data (never copied here).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.ingest.esp import DeliveryEvent, WebhookRejected
from app.ingest.esp.sendgrid import parse, verify
from tests.prerequisites import require_shared

NOW = 1_800_000_000
BODY = (
    json.dumps(
        [
            {
                "email": "a@example.com",
                "event": "delivered",
                "timestamp": NOW - 5,
                "clickmap_id": "c1",
            },
            {"email": "b@example.com", "event": "open", "timestamp": NOW - 4},
        ]
    ).encode()
    + b"\r\n"
)


def _key_text(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_valid_request_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    timestamp = str(NOW - 3)
    verify(BODY, _sign(key, timestamp, BODY), timestamp, _key_text(key), now=NOW)


def test_tampered_body_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    timestamp = str(NOW)
    signature = _sign(key, timestamp, BODY)
    tampered = BODY.replace(b'"delivered"', b'"dropped"  ')  # same length, other event
    with pytest.raises(WebhookRejected) as caught:
        verify(tampered, signature, timestamp, _key_text(key), now=NOW)
    assert caught.value.code == "bad_signature"


def test_changed_timestamp_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    signature = _sign(key, str(NOW), BODY)
    with pytest.raises(WebhookRejected) as caught:
        verify(BODY, signature, str(NOW + 1), _key_text(key), now=NOW)
    assert caught.value.code == "bad_signature"


def test_wrong_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    timestamp = str(NOW)
    with pytest.raises(WebhookRejected) as caught:
        verify(BODY, _sign(other, timestamp, BODY), timestamp, _key_text(key), now=NOW)
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("age", [301, -301, 10_000])
def test_stale_timestamp_is_refused(key: ec.EllipticCurvePrivateKey, age: int) -> None:
    timestamp = str(NOW - age)
    with pytest.raises(WebhookRejected) as caught:
        verify(BODY, _sign(key, timestamp, BODY), timestamp, _key_text(key), now=NOW)
    assert caught.value.code == "stale_timestamp"


def test_window_is_a_parameter(key: ec.EllipticCurvePrivateKey) -> None:
    timestamp = str(NOW - 600)
    verify(BODY, _sign(key, timestamp, BODY), timestamp, _key_text(key), now=NOW, tolerance=900)


@pytest.mark.parametrize(
    ("signature", "timestamp"), [(None, str(NOW)), ("", str(NOW)), ("c2ln", None), ("*", "1")]
)
def test_missing_or_garbled_headers_are_refused(
    key: ec.EllipticCurvePrivateKey, signature: str | None, timestamp: str | None
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(BODY, signature, timestamp, _key_text(key), now=NOW)
    assert caught.value.code == "bad_signature"


def test_key_that_is_not_p256_is_a_configuration_error() -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        verify(BODY, "c2ln", str(NOW), _key_text(other), now=NOW)


def test_parse_keeps_delivery_events_only() -> None:
    body = json.dumps(
        [
            {"email": "a@x.example", "event": "delivered", "timestamp": NOW, "clickmap_id": "c1"},
            {"email": "b@x.example", "event": "bounce", "type": "bounce", "timestamp": NOW},
            {"email": "c@x.example", "event": "bounce", "type": "blocked", "timestamp": NOW},
            {"email": "d@x.example", "event": "dropped", "timestamp": NOW},
            {"email": "e@x.example", "event": "spamreport", "timestamp": NOW, "cm": "z"},
            {"email": "f@x.example", "event": "click", "timestamp": NOW},
        ]
    )
    events = parse(body)
    assert [(e.event, e.recipient, e.permanent) for e in events] == [
        ("delivered", "a@x.example", None),
        ("bounced", "b@x.example", True),
        ("bounced", "c@x.example", False),
        ("dropped", "d@x.example", None),
        ("complained", "e@x.example", None),
    ]
    assert events[0].message_id == "c1"
    assert events[0].occurred_at == datetime.fromtimestamp(NOW, UTC)
    assert parse(body, id_key="cm")[4].message_id == "z"


@pytest.mark.parametrize("body", [b"not json", b'"a string"', b"[1, 2]"])
def test_parse_refuses_what_is_not_an_event_list(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse(body)
    assert caught.value.code == "malformed"


# SendGrid's own vectors and samples.


def _shared() -> Path:
    return require_shared("esp") / "sendgrid"


def test_published_signed_vector_verifies() -> None:
    vector = json.loads((_shared() / "signed-vector.json").read_text(encoding="utf-8"))
    body = vector["payload"].encode("utf-8")
    when = int(vector["timestamp"])
    verify(body, vector["signature"], vector["timestamp"], vector["public_key"], now=when)
    assert [e.event for e in parse(body)] == ["dropped"]


def test_published_invalid_vectors_are_refused() -> None:
    cases = json.loads((_shared() / "signed-vector-invalid.json").read_text(encoding="utf-8"))
    assert len(cases) == 4
    for case in cases:
        with pytest.raises(WebhookRejected) as caught:
            verify(
                case["payload"].encode("utf-8"),
                case["signature"],
                case["timestamp"],
                case["public_key"],
                now=1600112502,  # the valid vector's time: only the signature can fail
            )
        assert caught.value.code == "bad_signature", case["case"]


SAMPLES: list[tuple[str, list[tuple[str, str, bool | None]]]] = [
    ("delivered.json", [("delivered", "example@test.com", None)]),
    ("bounce.json", [("bounced", "example@test.com", True)]),
    ("bounce-blocked.json", [("bounced", "example@test.com", False)]),
    ("dropped.json", [("dropped", "example@test.com", None)]),
    ("spamreport.json", [("complained", "example@test.com", None)]),
    ("processed.json", []),
    ("deferred.json", []),
    ("open.json", []),
    ("click.json", []),
    ("unsubscribe.json", []),
    ("group_unsubscribe.json", []),
    ("group_resubscribe.json", []),
    ("click-url-offset.json", []),
    ("unique-args-click.json", []),
    ("singlesend-open.json", []),
    ("campaign-processed.json", []),
    ("ab-test-processed.json", []),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_published_samples_parse(name: str, expected: list[tuple[str, str, bool | None]]) -> None:
    events = parse((_shared() / name).read_bytes())
    assert [(e.event, e.recipient, e.permanent) for e in events] == expected
    assert all(e.esp == "sendgrid" and e.occurred_at is not None for e in events)


def test_published_batch_yields_each_delivery_event() -> None:
    events = parse((_shared() / "all-events-batch.json").read_bytes())
    assert [e.raw_type for e in events] == ["delivered", "bounce", "dropped", "spamreport"]


def test_published_winner_object_is_one_delivery() -> None:
    events = parse((_shared() / "ab-test-winner-delivered.json").read_bytes())
    assert len(events) == 1
    assert isinstance(events[0], DeliveryEvent)
    assert events[0].event == "delivered"


def test_unique_args_are_read_as_the_sender_id() -> None:
    # SendGrid posts custom (unique) args at the top level of each event.
    sample = json.loads((_shared() / "unique-args-click.json").read_text(encoding="utf-8"))
    sample[0]["event"] = "delivered"
    assert parse(json.dumps(sample), id_key="userid")[0].message_id == "1123"
