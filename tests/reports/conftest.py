"""Fixtures of the report tests: a campaign with known clicks (``sale``, built with the
helpers of test_stats) and a local HTTP server that records what is asked of it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.models import Campaign
from tests.reports.test_stats import T0, click, make_campaign, placement, recipients


@pytest.fixture
def sale(session: Session) -> tuple[Campaign, dict[str, int]]:
    """A campaign with clicks: link 0 by ann (twice, desktop) and bob (mobile, later),
    link 1 by ann, link 2 (same page as 0) by cid on a tablet; link 4 never clicked."""
    campaign = make_campaign(session)
    who = recipients(session, "ann", "bob", "cid", "dan")
    click(session, placement(campaign, 0), who["ann"], T0 + timedelta(minutes=5))
    click(session, placement(campaign, 0), who["ann"], T0 + timedelta(hours=2, minutes=1))
    click(session, placement(campaign, 0), who["bob"], T0 + timedelta(hours=5), "mobile")
    click(session, placement(campaign, 1), who["ann"], T0 + timedelta(minutes=30))
    click(session, placement(campaign, 2), who["cid"], T0 + timedelta(hours=1), "tablet")
    session.flush()
    return campaign, who


class Recorder(http.server.BaseHTTPRequestHandler):
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


@pytest.fixture
def local_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request made to it."""
    hits: list[str] = []
    handler = type("Handler", (Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()
    thread.join()


def hostile_urls(port: int) -> list[str]:
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
