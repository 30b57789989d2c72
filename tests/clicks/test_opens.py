"""Opens end to end, on each database: the pixel in the personalized email, its answer, its
label, and the aggregates the funnel reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clicks.opens import (
    APPLE_PRIVACY,
    HEAD,
    MACHINE,
    PROXY,
    SCANNER_UA,
    OpenEvent,
    label_open,
    record_opens,
)
from app.clicks.recording import ClickEvent
from app.clicks.redirector import PIXEL
from app.clicks.spool import Spool
from app.clicks.tracking import writer_for
from app.db import get_engine
from app.ingest import campaigns
from app.ingest.campaigns import personalizer
from app.models import (
    Campaign,
    Click,
    EmailOpen,
    OpenRecipient,
    OpenStats,
    PlacementStats,
    SentEmail,
    Variant,
)
from app.tokens import ClickToken, open_codec, token_codec
from tests.factories import AGENTS, AMP, EMAIL, empty_tables, make_app, make_campaign, recipients

GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

PIXEL_URL = re.compile(r'<(?:amp-)?img src="(https://t\.example\.com/o/[^"]+)"')


@pytest.mark.parametrize(
    ("agent", "ip", "method", "expected"),
    [
        (AGENTS["desktop"], "203.0.113.0/24", "GET", ("human", (), None)),
        (AGENTS["mobile"], None, "GET", ("human", (), None)),
        (GMAIL_PROXY, "66.249.84.0/24", "GET", (PROXY, (), None)),
        (YAHOO_PROXY, "98.136.0.0/24", "GET", (PROXY, (), None)),
        # Apple Mail Privacy Protection: the bare product token, from Apple or anywhere else.
        ("Mozilla/5.0", "17.58.1.0/24", "GET", (MACHINE, (APPLE_PRIVACY,), "certain")),
        ("Mozilla/5.0", "23.192.4.0/24", "GET", (MACHINE, (APPLE_PRIVACY,), "likely")),
        (" Mozilla/5.0 ", None, "GET", (MACHINE, (APPLE_PRIVACY,), "likely")),
        ("python-requests/2.32.3", "198.51.100.0/24", "GET", (MACHINE, (SCANNER_UA,), "certain")),
        (AGENTS["desktop"], None, "HEAD", (MACHINE, (HEAD,), "certain")),
        (GMAIL_PROXY, None, "HEAD", (MACHINE, (HEAD,), "certain")),
        # A full Safari agent from Apple's network is a person reading, not the proxy.
        (AGENTS["mobile"], "17.58.1.0/24", "GET", ("human", (), None)),
        ("", "not a network", "GET", ("human", (), None)),
    ],
)
def test_open_labels(
    agent: str, ip: str | None, method: str, expected: tuple[str, tuple[str, ...], str | None]
) -> None:
    assert label_open(agent, ip, method) == expected


def _sent_email(app: Flask, *, track_opens: bool = True, who: str = "alice") -> dict[str, str]:
    with app.extensions["clickmap.sessionmaker"]() as s:
        created = campaigns.create_campaign(
            s,
            "Opens",
            [campaigns.VariantInput("A", EMAIL, AMP)],
            rules=campaigns.link_rules(app),
            max_part_bytes=5_000_000,
            track_opens=track_opens,
        )
        [email] = personalizer(app).personalize(s, created.campaign.variants[0], [who])
        s.commit()
        return email


def test_the_pixel_is_in_both_parts_and_off_by_setting(app: Flask, session: Session) -> None:
    email = _sent_email(app)
    html_urls = PIXEL_URL.findall(email["html"])
    amp_urls = PIXEL_URL.findall(email["amp"])
    assert len(html_urls) == 1 and len(amp_urls) == 1
    assert '<amp-img src="https://t.example.com/o/' in email["amp"]
    # Right after <body>, before the sender's markup and the honeypot link.
    assert email["html"].index("/o/") < email["html"].index("/c/")
    # No readable recipient: the token is encrypted, and it is not a click token.
    token = html_urls[0].rsplit("/", 1)[1]
    assert "alice" not in html_urls[0]
    decoded = open_codec(app).decode(token)
    assert decoded.part == "html" and decoded.position == 0
    with pytest.raises(Exception, match="signature"):
        token_codec(app).decode(token)
    # Everything else is the email as before: take the pixel out and the HTML matches.
    off = _sent_email(app, track_opens=False, who="bob")
    assert PIXEL_URL.findall(off["html"]) == [] and PIXEL_URL.findall(off["amp"]) == []
    assert "/o/" not in off["html"] + off["amp"]
    # Personalizing records who was sent what, once.
    assert session.scalar(select(func.count()).select_from(SentEmail)) == 2


def test_switching_opens_off_reaches_the_next_personalization(app: Flask, session: Session) -> None:
    _sent_email(app)
    campaign = session.scalars(select(Campaign)).one()
    campaigns.update_settings(campaign, track_opens=False)
    session.commit()
    [email] = personalizer(app).personalize(session, campaign.variants[0], ["carol"])
    assert "/o/" not in email["html"]


def test_loading_the_pixel_records_an_open(app: Flask, session: Session) -> None:
    email = _sent_email(app)
    client = app.test_client()
    path = PIXEL_URL.findall(email["html"])[0].removeprefix("https://t.example.com")
    response = client.get(
        path, headers={"User-Agent": AGENTS["mobile"]}, environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert response.status_code == 200
    assert response.data == PIXEL and response.headers["Content-Type"] == "image/gif"
    assert response.headers["Cache-Control"].startswith("no-store")
    assert "Set-Cookie" not in response.headers
    client.get(path, headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy, then the reader
    amp = PIXEL_URL.findall(email["amp"])[0].removeprefix("https://t.example.com")
    client.get(amp, headers={"User-Agent": GMAIL_PROXY})
    session.expire_all()
    opens = list(session.scalars(select(EmailOpen).order_by(EmailOpen.id)))
    assert [(o.part, o.label, o.reasons) for o in opens] == [
        ("html", "human", ""),
        ("html", "machine", APPLE_PRIVACY),
        ("amp", "proxy", ""),
    ]
    assert opens[0].ip_prefix == "203.0.113.0/24"
    stats = session.scalars(select(OpenStats)).one()
    assert (stats.total, stats.human, stats.proxy, stats.machine) == (3, 1, 1, 1)
    assert (stats.openers, stats.viewers) == (1, 1)


@pytest.mark.parametrize(
    "path",
    ["/o/x", "/o/" + "A" * 45, "/o/%00", "/o/a/b/c", "/o/" + "é" * 45],
)
def test_a_bad_pixel_token_counts_nothing(app: Flask, session: Session, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 404
    assert response.data == PIXEL
    assert session.scalar(select(func.count()).select_from(EmailOpen)) == 0


def test_a_click_token_is_no_open_and_a_deleted_campaign_answers_gone(
    app: Flask, session: Session
) -> None:
    email = _sent_email(app)
    client = app.test_client()
    click_token = re.findall(r"/c/([^\"]+)", email["html"])[0]
    assert client.get(f"/o/{click_token}").status_code == 404
    campaign = session.scalars(select(Campaign)).one()
    campaign.deleted_at = datetime.now(UTC)
    session.commit()
    path = PIXEL_URL.findall(email["html"])[0].removeprefix("https://t.example.com")
    assert client.get(path).status_code == 410
    variant = session.scalars(select(Variant)).one()
    forged = open_codec(app).encode(ClickToken(campaign.id, variant.id + 99, "html", 0, 1))
    assert client.get(f"/o/{forged}").status_code == 404
    assert session.scalar(select(func.count()).select_from(EmailOpen)) == 0


def _event(n: int, variant: Variant, recipient: int, agent: str, at: datetime) -> OpenEvent:
    return OpenEvent(
        f"open{n:028d}", at, variant.campaign_id, variant.id, "html", recipient, "GET", agent, None
    )


def test_aggregates_equal_the_stored_opens_and_replays_count_once(session: Session) -> None:
    campaign = make_campaign(session, variants=("A", "B"))
    a, b = campaign.variants
    ids = recipients(session, "r1", "r2", "r3")
    events = [
        _event(1, a, ids["r1"], "Mozilla/5.0", T0),
        _event(2, a, ids["r1"], AGENTS["desktop"], T0 + timedelta(minutes=5)),
        _event(3, a, ids["r1"], AGENTS["desktop"], T0 + timedelta(minutes=6)),
        _event(4, a, ids["r2"], "Mozilla/5.0", T0),
        _event(5, a, ids["r3"], GMAIL_PROXY, T0),
        _event(6, b, ids["r1"], AGENTS["mobile"], T0),
    ]
    assert record_opens(session, events[:4]) == 4
    assert record_opens(session, events) == 2  # the first four are replays
    session.commit()
    for variant in (a, b):
        stats = session.get(OpenStats, (campaign.id, variant.id))
        assert stats is not None
        rows = session.execute(
            select(EmailOpen.label, EmailOpen.recipient_id).where(
                EmailOpen.variant_id == variant.id
            )
        ).all()
        assert stats.total == len(rows)
        for label in ("human", "proxy", "machine"):
            assert getattr(stats, label) == sum(1 for row in rows if row.label == label)
        assert stats.openers == len({row.recipient_id for row in rows})
        assert stats.viewers == len(
            {row.recipient_id for row in rows if row.label in ("human", "proxy")}
        )
        viewers = session.scalar(
            select(func.count())
            .select_from(OpenRecipient)
            .where(OpenRecipient.variant_id == variant.id, OpenRecipient.viewer.is_(True))
        )
        assert viewers == stats.viewers
    stats_a = session.get(OpenStats, (campaign.id, a.id))
    assert stats_a is not None and (stats_a.openers, stats_a.viewers) == (3, 2)


def test_opens_and_clicks_share_the_spool_and_a_replay_stores_each_once(
    app: Flask, session: Session
) -> None:
    """The writer stores a spool holding both, in one transaction; a writer killed after
    its commit but before its checkpoint replays them, and nothing counts twice."""
    campaign = make_campaign(session)
    session.commit()
    variant = campaign.variants[0]
    link = next(p for p in variant.placements if p.part == "html" and p.tracked)
    ids = recipients(session, "r1", "r2")
    session.commit()
    spool = Spool(app.config["SPOOL_DIR"])
    at = datetime.now(UTC)
    for n, who in enumerate(("r1", "r2", "r1")):
        spool.append(_event(n, variant, ids[who], AGENTS["desktop"], at).to_record())
        click = ClickEvent(
            f"{n:032x}", at, campaign.id, variant.id, "html", link.id, ids[who], "GET",
            AGENTS["desktop"], None,
        )  # fmt: skip
        spool.append(click.to_record())
    crashed = writer_for(app)
    crashed.reader.scan()
    crashed._store(crashed.reader.take(10))  # stored, but killed before its checkpoint
    crashed.close()
    spool._finalizer()
    survivor = writer_for(app)
    assert survivor.cycle()
    survivor.close()
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(EmailOpen)) == 3
    assert session.scalar(select(func.count()).select_from(Click)) == 3
    stats = session.get(OpenStats, (campaign.id, variant.id))
    assert stats is not None and (stats.total, stats.human, stats.viewers) == (3, 3, 2)
    assert session.scalars(select(PlacementStats)).one().total == 3


def test_an_unwritable_spool_still_answers_the_pixel_and_stores_the_open(
    backends: Any, backend: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = make_app(backends.url(backend), tmp_path, SPOOL_DIR=str(blocker / "spool"))
    try:
        email = _sent_email(app)
        path = PIXEL_URL.findall(email["html"])[0].removeprefix("https://t.example.com")
        assert app.test_client().get(path).status_code == 200
        with app.extensions["clickmap.sessionmaker"]() as s:
            assert s.scalar(select(func.count()).select_from(EmailOpen)) == 1
    finally:
        empty_tables(app)
        get_engine(app).dispose()
