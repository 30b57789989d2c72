"""The comparison page in a real Chromium, on the demo campaign (variants A and B): the
figures the browser shows are the database's, the verdict is the decision rule's, and the
intervals are drawn."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Click, Delivery, Variant
from app.reports import abtest
from app.reports.comparison import CompareParams, build_comparison
from tests.factories import Live, sign_in

pytestmark = pytest.mark.browser


def counted(session: Session, campaign_id: int, name: str) -> tuple[int, int]:
    """(delivered, human unique clickers of any part) of a variant, from the raw rows."""
    variant = session.scalars(
        select(Variant).where(Variant.campaign_id == campaign_id, Variant.name == name)
    ).one()
    delivered = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.variant_id == variant.id)
    )
    clickers = session.scalar(
        select(func.count(Click.recipient_id.distinct())).where(
            Click.variant_id == variant.id, Click.label == "human"
        )
    )
    return int(delivered or 0), int(clickers or 0)


def test_the_demo_comparison_shows_the_databases_figures_and_the_rule(
    live: Live, page: Any, session: Session
) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}")
    with page.expect_navigation():
        page.get_by_role("link", name="Compare variants").click()
    assert page.url.startswith(f"{live.url}/campaigns/{live.campaign_id}/compare")

    view = build_comparison(session, live.campaign_id, CompareParams())
    for arm in (view.comparison.a, view.comparison.b):
        delivered, clickers = counted(session, live.campaign_id, arm.name)
        assert (arm.delivered, arm.unique_clickers) == (delivered, clickers)
        row = page.locator(f'tr[data-arm="{arm.name}"]')
        assert row.locator('[data-figure="delivered"]').inner_text() == f"{delivered:,}"
        assert row.locator('[data-figure="unique"]').inner_text() == f"{clickers:,}"
        assert row.locator('[data-figure="rate"]').inner_text() == f"{clickers / delivered:.2%}"
        assert arm.interval is not None
        assert row.locator('[data-figure="interval"]').inner_text() == (
            f"{arm.interval.low:.2f}% to {arm.interval.high:.2f}%"
        )
        # The interval is drawn, and is as wide as the figures say.
        whisker = page.locator(f'svg.rate-chart [data-interval="{arm.name}"]').bounding_box()
        assert whisker is not None and whisker["width"] > 2
    assert view.comparison.difference is not None
    assert page.locator('[data-figure="difference"]').inner_text() == (
        f"{view.comparison.difference:+.2f} pts"
    )
    assert page.locator("[data-verdict]").inner_text() == view.verdict
    assert page.locator("[data-decision-rule]").inner_text() == abtest.DECISION_RULE
    warnings = page.locator("[data-warning]").all_inner_texts()
    assert len(warnings) == len(view.comparison.warnings)  # the demo is under 1,000 a variant
    # The links both variants share are in the table; the hero buttons differ (B's offers a
    # discount, and draws more clickers), so they are listed as in one variant only.
    rows = page.locator("table.links-table tbody tr")
    assert rows.count() == len(view.links.matched) > 0
    for link in view.links.matched:
        cells = page.locator(f'tr[data-link="{link.position_a}-{link.position_b}"] td')
        figures = cells.all_inner_texts()
        assert figures[1] == f"{link.comparison.a.unique_clickers:,}"
        assert figures[3] == f"{link.comparison.b.unique_clickers:,}"
    hero_a = max(
        x.unique_clickers for x in view.links.only_a if "utm_content=hero" in x.destination
    )
    hero_b = max(
        x.unique_clickers for x in view.links.only_b if "utm_content=hero" in x.destination
    )
    assert hero_b > hero_a
    assert (
        f"Only in A: {len(view.links.only_a)} · only in B: {len(view.links.only_b)}"
        in page.locator(".links-compared").inner_text()
    )
    # Both emails are colored, each in its own sandboxed frame.
    for name in ("compare-frame-1", "compare-frame-2"):
        frame = page.frame(name=name)
        assert frame is not None
        frame.wait_for_load_state()
        assert frame.evaluate("() => document.querySelectorAll('[id^=\"cm-\"]').length") > 0
