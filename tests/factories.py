"""Builders the tests share: apps, users and logins, campaigns, recipients, clicks, emails,
real servers and the clients that click them.

Test modules import helpers from here (and fixtures from conftest), never from each other.
"""

from __future__ import annotations

import http.client
import http.server
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Executable, create_engine, func, select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from app import create_app
from app.accounts import create_api_token, create_user
from app.clicks.clicker_sets import decode
from app.clicks.recording import ClickEvent, record_clicks
from app.db import Base, get_engine
from app.ingest import campaigns
from app.ingest.campaigns import (
    VariantInput,
    create_campaign,
    ensure_recipients,
    link_rules,
    token_codec,
)
from app.ingest.rewriting import LinkRules
from app.models import (
    Campaign,
    CampaignClicker,
    CampaignStats,
    CellReasons,
    Click,
    ClickDaily,
    ClickHourly,
    ClickSegment,
    ClickSegmentDaily,
    MachineReasons,
    PartCell,
    PartClicker,
    PartHourly,
    PartStats,
    Placement,
    PlacementRecipient,
    PlacementStats,
)
from app.ops.migrate import upgrade
from app.reports.stats import in_utc
from app.tokens import ClickToken, TokenCodec
from app.vocabulary import HONEYPOT
from tests.pgserver import PgServer
from tests.prerequisites import ROOT, require_programs

# -- apps -------------------------------------------------------------------------------------

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


def make_app(url: str, tmp_path: Path, **overrides: Any) -> Flask:
    """A test app on database ``url``; everything it writes (spool, instance folder) goes
    under ``tmp_path``, and nothing is read from the environment."""
    config: dict[str, Any] = {
        "DATABASE_URL": url,
        "SECRET_KEYS": [TEST_SECRET],
        "TRACKING_BASE_URL": "https://t.example.com",
        "SPOOL_DIR": str(tmp_path / "spool"),
        "TESTING": True,
    }
    config.update(overrides)
    return create_app(config, instance_path=tmp_path / "instance")


def empty_tables(app: Flask) -> None:
    """Delete every row (the schema stays, migrated once per run)."""
    engine = get_engine(app)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


# -- users and logins -------------------------------------------------------------------------

PASSWORD = "correct horse battery"


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def add_user(app: Flask, username: str = "ana", password: str = PASSWORD) -> None:
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        create_user(s, username, password)
        s.commit()


def log_in(
    client: FlaskClient, username: str = "ana", password: str = PASSWORD, **extra: str
) -> TestResponse:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token, **extra}
    )


class AuthActions:
    """What a user does to get in and out (the ``auth`` fixture)."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app, self.client = app, client

    def add_user(self, username: str = "ana", password: str = PASSWORD) -> None:
        add_user(self.app, username, password)

    def login(self, username: str = "ana", password: str = PASSWORD, **extra: str) -> TestResponse:
        return log_in(self.client, username, password, **extra)

    def logout(self) -> TestResponse:
        token = csrf_from(self.client.get("/").get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})


# -- a campaign with clicks, built through the real writer --------------------------------------

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
AGENTS = {
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "other": "curl/8.0",
}
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
# Positions: 0 and 2 lead to the same page, 3 is skipped (mailto), 4 has an onclick.
EMAIL = """<!doctype html>
<html><head><meta charset="utf-8"><title>Spring sale</title></head>
<body>
<p><a href="https://shop.example.com/sale">Shop the sale</a></p>
<p><a href='https://shop.example.com/new'>New arrivals</a></p>
<p><a href=https://shop.example.com/sale>Sale again</a></p>
<p><a href="mailto:help@example.com">Write to us</a></p>
<p><a href="https://shop.example.com/x" onclick="alert(1)">Odd one</a></p>
<script>document.title = "pwned"</script>
</body></html>
"""
AMP = """<!doctype html>
<html ⚡4email><head><meta charset="utf-8">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp4email-boilerplate>body{visibility:hidden}</style>
</head><body>
<amp-img src="https://img.example.com/a.png" alt="Hero" width="600" height="300"
  layout="responsive"></amp-img>
