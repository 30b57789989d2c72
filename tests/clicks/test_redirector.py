"""The redirector end to end, on each database: what a recipient sees and what is stored."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from app.accounts import create_api_token
from app.clicks import tracking
from app.clicks import writer as writer_module
from app.clicks.recording import RECORD_FIELDS, ClickEvent
from app.db import get_engine
from app.ingest.campaigns import personalizer
from app.models import (
    Campaign,
    Click,
    ClickHourly,
    Placement,
    PlacementRecipient,
    PlacementStats,
    Variant,
)
from app.tokens import ClickToken, TokenCodec
from app.vocabulary import HONEYPOT
from tests.factories import add_user, empty_tables, log_in, make_app, send

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def clicks(session: Session) -> list[Click]:
    session.expire_all()
    return list(session.scalars(select(Click).order_by(Click.id)))


def test_click_redirects_and_is_recorded(app: Flask, session: Session) -> None:
    sent = send(app)
    client = app.test_client()
    response = client.get(
        f"/c/{sent.token(0)}",
        headers={"User-Agent": IPHONE},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/sale?b=2#top"
    assert response.headers["Cache-Control"] == "no-store"
    [click] = clicks(session)
    assert (click.method, click.device, click.recipient_id, click.part) == (
        "GET",
        "mobile",
        sent.recipients[0],
        "html",
    )
    assert click.user_agent == IPHONE
    assert click.ip_prefix == "203.0.113.0/24"
    # (SQLite hands datetimes back naive: UTCDateTime's result processor is not applied there.)
    clicked_at = click.clicked_at.replace(tzinfo=click.clicked_at.tzinfo or UTC)
    assert abs((datetime.now(UTC) - clicked_at).total_seconds()) < 60
    stats = session.scalars(select(PlacementStats)).one()
    assert (stats.placement_id, stats.total, stats.unique) == (click.placement_id, 1, 1)


def test_the_honeypot_link_of_a_personalized_email_redirects(app: Flask, session: Session) -> None:
    """A scanner that follows the hidden link gets the ordinary 302 of the email's first
    tracked link, and its click is recorded against the honeypot placement."""
    sent = send(app)
    variant = session.get(Variant, sent.variant_id)
    assert variant is not None
    [email] = list(personalizer(app).personalize(session, variant, ["alice"]))
    session.commit()  # personalizing records the email as sent
    base = app.config["TRACKING_BASE_URL"] + "/c/"
    first = re.search(re.escape(base) + r"([\w.-]+)", email["html"] or "")
    assert first is not None
    response = app.test_client().get(f"/c/{first.group(1)}", headers={"User-Agent": IPHONE})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/sale?b=2#top"
    [click] = clicks(session)
    honeypot = session.get(Placement, click.placement_id)
    assert honeypot is not None and honeypot.kind == HONEYPOT


def test_the_spooled_record_follows_record_fields(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redirect path builds the spool record by hand; its order must be RECORD_FIELDS,
    the order ``ClickEvent.to_record`` writes and the writer decodes."""
    sent = send(app)
    spooled: list[list[Any]] = []
    monkeypatch.setattr(tracking.Tracker, "submit", lambda self, record: spooled.append(record))
    response = app.test_client().get(
        f"/c/{sent.token(0, recipient=1)}",
        headers={"User-Agent": IPHONE, "Sec-Purpose": "prefetch"},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    assert response.status_code == 302
    [record] = spooled
    fields = dict(zip(RECORD_FIELDS, record, strict=True))
    placement_id = session.scalar(
        select(Placement.id).where(Placement.variant_id == sent.variant_id, Placement.position == 0)
    )
    assert {k: v for k, v in fields.items() if k not in ("click_id", "clicked_at")} == {
        "campaign_id": sent.campaign_id,
        "variant_id": sent.variant_id,
        "part": "html",
        "placement_id": placement_id,
        "recipient_id": sent.recipients[1],
        "method": "GET",
        "user_agent": IPHONE,
        "ip_prefix": "203.0.113.0/24",
        "purpose": "prefetch",
    }
    assert abs(fields["clicked_at"] - datetime.now(UTC).timestamp()) < 60
    event = ClickEvent.from_record(record)
    assert (event.click_id, event.placement_id) == (fields["click_id"], placement_id)
    assert abs(event.clicked_at.timestamp() - fields["clicked_at"]) < 1e-5


def test_head_is_counted_as_head(app: Flask, session: Session) -> None:
    sent = send(app)
    response = app.test_client().head(f"/c/{sent.token(0)}")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/sale?b=2#top"
    assert [c.method for c in clicks(session)] == ["HEAD"]


def test_non_ascii_destination_becomes_a_valid_location(app: Flask) -> None:
    sent = send(app)
    response = app.test_client().get(f"/c/{sent.token(2)}")
    assert response.headers["Location"] == "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"


def test_utm_parameters_are_appended(app: Flask) -> None:
    sent = send(app, utm={"utm_source": "newsletter", "utm_campaign": "spring sale"})
    response = app.test_client().get(f"/c/{sent.token(0)}")
    assert response.headers["Location"] == (
        "https://shop.example.com/sale?b=2&utm_source=newsletter&utm_campaign=spring%20sale#top"
    )


def test_injected_cr_lf_never_reach_a_header(app: Flask) -> None:
    sent = send(
        app, '<a href="https://example.com/a&#13;&#10;Set-Cookie: pwned=1&#13;&#10;<script>">'
    )
    response = app.test_client().get(f"/c/{sent.token(0)}")
    assert response.status_code == 302
    assert "Set-Cookie" not in response.headers
    assert response.headers["Location"] == "https://example.com/aSet-Cookie:%20pwned=1%3Cscript%3E"


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?next=https://evil.example/", {}),
        ("?url=https%3A%2F%2Fevil.example&redirect=//evil.example", {}),
        ("?utm_source=evil", {}),
        ("", {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}),
        ("", {"Referer": "https://evil.example/", "X-Original-URL": "https://evil.example/"}),
    ],
)
def test_the_request_cannot_change_the_destination(
    app: Flask, query: str, headers: dict[str, str]
) -> None:
    sent = send(app, utm={"utm_source": "newsletter"})
    response = app.test_client().get(f"/c/{sent.token(0)}{query}", headers=headers)
    assert response.status_code == 302
    assert response.headers["Location"] == (
        "https://shop.example.com/sale?b=2&utm_source=newsletter#top"
    )


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


