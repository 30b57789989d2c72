"""The browser tests' fixtures: an app seeded with the demo campaign (and an email full of
scripts) served on a free port of 127.0.0.1, and a Chromium tab that may reach nothing else."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.accounts import create_user
from app.ingest import campaigns
from app.ingest.links import LinkRules
from app.ops import demo
from tests.factories import BROWSER_PASSWORD, BROWSER_USER, Live, serving
from tests.prerequisites import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

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
    create_user(session, BROWSER_USER, BROWSER_PASSWORD)
    session.commit()
    hits: list[str] = []
    app.wsgi_app = _Recorder(app.wsgi_app, hits)  # type: ignore[method-assign]
    with serving(app) as url:
        yield Live(url, app, seeded.campaign_id, hostile.id, hits)


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
