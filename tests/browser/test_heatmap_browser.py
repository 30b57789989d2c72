"""The heatmap in a real Chromium: log in, switch views, read colors, and stay inert.

A live server (werkzeug, on a free port of 127.0.0.1) serves an app seeded with the demo
campaign. Colors and numbers are read from the page as the browser computed them, inside the
sandboxed email frame, and compared with the aggregates in the database. A second campaign
is an email full of scripts and event handlers; none of them may run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app.accounts import create_user
from app.ingest import campaigns
from app.ingest.links import LinkRules
from app.models import Placement, PlacementStats, Variant
from app.ops import demo
from app.reports.heatmap import TIER_COLORS, tier_for
from tests.prerequisites import missing

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
USERNAME = "marketer"
PASSWORD = "a-long-browser-password"

HOSTILE_EMAIL = """<!doctype html>
<html><head><meta charset="utf-8"><title>Hostile</title>
<script>document.title = "pwned"; window.pwned = 1; fetch("/pwned/head-script");</script>
</head>
<body onload="window.pwned = 2; fetch('/pwned/body-onload'); console.log('pwned onload')">
<script>console.log("pwned inline"); new Image().src = "/pwned/inline";</script>
<img src="x" onerror="window.pwned = 3; fetch('/pwned/onerror'); console.log('pwned onerror')">
<svg onload="fetch('/pwned/svg-onload')"><circle r="4"/></svg>
<iframe srcdoc="<script>parent.document.title='pwned';fetch('/pwned/srcdoc')</script>"></iframe>
<p><a href="https://shop.example.com/one" onclick="fetch('/pwned/onclick')"
      onmouseover="fetch('/pwned/mouseover')">First link</a></p>
<p><a href="javascript:fetch('/pwned/javascript-url')" id="js">A script link</a></p>
<p><a href="https://shop.example.com/two">Second link</a></p>
<form action="/pwned/form"><button id="submit">Send</button></form>
<object data="javascript:fetch('/pwned/object')"></object>
</body></html>
"""


def _chromium_or_skip() -> None:
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM} (make system installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[dev]')")


@dataclass
class Live:
    url: str
    app: Flask
    campaign_id: int
    hostile_id: int
    pwned: list[str]


class _Recorder:
    """WSGI middleware noting any request for /pwned..., whatever the app answers."""

    def __init__(self, wsgi: Callable[..., Iterable[bytes]], hits: list[str]) -> None:
        self.wsgi = wsgi
        self.hits = hits

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/pwned"):
            self.hits.append(environ["PATH_INFO"])
        return self.wsgi(environ, start_response)


@pytest.fixture
def live(app: Flask, session: Session) -> Iterator[Live]:
    _chromium_or_skip()
    seeded = demo.seed(
        session,
        rules=LinkRules(),
        max_part_bytes=app.config["MAX_PART_BYTES"],
        settings=demo.DemoSettings(recipients=800),
    )
    hostile = campaigns.create_campaign(
        session, "Hostile", [campaigns.VariantInput("A", HOSTILE_EMAIL)],
        rules=LinkRules(), max_part_bytes=app.config["MAX_PART_BYTES"],
    ).campaign  # fmt: skip
    create_user(session, USERNAME, PASSWORD)
    session.commit()
    hits: list[str] = []
    app.wsgi_app = _Recorder(app.wsgi_app, hits)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", app, seeded.campaign_id,
                   hostile.id, hits)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def page(live: Live) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        # Nothing but the live server: a stray request elsewhere fails instead of leaving.
        context.route(
            lambda url: not url.startswith(live.url) and not url.startswith(("data:", "about:")),
            lambda route: route.abort(),
        )
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def log_in(page: Any, live: Live) -> None:
    page.goto(live.url + "/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/login" not in page.url


def rgb(hex_color: str) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def expected_badges(
    session: Session, campaign_id: int, variant: str, part: str, metric: str
) -> dict[int, tuple[str, str]]:
    """position -> (tier color, badge text), from the aggregate tables directly."""
    rows = session.execute(
        select(Placement.position, PlacementStats.total, PlacementStats.unique)
        .join(Variant, Variant.id == Placement.variant_id)
        .outerjoin(PlacementStats, PlacementStats.placement_id == Placement.id)
        .where(Variant.campaign_id == campaign_id, Variant.name == variant,
               Placement.part == part, Placement.tracked.is_(True))
    ).all()  # fmt: skip
    values = {
        pos: (total or 0) if metric == "total" else (unique or 0) for pos, total, unique in rows
    }
    top = max(values.values())
    return {
        pos: (rgb(TIER_COLORS[tier_for(value, top)]), f"{value:,}") for pos, value in values.items()
    }


def read_badges(page: Any) -> dict[int, tuple[str, str]]:
    frame = page.frame(name="heatmap-frame")
    assert frame is not None
    frame.wait_for_load_state()
    found: dict[int, tuple[str, str]] = frame.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[id^="cm-"]')].map(e => [
            e.id.slice(3),
            [getComputedStyle(e).outlineColor,
             getComputedStyle(e, '::after').content.replace(/^"|"$/g, '')]]))"""
    )
    return {int(pos): (color, label) for pos, (color, label) in found.items()}