BAD_TOKENS: list[tuple[str, Any]] = [
    ("tampered signature", lambda s: _flip(s.token(0), -1)),
    ("tampered payload", lambda s: _flip(s.token(0), 3)),
    ("truncated", lambda s: s.token(0)[:-1]),
    ("cut in half", lambda s: s.token(0)[:22]),
    ("extended", lambda s: s.token(0) + "A"),
    ("doubled", lambda s: s.token(0) * 2),
    ("swapped halves", lambda s: s.token(0)[23:] + "." + s.token(0)[:22]),
    (
        "wrong key",
        lambda s: TokenCodec(["another-secret-key-0123456789abcdef"]).encode(
            ClickToken(s.campaign_id, s.variant_id, "html", 0, s.recipients[0])
        ),
    ),
    ("unknown placement", lambda s: s.token(99)),
    ("untracked placement (mailto)", lambda s: s.token(1)),
    ("unknown part", lambda s: s.token(0, part="amp")),
    (
        "another campaign",
        lambda s: s.codec.encode(
            ClickToken(s.campaign_id + 1000, s.variant_id, "html", 0, s.recipients[0])
        ),
    ),
    (
        "another variant",
        lambda s: s.codec.encode(
            ClickToken(s.campaign_id, s.variant_id + 1000, "html", 0, s.recipients[0])
        ),
    ),
    ("empty-looking", lambda s: "." * 45),
    ("garbage", lambda s: "not-a-token"),
    ("non-ascii", lambda s: "é" * 45),
    ("percent-encoded newline", lambda s: s.token(0)[:44] + "%0A"),
    ("path traversal", lambda s: "..%2F..%2Fetc%2Fpasswd"),
    ("trailing slash", lambda s: s.token(0) + "/"),
    ("extra path", lambda s: s.token(0) + "/https://evil.example/"),
]


@pytest.mark.parametrize(("name", "make"), BAD_TOKENS, ids=[n for n, _ in BAD_TOKENS])
def test_bad_tokens_get_a_friendly_404_and_no_click(
    app: Flask, session: Session, name: str, make: Any
) -> None:
    sent = send(app)
    response = app.test_client().get(f"/c/{make(sent)}")
    assert response.status_code == 404
    assert "Location" not in response.headers
    body = response.get_data(as_text=True)
    assert "not valid" in body and "Traceback" not in body
    assert clicks(session) == []