<a href="https://shop.example.com/amp">AMP link</a>
</body></html>
"""
_ids = itertools.count()


def make_campaign(
    session: Session, name: str = "Spring sale", variants: tuple[str, ...] = ("A",)
) -> Campaign:
    created = create_campaign(
        session,
        name,
        [VariantInput(v, EMAIL, AMP) for v in variants],
        rules=LinkRules(),
        max_part_bytes=5_000_000,
    )
    campaign = created.campaign
    campaign.created_at = T0
    session.flush()
    return campaign


def placement(campaign: Campaign, position: int, part: str = "html", variant: int = 0) -> Placement:
    found = [
        p
        for p in campaign.variants[variant].placements
        if p.part == part and p.position == position
    ]
    return found[0]


def recipients(session: Session, *names: str) -> dict[str, int]:
    return ensure_recipients(session, names)


def race_writers(factory: Callable[[], Session], plans: list[list[list[ClickEvent]]]) -> None:
    """Writers at once, each on its own connection: writer ``i`` records the batches of
    ``plans[i]`` in order, one transaction each, all starting together. Any writer's error
    fails the test."""
    failures: list[BaseException] = []
    start = threading.Barrier(len(plans))

    def write(batches: list[list[ClickEvent]]) -> None:
        try:
            start.wait(30)
            for batch in batches:
                with factory() as s:
                    record_clicks(s, batch)
                    s.commit()
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []


def click_event(
    target: Placement, recipient: int, at: datetime, device: str = "desktop", **fields: Any
) -> ClickEvent:
    """A click on ``target`` as the redirector would spool it; ``fields`` override the
    request's (``method``, ``user_agent``, ``ip_prefix``, ``purpose``)."""
    request: dict[str, Any] = {"method": "GET", "user_agent": AGENTS[device], "ip_prefix": None}
    return ClickEvent(
        click_id=f"test{next(_ids):028d}",
        clicked_at=at,
        campaign_id=target.campaign_id,
        variant_id=target.variant_id,
        part=target.part,
        placement_id=target.id,
        recipient_id=recipient,
        **(request | fields),
    )


def click(
    session: Session,
    target: Placement,
    recipient: int,
    at: datetime,
    device: str = "desktop",
) -> None:
    """Record one click through the real writer (which derives the device from the agent)."""
    event = click_event(target, recipient, at, device)
    assert record_clicks(session, [event]) == 1


# -- a sent campaign and its tokens (the redirector's view) ------------------------------------

HTML = """<!DOCTYPE html><html><body>
<a href="https://shop.example.com/sale?b=2#top">Sale</a>
<a href="mailto:help@example.com">Mail us</a>
<a href="https://bücher.example/straße?q=ü">Books</a>
</body></html>"""


@dataclass
class Sent:
    """A stored campaign and what is needed to click its links."""

    campaign_id: int
    variant_id: int
    recipients: list[int]
    codec: TokenCodec

    def token(self, position: int, recipient: int = 0, part: str = "html") -> str:
        return self.codec.encode(
            ClickToken(
                self.campaign_id, self.variant_id, part, position, self.recipients[recipient]
            )
        )


def send(app: Flask, html: str = HTML, utm: dict[str, str] | None = None) -> Sent:
    with app.extensions["clickmap.sessionmaker"]() as s:
        created = campaigns.create_campaign(
            s,
            "Spring",
            [campaigns.VariantInput("A", html)],
            rules=link_rules(app),
            max_part_bytes=app.config["MAX_PART_BYTES"],
            utm=utm,
        )
        ids = campaigns.ensure_recipients(s, ["alice", "bob"])
        s.commit()
        variant = created.campaign.variants[0]
        return Sent(created.campaign.id, variant.id, [ids["alice"], ids["bob"]], token_codec(app))


# -- a campaign whose link n has n clicks (the PDF report's view) -----------------------------

SENT = datetime(2025, 3, 3, 9, tzinfo=UTC)


def email_with_links(count: int, extra: str = "") -> str:
    rows = "\n".join(
        f'<tr><td style="padding:6px 0"><a href="https://shop.example.com/item/{n}">'
        f"Item number {n:02d}</a></td></tr>"
        for n in range(1, count + 1)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Test email</title></head>"
        f"<body style='background:#f4f4f4'>{extra}<table width='600' align='center'"
        f" style='background:#fff;font:15px Arial'>{rows}</table></body></html>"
    )


