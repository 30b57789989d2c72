"""The API reference page in a real Chromium: it renders every operation of the OpenAPI
document from assets Clickmap serves itself, and asks nothing of any other origin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from flask import Flask

from app.web.api import contract
from tests.factories import serving
from tests.prerequisites import missing

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM} (make system installs it)")
    with serving(app) as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_reference_renders_every_operation_from_our_own_origin(served: str) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(served + "/api/v1/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            shown = page.locator(".opblock").count()
            summaries = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert shown == len(contract.operations)
    assert any("/campaigns/{campaign_id}/heatmap" in text for text in summaries)
    assert requested and all(url.startswith(served) for url in requested), requested
    assert errors == []