def test_deleted_campaign_is_gone(app: Flask, session: Session) -> None:
    sent = send(app)
    campaign = session.get(Campaign, sent.campaign_id)
    assert campaign is not None
    campaign.deleted_at = datetime.now(UTC)
    session.commit()
    for method in ("get", "head"):
        response = getattr(app.test_client(), method)(f"/c/{sent.token(0)}")
        assert response.status_code == 410
        assert "Location" not in response.headers
    assert "removed" in app.test_client().get(f"/c/{sent.token(0)}").get_data(as_text=True)
    assert clicks(session) == []


def test_forwarded_headers_are_trusted_only_behind_configured_proxies(
    backends: Any, backend: str, tmp_path: Path
) -> None:
    """With one proxy, the address it appended (the last entry) and the scheme it saw count;
    with none, the headers are the client's own and change nothing."""
    forwarded = {
        "X-Forwarded-For": "6.6.6.6, 198.51.100.23",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    for proxies, expected, secure in ((0, "10.9.8.0/24", False), (1, "198.51.100.0/24", True)):
        app = make_app(backends.url(backend), tmp_path / str(proxies), TRUSTED_PROXY_COUNT=proxies)
        try:
            client = app.test_client()
            sent = send(app)
            response = client.get(
                f"/c/{sent.token(0)}", headers=forwarded, environ_base={"REMOTE_ADDR": "10.9.8.7"}
            )
            assert response.status_code == 302
            with app.extensions["clickmap.sessionmaker"]() as s:
                assert [c.ip_prefix for c in clicks(s)] == [expected]
            login = client.get("/login", headers=forwarded)
            assert ("Secure" in login.headers["Set-Cookie"]) is secure
            # The host is never taken from a header.
            assert "evil.example" not in client.get("/", headers=forwarded).headers["Location"]
        finally:
            empty_tables(app)
            get_engine(app).dispose()


def test_without_proxies_the_app_is_not_wrapped(app: Flask) -> None:
    assert app.config["TRUSTED_PROXY_COUNT"] == 0
    assert not isinstance(app.wsgi_app, ProxyFix)


def test_the_redirector_never_sets_a_cookie(app: Flask) -> None:
    """A marketer clicking a test email carries the dashboard's cookie; no answer under
    ``/c/`` (nor ``/healthz``) refreshes, sets or clears it."""
    sent = send(app)
    add_user(app)
    client = app.test_client()
    assert log_in(client).status_code == 302
    # A dashboard page refreshes the login cookie (it is permanent)...
    assert "Set-Cookie" in client.get("/campaigns").headers
    # ...but a tracked link, a broken one, a HEAD and the health check never touch it.
    answers = [
        client.get(f"/c/{sent.token(0)}"),
        client.head(f"/c/{sent.token(0, recipient=1)}"),
        client.get(f"/c/{sent.token(0)}x"),
        client.get("/c/not-a-token"),
        client.get("/c/"),
        client.get("/healthz"),
    ]
    assert [a.status_code for a in answers] == [302, 302, 404, 404, 404, 200]
    for answer in answers:
        assert "Set-Cookie" not in answer.headers, answer.request.path
        assert "Cookie" not in answer.headers.get("Vary", "")
    assert client.get("/campaigns").status_code == 200  # still logged in


def api_token(app: Flask) -> dict[str, str]:
    """The header of a fresh API token (what a monitor sends)."""
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "monitor")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+psycopg://clickmap@127.0.0.1:1/clickmap?connect_timeout=2"


def test_health_tells_anonymous_callers_only_that_it_is_up(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "up"}
    assert response.headers["Content-Type"] == "application/json"
    # A session cookie is no credential here either.
    add_user(app)
    assert log_in(client).status_code == 302
    assert client.get("/healthz").json == {"status": "up"}


def test_health_stays_up_for_load_balancers_without_a_database(tmp_path: Path) -> None:
    app = make_app(UNREACHABLE, tmp_path)
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 200
        assert response.json == {"status": "up"}
        # A token cannot be checked now, and this process never saw it valid: say so.
        checked = app.test_client().get(
            "/healthz", headers={"Authorization": "Bearer cm_never-seen-before"}
        )
        assert checked.status_code == 503
        assert checked.json is not None
        assert checked.json["error"]["code"] == "database_unavailable"
        assert "database" not in checked.json
    finally:
        get_engine(app).dispose()