@dataclass
class Seeded:
    campaign_id: int
    delivered: int
    # placement position -> (text, total, unique)
    links: dict[int, tuple[str, int, int]]


def seed_campaign(session: Session, html: str, *, recipients: int = 40) -> Seeded:
    """A one-variant campaign whose link n (1-based) has n clicks from ceil(n/2) people."""
    created = campaigns.create_campaign(
        session, "Spring <sale> & \"friends\"", [campaigns.VariantInput("A", html)],
        rules=LinkRules(), max_part_bytes=10_000_000,
    )  # fmt: skip
    campaign = created.campaign
    campaign.created_at = SENT
    ids = [f"r{n}@example.org" for n in range(recipients)]
    campaigns.record_deliveries(session, campaign, "A", ids, delivered_at=SENT)
    mapping = campaigns.ensure_recipients(session, ids)
    events: list[ClickEvent] = []
    links: dict[int, tuple[str, int, int]] = {}
    tracked = [p for p in campaign.variants[0].placements if p.tracked and p.kind != HONEYPOT]
    for number, placement in enumerate(tracked, 1):
        clickers = [mapping[ids[i % recipients]] for i in range((number + 1) // 2)]
        for i in range(number):
            events.append(
                ClickEvent(
                    click_id=f"t{placement.id}-{i}",
                    # Minutes apart per link: one person's clicks on many links at one
                    # instant, right at delivery, would be a scanner's sweep.
                    clicked_at=SENT + timedelta(hours=1 + i % 30, minutes=3 * number),
                    campaign_id=campaign.id,
                    variant_id=placement.variant_id,
                    part="html",
                    placement_id=placement.id,
                    recipient_id=clickers[i % len(clickers)],
                    method="GET",
                    user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
                    ip_prefix=None,
                )
            )
        links[placement.position] = (placement.text, number, len(clickers))
    record_clicks(session, events)
    session.commit()
    return Seeded(campaign.id, recipients, links)


def pdf_text(data: bytes, tmp_path: Path, first: int | None = None, last: int | None = None) -> str:
    """The PDF's text as poppler's ``pdftotext`` lays it out (skips without poppler)."""
    require_programs("pdftotext")
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    return subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


# -- checks -----------------------------------------------------------------------------------


def rows(session: Session, query: Executable) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in session.execute(query)}


def part_and_campaign_aggregates(session: Session) -> dict[str, Any]:
    """The per-part and per-campaign aggregates, checked against a from-scratch recomputation
    over raw clicks (COUNT and COUNT(DISTINCT)); returns them for further assertions."""
    part = (Click.campaign_id, Click.variant_id, Click.part)
    raw_parts = {
        (c, v, p): (n, u)
        for c, v, p, n, u in session.execute(
            select(*part, func.count(), func.count(func.distinct(Click.recipient_id))).group_by(
                *part
            )
        )
    }
    parts = {
        (c, v, p): (n, u)
        for c, v, p, n, u in session.execute(
            select(
                PartStats.campaign_id,
                PartStats.variant_id,
                PartStats.part,
                PartStats.total,
                PartStats.unique,
            )
        )
    }
    assert parts == raw_parts
    raw_campaigns = {
        c: (n, u)
        for c, n, u in session.execute(
            select(
                Click.campaign_id, func.count(), func.count(func.distinct(Click.recipient_id))
            ).group_by(Click.campaign_id)
        )
    }
    campaigns = {
        c: (n, u)
        for c, n, u in session.execute(
            select(CampaignStats.campaign_id, CampaignStats.total, CampaignStats.unique)
        )
    }
    assert campaigns == raw_campaigns
    part_clickers = rows(
        session,
        select(
            PartClicker.campaign_id,
            PartClicker.variant_id,
            PartClicker.part,
            PartClicker.recipient_id,
        ),
    )
    assert part_clickers == rows(session, select(*part, Click.recipient_id))
    campaign_clickers = rows(
        session, select(CampaignClicker.campaign_id, CampaignClicker.recipient_id)
    )
    assert campaign_clickers == rows(session, select(Click.campaign_id, Click.recipient_id))
    # Columns, not whole rows: the migration tests call this at revisions older than
    # today's models.
    part_hours: dict[tuple[int, int, str, datetime, str], int] = {}
    for c, v, p, hour, device, total in session.execute(
        select(
            PartHourly.campaign_id,
            PartHourly.variant_id,
            PartHourly.part,
            PartHourly.hour,
            PartHourly.device,
            PartHourly.total,
        )
    ):
        part_hours[(c, v, p, hour.astimezone(UTC), device)] = total
    raw_hours: dict[tuple[int, int, str, datetime, str], int] = {}
    for *keys, clicked_at, device in session.execute(select(*part, Click.clicked_at, Click.device)):
        hour = clicked_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        key = (*keys, hour, device)
        raw_hours[key] = raw_hours.get(key, 0) + 1
    assert part_hours == raw_hours
    return {"parts": parts, "campaigns": campaigns}


# -- real servers: gunicorn in a process group of its own, and clients clicking ------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_database(backend: str, tmp_path: Path, pg: PgServer | None = None) -> Iterator[str]:
    """A migrated database nobody else uses: a SQLite file, or a PostgreSQL schema."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
        schema = None
    else:
        assert pg is not None
        schema, url = pg.new_schema("clickmap_srv")
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if schema is not None:
            assert pg is not None
            pg.drop_schema(schema)


def seed(url: str, tmp_path: Path, recipients: int) -> list[str]:
    """A campaign and one token per recipient (each request its own recipient, so every
    302 can be matched with its stored click)."""
    app = make_app(url, tmp_path / "seed")
    try:
        sent = send(app)
        with app.extensions["clickmap.sessionmaker"]() as s:
            ids = campaigns.ensure_recipients(s, [f"r{i}" for i in range(recipients)])
            s.commit()
        sent.recipients = [ids[f"r{i}"] for i in range(recipients)]
        return [sent.token(0, i) for i in range(recipients)]
    finally:
        get_engine(app).dispose()


class Server:
    """A server with the production config, in its own process group: gunicorn given the
    app factory and ``settings`` (the default), or, with ``cli``, the ``clickmap serve``
    command itself, which reads them from the environment as it does in production."""

    def __init__(
        self,
        url: str,
        spool: Path,
        log: Path,
        *,
        workers: int = 2,
        cli: bool = False,
        **settings: Any,
    ) -> None:
        self.url, self.spool, self.log, self.settings = url, spool, log, settings
        self.workers, self.cli = workers, cli
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.api_token: str | None = None

    def start(self) -> None:
        self.port = free_port()
        if self.api_token is None:  # /healthz shows its counters to token holders only
            engine = create_engine(self.url)
            try:
                with Session(engine) as s:
                    self.api_token = create_api_token(s, "monitor")
                    s.commit()
            finally:
                engine.dispose()
        # The writer process builds its app from the environment, the workers from the
        # mapping below (which reads no environment): both get the same settings, and no
        # CLICKMAP_* of the shell running the tests reaches either.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKMAP_")}
        env.update(
            {
                "CLICKMAP_DATABASE_URL": self.url,
                "CLICKMAP_SECRET_KEYS": TEST_SECRET,
                "CLICKMAP_SPOOL_DIR": str(self.spool),
                "CLICKMAP_BIND": f"127.0.0.1:{self.port}",
                "CLICKMAP_WORKERS": str(self.workers),
                "CLICKMAP_THREADS": "4",
            }
        )
        settings = {
            "DATABASE_URL": self.url,
            "SECRET_KEYS": [TEST_SECRET],
            "SPOOL_DIR": str(self.spool),
            **self.settings,
        }
        if "CLICK_BATCH_INTERVAL" in self.settings:
            env["CLICKMAP_CLICK_BATCH_INTERVAL"] = str(self.settings["CLICK_BATCH_INTERVAL"])
        factory = f"app:create_app({settings!r})"
        command = [sys.executable, "-m", "gunicorn", "-c", "python:app.ops.gunicorn_conf", factory]
        if self.cli:  # what the ``clickmap`` script runs
            command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError("server did not start:\n" + self.log.read_text()[-3000:])

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        header = {"Authorization": f"Bearer {self.api_token}"}
        return dict(json.loads(self.get("/healthz", header)[1]))

    def kill(self) -> None:
        """SIGKILL the whole group: master and workers die at once, mid-whatever."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self.process = None


class Load:
    """Client threads clicking one token each, over keep-alive connections; bounded in
    count and time. ``redirected`` holds the index of every token that got its 302."""

    def __init__(
        self, server: Server, tokens: list[str], threads: int = 6, seconds: float = 40.0
    ) -> None:
        self.server, self.tokens = server, tokens
        self.redirected: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.tokens):
                return None
            self._next += 1
            return self._next - 1

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            index = self._take()
            if index is None:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
                conn.request("GET", f"/c/{self.tokens[index]}")
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
                continue
            with self._lock:
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.status == 302:
                    self.redirected.add(index)
        if conn is not None:
            conn.close()

    def wait_for(self, redirects: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while len(self.redirected) < redirects and time.monotonic() < deadline:
            time.sleep(0.02)


def clicks_per_recipient(url: str) -> dict[int, int]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(Click.recipient_id, func.count()).group_by(Click.recipient_id)
            ).all()
        return {r: n for r, n in rows}
    finally:
        engine.dispose()


