"""Postmark: Basic credentials compared whole, and the delivery records parsed.

Postmark's published samples (ActiveCampaign's MIT examples) are read from the reference
data, never copied here.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ingest.esp import WebhookRejected
from app.ingest.esp.postmark import parse, verify
from tests.prerequisites import require_shared

USER, PASSWORD = "hook", "s3cret:with-colon"


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_configured_credentials_are_accepted() -> None:
    verify(_basic(f"{USER}:{PASSWORD}"), USER, PASSWORD)
    verify("basic  " + _basic(f"{USER}:{PASSWORD}")[6:], USER, PASSWORD)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic !!!",
        _basic(f"{USER}:wrong"),
        _basic(f"other:{PASSWORD}"),
        _basic(f"{USER}:{PASSWORD}x"),
        _basic(f"{USER}:{PASSWORD[:-1]}"),
        _basic(f"{USER}{PASSWORD}"),
        _basic(f"{USER}:s3cret"),  # the password cut at its colon
    ],
)
def test_other_credentials_are_refused(header: str | None) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify(header, USER, PASSWORD)
    assert caught.value.code == "bad_credentials"


def test_empty_configuration_is_an_error_not_an_open_door() -> None:
    with pytest.raises(ValueError):
        verify(_basic(":"), "", "")


def test_bounce_types_decide_permanence() -> None:
    def bounce(kind: str) -> list[tuple[str, bool | None]]:
        record = {"RecordType": "Bounce", "Type": kind, "Email": "a@x.example"}
        return [(e.event, e.permanent) for e in parse(json.dumps(record))]

    assert bounce("HardBounce") == [("bounced", True)]
    assert bounce("SoftBounce") == [("bounced", False)]
    assert bounce("Unknown") == [("bounced", None)]
    assert bounce("AutoResponder") == []


def test_parse_reads_metadata_and_net_times() -> None:
    record = {
        "RecordType": "Delivery",
        "Recipient": "a@x.example",
        "DeliveredAt": "2025-04-05T16:33:54.9070259Z",
        "Metadata": {"clickmap_id": "cm_9", "other": "o"},
    }
    [event] = parse(record)
    assert (event.event, event.recipient, event.message_id) == ("delivered", "a@x.example", "cm_9")
    assert event.occurred_at == datetime(2025, 4, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert parse(record, id_key="other")[0].message_id == "o"


@pytest.mark.parametrize("body", [b"{", b"[]"])
def test_parse_refuses_what_is_not_a_record(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse(body)
    assert caught.value.code == "malformed"


def _shared() -> Path:
    return require_shared("esp") / "postmark"


SAMPLES: list[tuple[str, list[tuple[str, str, bool | None]]]] = [
    ("delivery.json", [("delivered", "john@example.com", None)]),
    ("bounce.json", [("bounced", "john@example.com", True)]),
    ("spam-complaint.json", [("complained", "john@example.com", None)]),
    ("open.json", []),
    ("click.json", []),
    ("subscription-change.json", []),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_published_samples_parse(name: str, expected: list[tuple[str, str, bool | None]]) -> None:
    events = parse((_shared() / name).read_bytes())
    assert [(e.event, e.recipient, e.permanent) for e in events] == expected
    assert all(e.esp == "postmark" and e.occurred_at is not None for e in events)


def test_published_metadata_is_read_by_key() -> None:
    [event] = parse((_shared() / "delivery.json").read_bytes(), id_key="customer_id")
    assert event.message_id == "12345"