@pytest.mark.parametrize(
    "header", ["Bearer cm_not-a-real-token", "Bearer ", "Basic YW5hOnB3", "cm_no-scheme"]
)
def test_health_refuses_a_wrong_token(app: Flask, header: str) -> None:
    response = app.test_client().get("/healthz", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"]["code"] == "unauthorized"


def test_health_reports_database_and_waiting_clicks_to_token_holders(app: Flask) -> None:
    client = app.test_client()
    monitor = api_token(app)
    response = client.get("/healthz", headers=monitor)
    assert response.status_code == 200
    assert response.json is not None
    assert response.json["status"] == "up"
    assert response.json["database"] == "up"
    assert response.json["pending_clicks"] == 0
    assert response.json["lost_clicks"] == 0
    assert response.json["writer_seen_seconds_ago"] is None  # no writer has reported yet
    assert client.get(f"/c/{send(app).token(0)}").status_code == 302
    after = client.get("/healthz", headers=monitor).json
    assert after is not None
    assert after["pending_clicks"] == 0 and after["spool_backlog_bytes"] == 0
    assert 0 <= after["writer_seen_seconds_ago"] < 5
    assert after["cached_links"] == 1


def test_health_shows_the_outage_to_a_monitor_it_knows(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token cannot be checked while the database is down, but one this process found
    valid shortly before still opens the counters: that is when they matter most."""
    client = app.test_client()
    monitor = api_token(app)
    assert client.get("/healthz", headers=monitor).json["database"] == "up"  # type: ignore[index]
    down = create_engine(UNREACHABLE)
    monkeypatch.setitem(app.extensions, "clickmap.engine", down)
    monkeypatch.setitem(app.extensions, "clickmap.sessionmaker", sessionmaker(down))
    try:
        during = client.get("/healthz", headers=monitor)
        assert during.status_code == 200
        assert during.json is not None
        assert during.json["database"] == "down"
        assert client.get("/healthz").json == {"status": "up"}
        stranger = client.get("/healthz", headers={"Authorization": "Bearer cm_someone-else"})
        assert stranger.status_code == 503
    finally:
        down.dispose()


def test_database_outage_known_links_redirect_unknown_ones_wait(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = send(app)
    client = app.test_client()
    assert client.get(f"/c/{sent.token(0)}").status_code == 302  # now cached

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(tracking, "session_scope", unreachable)  # link lookups
    monkeypatch.setattr(writer_module, "record_clicks", unreachable)  # storing clicks
    for _ in range(3):
        response = client.get(f"/c/{sent.token(0, recipient=1)}")
        assert response.status_code == 302
    unknown = client.get(f"/c/{sent.token(2)}")
    assert unknown.status_code == 503
    assert unknown.headers["Retry-After"] == "30"
    assert tracking.tracker(app).health()["pending_clicks"] == 3
    assert len(clicks(session)) == 1

    monkeypatch.undo()
    tracking.tracker(app).drain()
    assert len(clicks(session)) == 4
    stats = session.scalars(select(PlacementStats)).one()
    assert (stats.total, stats.unique) == (4, 2)
    assert tracking.tracker(app).health()["pending_clicks"] == 0


@pytest.fixture
def writer_apps(backends: Any, backend: str, tmp_path: Path) -> Iterator[list[Flask]]:
    """Two apps sharing one database and spool folder, like two gunicorn workers, each
    with its own writer thread."""
    url = backends.url(backend)
    apps = [make_app(url, tmp_path, CLICK_WRITER="thread") for _ in range(2)]
    yield apps
    for app in apps:
        tracking.stop(app)
    empty_tables(apps[0])
    for app in apps:
        get_engine(app).dispose()


@pytest.mark.parametrize("recipients", [1, 2])
def test_a_thousand_concurrent_clicks_count_exactly(
    writer_apps: list[Flask], recipients: int
) -> None:
    sent = send(writer_apps[0])
    tokens = [sent.token(0, recipient=r) for r in range(recipients)]
    errors: list[str] = []

    def click_many(app: Flask, n: int, offset: int) -> None:
        client = app.test_client()
        for i in range(n):
            response = client.get(f"/c/{tokens[(offset + i) % len(tokens)]}")
            if response.status_code != 302:
                errors.append(response.status)

    threads = [
        threading.Thread(target=click_many, args=(writer_apps[i % 2], 50, i)) for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for app in writer_apps:
        assert tracking.tracker(app).flush(30)
    with writer_apps[0].extensions["clickmap.sessionmaker"]() as s:
        assert s.scalar(select(func.count()).select_from(Click)) == 1000
        stats = s.scalars(select(PlacementStats)).one()
        assert (stats.total, stats.unique) == (1000, recipients)
        pairs = s.scalars(select(PlacementRecipient)).all()
        assert sorted(p.clicks for p in pairs) == sorted([1000 // recipients] * recipients)
        assert s.scalar(select(func.sum(ClickHourly.total))) == 1000
