"""Mailgun: the HMAC over timestamp + token, the window, one use per token, event parsing.

Mailgun's own signed vector (from its PHP client's tests) and documented event samples are
read from the reference data, never copied here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from app.ingest.esp import WebhookRejected
from app.ingest.esp.mailgun import parse, verify
from tests.prerequisites import require_shared

NOW = 1_800_000_000
KEY = "test-signing-key-0123456789"


def _body(key: str = KEY, timestamp: int = NOW, token: str = "t" * 50) -> dict[str, Any]:
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": digest},
        "event-data": {
            "event": "delivered",
            "recipient": "a@x.example",
            "timestamp": timestamp - 1.5,
            "user-variables": {"clickmap_id": "cm_1"},
        },
    }


def _never(token: str) -> bool:
    return False


def test_valid_webhook_is_accepted_raw_or_decoded() -> None:
    body = _body()
    verify(body, KEY, _never, now=NOW)
    verify(json.dumps(body).encode(), KEY, _never, now=NOW)


def test_tampered_token_or_timestamp_is_refused() -> None:
    for field, value in (("token", "u" * 50), ("timestamp", str(NOW + 1))):
        body = _body()
        body["signature"][field] = value
        with pytest.raises(WebhookRejected) as caught:
            verify(body, KEY, _never, now=NOW)
        assert caught.value.code == "bad_signature"


def test_wrong_key_is_refused() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(_body(key="another-key"), KEY, _never, now=NOW)
    assert caught.value.code == "bad_signature"


def test_empty_signing_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        verify(_body(key=""), "", _never, now=NOW)


def test_stale_timestamp_is_refused() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(_body(timestamp=NOW - 301), KEY, _never, now=NOW)
    assert caught.value.code == "stale_timestamp"
    verify(_body(timestamp=NOW - 301), KEY, _never, now=NOW, tolerance=400)


def test_replayed_token_is_refused() -> None:
    used: set[str] = set()

    def seen(token: str) -> bool:
        # As a caller would: record the token, report whether it was there already.
        before = token in used
        used.add(token)
        return before

    body = _body()
    verify(body, KEY, seen, now=NOW)
    with pytest.raises(WebhookRejected) as caught:
        verify(body, KEY, seen, now=NOW + 10)
    assert caught.value.code == "replayed"


def test_forged_request_never_reaches_the_token_store() -> None:
    asked: list[str] = []

    def seen(token: str) -> bool:
        asked.append(token)
        return False

    with pytest.raises(WebhookRejected):
        verify(_body(key="another-key"), KEY, seen, now=NOW)
    with pytest.raises(WebhookRejected):
        verify(_body(timestamp=NOW - 1000), KEY, seen, now=NOW)
    assert asked == []


@pytest.mark.parametrize(
    "body",
    [b"nope", b"[]", b"{}", b'{"signature": {"timestamp": "1", "token": "t"}}'],
)
def test_malformed_body_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(body, KEY, _never, now=NOW)
    assert caught.value.code == "malformed"


def test_parse_reads_the_user_variable() -> None:
    body = _body()
    [event] = parse(body)
    assert (event.event, event.recipient, event.message_id) == ("delivered", "a@x.example", "cm_1")
    assert event.occurred_at is not None and event.occurred_at.timestamp() == NOW - 1.5
    body["event-data"]["user-variables"] = {"other": "x"}
    assert parse(body)[0].message_id is None
    assert parse(body, id_key="other")[0].message_id == "x"


# Mailgun's own vectors and samples.


def _shared() -> Path:
    return require_shared("esp") / "mailgun"


def _load(name: str) -> Any:
    return json.loads((_shared() / name).read_text(encoding="utf-8"))


def test_published_signed_vector_verifies() -> None:
    vector = _load("signed-vector.json")
    when = int(vector["signature"]["timestamp"])
    verify({"signature": vector["signature"]}, vector["signing_key"], _never, now=when)


def test_published_invalid_vector_is_refused() -> None:
    for case in _load("signed-vector-invalid.json"):
        when = int(case["signature"]["timestamp"])
        with pytest.raises(WebhookRejected) as caught:
            verify({"signature": case["signature"]}, case["signing_key"], _never, now=when)
        assert caught.value.code == "bad_signature"


def test_published_vector_is_stale_on_todays_clock() -> None:
    vector = _load("signed-vector.json")
    with pytest.raises(WebhookRejected) as caught:
        verify({"signature": vector["signature"]}, vector["signing_key"], _never, now=NOW)
    assert caught.value.code == "stale_timestamp"


SAMPLES: list[tuple[str, list[tuple[str, str, bool | None]]]] = [
    ("delivered.json", [("delivered", "john@example.com", None)]),
    ("failed-permanent.json", [("bounced", "slava@mailgun.com", True)]),
    ("failed-permanent-delayed-bounce.json", [("bounced", "christest123@test.com", True)]),
    ("complained.json", [("complained", "foo@example.com", None)]),
    ("failed-temporary.json", []),
    ("opened.json", []),
    ("clicked.json", []),
    ("unsubscribed.json", []),
    ("accepted.json", []),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_published_samples_parse(name: str, expected: list[tuple[str, str, bool | None]]) -> None:
    events = parse({"event-data": _load(name)})
    assert [(e.event, e.recipient, e.permanent) for e in events] == expected
    assert all(e.esp == "mailgun" and e.occurred_at is not None for e in events)
    assert all(e.message_id is None for e in events)  # the samples carry no variables
