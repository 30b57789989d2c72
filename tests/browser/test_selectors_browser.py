"""Placement selectors in a real Chromium: each selects exactly its link in the DOM the browser
builds from the email (scripts off, as in the dashboard's sandboxed frame; no network)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.ingest.links import decode_attribute
from app.ingest.rewriting import scan
from app.reports.selectors import placement_selectors
from app.vocabulary import Part
from tests.prerequisites import corpus_params, missing

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MATCHES = "s => Array.from(document.querySelectorAll(s), e => e.getAttribute('href') ?? '')"

HAND_WRITTEN = [
    "<table><tr><td><a href='https://x.example/1'>1</a></td></tr>"
    "<tr><td><a href='https://x.example/2'>2</a><a href='https://x.example/3'>3</a></td>"
    "<td><a href='mailto:a@example.com'>m</a></td></tr></table>",
    "<table><td><a href='https://x.example/cell'>cell</a></td><td>y</td></table>",
    "<table><tr><td><a href='https://x.example/outer'><table><tr><td>"
    "<a href='https://x.example/inner'>Go</a></td></tr></table></a></td></tr></table>",
    "<a name='top'></a><table><tr><td><a href='https://x.example/t'>x</a></td></tr></table>",
    "<style>p{}</style><container><p><a href='https://x.example/head'>x</a></p></container>",
    "<p><a id='Cta' href='https://x.example/id'>x</a></p><o:p><a href='https://x.example/o'>o</a>"
    "</o:p><o:p>y</o:p>",
]


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM} (make system installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False)
        context.route(lambda url: not url.startswith(("data:", "about:")), lambda r: r.abort())
        tab = context.new_page()
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def check_in_browser(page: Any, text: str, part: Part) -> None:
    selectors = placement_selectors(text, part)
    page.set_content(text, wait_until="commit")
    for link in scan(text, part).links:
        selector = selectors[link.position]
        if selector is None:
            continue
        want = link.href if link.skip_reason == "unlocatable" else decode_attribute(link.href)
        assert page.evaluate(MATCHES, selector) == [want], selector


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_hand_written_selectors_select_their_link(page: Any, text: str) -> None:
    check_in_browser(page, text, "html")


@pytest.mark.parametrize("path", corpus_params("email", "amp"))
def test_corpus_selectors_select_their_link(page: Any, path: Path) -> None:
    part: Part = "amp" if path.parent.name == "amp" else "html"
    check_in_browser(page, path.read_text(encoding="utf-8", errors="replace"), part)
