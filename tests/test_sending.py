"""A sender's round trip on each database: personalize through the API, send the email through
a real SMTP server, read the MIME the server received, then load its pixel, click a link and
report the order, and find every step in the funnel."""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts import create_api_token
from tests.factories import AGENTS, AMP, EMAIL

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

BASE = "https://t.example.com"


class Inbox:
    """An aiosmtpd handler that keeps every message it receives, as bytes."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def bearer(app: Flask) -> dict[str, str]:
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "sender")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


def _mime(html: str, amp: str, to: str) -> EmailMessage:
    """The email as a sender's platform builds it: multipart/alternative, plain text first,
    then AMP, then HTML (AMP before HTML: clients that cannot show AMP pick the last part
    they understand)."""
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = to
    message["Subject"] = "Spring sale"
    message.set_content("Our spring sale is on: https://shop.example.com/sale")
    message.add_alternative(amp, subtype="x-amp-html")
    message.add_alternative(html, subtype="html")
    return message


def test_an_email_sent_opened_clicked_and_converted(
    app: Flask, client: FlaskClient, bearer: dict[str, str], smtp: tuple[int, Inbox]
) -> None:
    created = client.post(
        "/api/v1/campaigns",
        json={
            "name": "Spring",
            "variants": [{"name": "A", "html": EMAIL, "amp": AMP}],
            "click_param": "cm_click",
        },
        headers=bearer,
    )
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    [email] = client.post(
        f"/api/v1/campaigns/{campaign}/variants/A/personalize",
        json={"recipients": ["ann@example.com"]},
        headers=bearer,
    ).json["emails"]

    port, inbox = smtp
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as server:
        server.send_message(_mime(email["html"], email["amp"], "ann@example.com"))
    delivered = client.post(
        f"/api/v1/campaigns/{campaign}/deliveries",
        json={
            "variant": "A",
            "recipients": ["ann@example.com"],
            "deliveredAt": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        },
        headers=bearer,
    )
    assert delivered.status_code == 200

    [(sender, recipients, raw)] = inbox.messages
    assert (sender, recipients) == ("shop@example.com", ["ann@example.com"])
    received = message_from_bytes(raw, policy=policy.default)
    assert received.get_content_type() == "multipart/alternative"
    parts = list(received.iter_parts())
    types = [part.get_content_type() for part in parts]
    assert types == ["text/plain", "text/x-amp-html", "text/html"]
    # Nothing lost in transit but the line endings, which SMTP makes CRLF.
    html = parts[2].get_content().replace("\r\n", "\n")
    amp = parts[1].get_content().replace("\r\n", "\n")
    assert html == email["html"] and amp == email["amp"]

    # The reader's client loads the images: the pixel first.
    [pixel] = re.findall(r'<img src="' + re.escape(BASE) + r'(/o/[^"]+)"', html)
    assert re.search(r'<amp-img src="' + re.escape(BASE) + r'/o/[^"]+"', amp)
    people = {"User-Agent": AGENTS["desktop"]}
    seen = client.get(pixel, headers=people, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert seen.status_code == 200 and seen.headers["Content-Type"] == "image/gif"

    # ... then the reader clicks "Shop the sale" and buys.
    link = re.search(r'<a href="' + re.escape(BASE) + r'(/c/[^"]+)">Shop the sale', html)
    assert link is not None
    followed = client.get(link.group(1), headers=people)
    assert followed.status_code == 302
    location = followed.headers["Location"]
    assert location.startswith("https://shop.example.com/sale?")
    [click_id] = parse_qs(urlsplit(location).query)["cm_click"]
    order = {"clickId": click_id, "orderId": "A-1", "value": "59.90", "currency": "EUR"}
    converted = client.post("/api/v1/conversions", json=order, headers=bearer)
    assert converted.status_code == 201, converted.json

    funnel = client.get(f"/api/v1/campaigns/{campaign}/funnel", headers=bearer).json
    [row] = funnel["variants"]
    steps = {key: row[key] for key in ("sent", "delivered", "viewed", "clicked", "converted")}
    assert steps == {"sent": 1, "delivered": 1, "viewed": 1, "clicked": 1, "converted": 1}
    assert row["revenue"] == {"EUR": "59.9"}
    assert row["openedNotClicked"] == 0
    assert row["clickToOpenRate"] == 100.0