def read_table(page: Any) -> dict[int, tuple[str, str]]:
    rows: dict[str, list[str]] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('tr[id^="row-"]')].map(r =>
            [r.id.slice(4), [...r.querySelectorAll('td.num')].map(c => c.textContent.trim())]))"""
    )
    # Cells: rank, clicks, unique, rate.
    return {int(pos): (cells[1], cells[2]) for pos, cells in rows.items()}


def switch(page: Any, name: str, value: str) -> None:
    with page.expect_navigation():
        page.select_option(f"form.controls select[name={name}]", value)


def test_heatmap_colors_and_numbers_follow_the_view(
    live: Live, page: Any, session: Session
) -> None:
    log_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}")
    steps = [
        (None, None, "A", "html", "total"),
        ("metric", "unique", "A", "html", "unique"),
        ("variant", "B", "B", "html", "unique"),
        ("part", "amp", "B", "amp", "unique"),
        ("metric", "total", "B", "amp", "total"),
    ]
    tiers_seen: set[str] = set()
    for control, value, variant, part, metric in steps:
        if control is not None and value is not None:
            switch(page, control, value)
        assert f"variant={variant}" in page.url or variant == "A"
        expected = expected_badges(session, live.campaign_id, variant, part, metric)
        assert read_badges(page) == expected, (variant, part, metric)
        tiers_seen |= {color for color, _label in expected.values()}
        table = read_table(page)
        assert set(table) == set(expected)
        column = 0 if metric == "total" else 1
        for position, (_color, label) in expected.items():
            assert table[position][column] == label
    assert len(tiers_seen) >= 5


def test_scripts_in_the_email_never_run(live: Live, page: Any) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    log_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.hostile_id}")
    frame = page.frame(name="heatmap-frame")
    assert frame is not None
    frame.wait_for_load_state()
    page.wait_for_timeout(500)  # let anything that would fire, fire

    # Try the interactive ones too: hover, click, a javascript: link, a form.
    frame.hover("text=First link")
    frame.click("#js", no_wait_after=True)
    frame.click("#submit", no_wait_after=True)
    page.wait_for_timeout(500)

    assert live.pwned == []
    assert page.title() != "pwned"
    assert page.evaluate("() => window.pwned") is None
    assert frame.evaluate("() => [document.title, window.pwned === undefined]") == [
        "Hostile",
        True,
    ]
    # Chromium reports what it blocked ("Blocked form submission to '/pwned/form'...",
    # "Refused to execute inline script..."): fine. A message of the email's own is not.
    assert not [m for m in messages if m.startswith("pwned")]
    # The tracked links still got their colors and badges.
    assert {pos for pos in read_badges(page)} == {0, 2}