def poll(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def recipient_ids(url: str, count: int) -> list[int]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            ids = campaigns.ensure_recipients(s, [f"r{i}" for i in range(count)])
        return [ids[f"r{i}"] for i in range(count)]
    finally:
        engine.dispose()


# -- addresses a PDF must never load ----------------------------------------------------------


def hostile_urls(port: int) -> list[str]:
    """Local, private and non-web addresses, some on ``port`` where a test server listens."""
    return [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "file://localhost/etc/passwd",
        "/etc/passwd",
        f"http://127.0.0.1:{port}/pwned.png",
        f"http://localhost:{port}/pwned.png",
        f"http://[::1]:{port}/pwned.png",
        f"http://[::ffff:127.0.0.1]:{port}/pwned.png",
        f"http://2130706433:{port}/pwned.png",
        f"http://127.1:{port}/pwned.png",
        # Written so that a parser other than the browser's sees another host.
        f"http://127.0.0.1:{port}\\@example.com/pwned.png",
        f"http://①②⑦.0.0.1:{port}/pwned.png",
        f"http://0x7f.1:{port}/pwned.png",
        "http://127.0.0.1/pwned.png",
        "https://127.0.0.1/pwned.png",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        f"ftp://127.0.0.1:{port}/",
        f"gopher://127.0.0.1:{port}/",
        "https://clickmap.invalid/static/../../app/config.py",
        "https://clickmap.invalid/static/%2e%2e/%2e%2e/app/config.py",
        "https://clickmap.invalid/etc/passwd",
    ]


class Recorder(http.server.BaseHTTPRequestHandler):
    """A local web server's handler that answers every GET with one image and notes it."""

    hits: list[str]
    body = b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>"
    content_type = "image/svg+xml"

    def do_GET(self) -> None:
        self.hits.append(f"{self.headers.get('Host')} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def recording_server(host: str = "127.0.0.1") -> Iterator[tuple[int, list[str]]]:
    """A web server on ``host`` that answers every GET with a small image (``Recorder``) and
    notes each request; yields its port and the list of requests."""
    hits: list[str] = []
    handler = type("Handler", (Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the app on a real HTTP server ------------------------------------------------------------


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served over HTTP on a free port of 127.0.0.1, for browsers and HTTP clients;
    yields its base URL. Request logging is off: one line per request drowns a failure."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def first_and_last_links(session: Session, human_only: bool) -> dict[int, tuple[int, int]]:
    """``placement_id -> (first, last)`` recounted from raw clicks: for each recipient and
    email part, the link of their first and of their last click (ties in time go to the
    lower link id)."""
    ends: dict[tuple[int, int, str, int], tuple[Any, Any]] = {}
    query = select(Click)
    if human_only:
        query = query.where(Click.label == "human")
    for c in session.scalars(query):
        key = (c.campaign_id, c.variant_id, c.part, c.recipient_id)
        moment = (in_utc(c.clicked_at), c.placement_id)
        first, last = ends.get(key, (moment, moment))
        ends[key] = (min(first, moment), max(last, moment))
    found: dict[int, tuple[int, int]] = {}
    for (_at, first), (_at2, last) in ends.values():
        found[first] = (found.get(first, (0, 0))[0] + 1, found.get(first, (0, 0))[1])
        found[last] = (found.get(last, (0, 0))[0], found.get(last, (0, 0))[1] + 1)
    return found


def human_aggregates(session: Session) -> None:
    """Every human figure the writer keeps (``human_*`` columns, ``machine_reasons``) equals
    a from-scratch count over the raw clicks' labels, and every machine figure is the
    all-clicks figure minus the human one."""
    human = Click.label == "human"

    def counted(*keys: Any) -> dict[tuple[Any, ...], tuple[int, int]]:
        found = session.execute(
            select(*keys, func.count(), func.count(func.distinct(Click.recipient_id)))
            .where(human)
            .group_by(*keys)
        )
        return {tuple(row[:-2]): (row[-2], row[-1]) for row in found}

    def kept(model: Any, *keys: Any) -> dict[tuple[Any, ...], tuple[int, int]]:
        found = session.execute(select(*keys, model.human_total, model.human_unique))
        return {tuple(row[:-2]): (row[-2], row[-1]) for row in found if row[-2] or row[-1]}

    session.expire_all()
    assert kept(PlacementStats, PlacementStats.placement_id) == counted(Click.placement_id)
    part = (PartStats.campaign_id, PartStats.variant_id, PartStats.part)
    assert kept(PartStats, *part) == counted(Click.campaign_id, Click.variant_id, Click.part)
    assert kept(CampaignStats, CampaignStats.campaign_id) == counted(Click.campaign_id)
    pairs = {
        (p, r): n
        for p, r, n in session.execute(
            select(
                PlacementRecipient.placement_id,
                PlacementRecipient.recipient_id,
                PlacementRecipient.human_clicks,
            )
        )
        if n
    }
    assert pairs == {k: n for k, (n, _u) in counted(Click.placement_id, Click.recipient_id).items()}
    assert first_and_last_links(session, human_only=True) == {
        s.placement_id: (s.human_first_clickers, s.human_last_clickers)
        for s in session.scalars(select(PlacementStats))
        if s.human_first_clickers or s.human_last_clickers
    }
    assert first_and_last_links(session, human_only=False) == {
        s.placement_id: (s.first_clickers, s.last_clickers)
        for s in session.scalars(select(PlacementStats))
        if s.first_clickers or s.last_clickers
    }
    hours: dict[tuple[Any, ...], int] = {}
    reasons: dict[tuple[Any, ...], int] = {}
    for c in session.scalars(select(Click)):
        if c.label != "human":
            for reason in c.reasons.split(","):
                key = (c.campaign_id, c.variant_id, c.part, reason)
                reasons[key] = reasons.get(key, 0) + 1
            continue
        hour = c.clicked_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        key = (c.placement_id, hour, c.device)
        hours[key] = hours.get(key, 0) + 1
    assert {
        (h.placement_id, h.hour.astimezone(UTC), h.device): h.human_total
        for h in session.scalars(select(ClickHourly))
        if h.human_total
    } == hours
    assert {
        (m.campaign_id, m.variant_id, m.part, m.reason): m.clicks
        for m in session.scalars(select(MachineReasons))
        if m.clicks
    } == reasons
    clicker_sets_exact(session)


def clicker_sets_exact(session: Session) -> None:
    """Every cell of ``click_hourly``, ``click_daily``, ``click_segment``,
    ``click_segment_daily`` and ``part_stats`` holds exactly the recipients who clicked in
    it, and who clicked in it as a human, recounted from the raw clicks; and the segment
    cells' counters equal the clicks in each cell."""
    hours: dict[tuple[Any, ...], tuple[set[int], set[int]]] = {}
    days: dict[tuple[Any, ...], tuple[set[int], set[int]]] = {}
    segments: dict[tuple[Any, ...], tuple[set[int], set[int], list[int]]] = {}
    segment_days: dict[tuple[Any, ...], tuple[set[int], set[int], list[int]]] = {}
    parts: dict[tuple[Any, ...], tuple[set[int], set[int]]] = {}
    cells: dict[tuple[Any, ...], list[int]] = {}
    reasons: dict[tuple[Any, ...], int] = {}
    session.expire_all()
    for c in session.scalars(select(Click)):
        human = c.label == "human"
        hour = c.clicked_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        cell = (
            c.campaign_id,
            c.variant_id,
            c.part,
            hour,
            c.device,
            c.client or "",
            c.country or "",
        )
        cells.setdefault(cell, [0, 0])[0] += 1
        cells[cell][1] += human
        for reason in [] if human else filter(None, c.reasons.split(",")):
            reasons[(*cell, reason)] = reasons.get((*cell, reason), 0) + 1
        everyone, humans = hours.setdefault((c.placement_id, hour, c.device), (set(), set()))
        day_all, day_human = days.setdefault(
            (c.placement_id, hour.replace(hour=0), c.device), (set(), set())
        )
        day_all.add(c.recipient_id)
        if human:
            day_human.add(c.recipient_id)
        key = (c.placement_id, c.device, c.client or "", c.country or "")
        day_all, day_human, day_counts = segment_days.setdefault(
            (c.placement_id, hour.replace(hour=0), *key[1:]), (set(), set(), [0, 0])
        )
        part_all, part_human = parts.setdefault(
            (c.campaign_id, c.variant_id, c.part), (set(), set())
        )
        day_all.add(c.recipient_id)
        part_all.add(c.recipient_id)
        day_counts[0] += 1
        if human:
            day_human.add(c.recipient_id)
            part_human.add(c.recipient_id)
            day_counts[1] += 1
        seg_all, seg_human, counts = segments.setdefault(key, (set(), set(), [0, 0]))
        everyone.add(c.recipient_id)
        seg_all.add(c.recipient_id)
        counts[0] += 1
        if human:
            humans.add(c.recipient_id)
            seg_human.add(c.recipient_id)
            counts[1] += 1
    stored = {
        (h.placement_id, h.hour.astimezone(UTC), h.device): (
            set(decode(h.clickers)),
            set(decode(h.human_clickers)),
        )
        for h in session.scalars(select(ClickHourly))
    }
    assert stored == hours, {k: (stored.get(k), hours.get(k)) for k in stored.keys() | hours}
    assert {
        (d.placement_id, d.day.astimezone(UTC), d.device): (
            set(decode(d.clickers)),
            set(decode(d.human_clickers)),
        )
        for d in session.scalars(select(ClickDaily))
    } == days
    assert {
        (s.placement_id, s.device, s.client, s.country): (
            set(decode(s.clickers)),
            set(decode(s.human_clickers)),
            [s.total, s.human_total],
        )
        for s in session.scalars(select(ClickSegment))
        if s.total or s.clickers
    } == segments
    assert {
        (s.placement_id, s.day.astimezone(UTC), s.device, s.client, s.country): (
            set(decode(s.clickers)),
            set(decode(s.human_clickers)),
            [s.total, s.human_total],
        )
        for s in session.scalars(select(ClickSegmentDaily))
        if s.total or s.clickers
    } == segment_days
    assert {
        (p.campaign_id, p.variant_id, p.part): (
            set(decode(p.clickers)),
            set(decode(p.human_clickers)),
        )
        for p in session.scalars(select(PartStats))
        if p.total or p.clickers
    } == parts
    kept_cells = {
        (
            p.campaign_id,
            p.variant_id,
            p.part,
            p.hour.astimezone(UTC),
            p.device,
            p.client,
            p.country,
        ): [
            p.total,
            p.human_total,
        ]
        for p in session.scalars(select(PartCell))
        if p.total
    }
    assert kept_cells == cells
    assert {
        (
            r.campaign_id,
            r.variant_id,
            r.part,
            r.hour.astimezone(UTC),
            r.device,
            r.client,
            r.country,
            r.reason,
        ): r.clicks
        for r in session.scalars(select(CellReasons))
        if r.clicks
    } == reasons


# -- the browser tests' live server (fixtures in tests/browser/conftest.py) ----------------------

BROWSER_USER = "marketer"
BROWSER_PASSWORD = "a-long-browser-password"


@dataclass
class Live:
    """The served app: its address, the demo campaign, the hostile one and the requests
    the hostile email's scripts would have made (``pwned``: none, if all is well)."""

    url: str
    app: Flask
    campaign_id: int
    hostile_id: int
    pwned: list[str]


def sign_in(page: Any, live: Live) -> None:
    """Log the browser tab in through the real login form of the live server."""
    page.goto(live.url + "/login")
    page.fill("input[name=username]", BROWSER_USER)
    page.fill("input[name=password]", BROWSER_PASSWORD)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/login" not in page.url
