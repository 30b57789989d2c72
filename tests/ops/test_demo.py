"""``clickmap demo``: seeds a campaign worth looking at, quickly, and only once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.accounts import authenticate
from app.clicks.recording import ClickEvent
from app.db import get_engine
from app.models import Campaign, Click, Delivery, Placement
from app.ops import demo
from app.reports.heatmap import TIERS, ViewParams, build_view
from tests.factories import make_app


@pytest.fixture
def demo_app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a fresh, empty SQLite file: the demo must create the schema itself."""
    application = make_app(
        f"sqlite:///{tmp_path / 'demo.sqlite3'}", tmp_path,
        TRACKING_BASE_URL=demo.DEFAULT_TRACKING_BASE,  # as on a laptop: nothing configured
    )  # fmt: skip
    yield application
    get_engine(application).dispose()


def run_demo(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["demo", "--no-serve", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_demo_seeds_a_campaign_with_every_tier(demo_app: Flask) -> None:
    started = time.perf_counter()
    output = run_demo(demo_app)
    assert time.perf_counter() - started < 30  # "make demo" must be quick on a laptop

    found = re.search(r"username:\s+demo\s+password:\s+(\S+)", output)
    assert found, output
    assert "http://127.0.0.1:5000/login" in output
    campaign_url = re.search(r"heatmap:\s+http://127\.0\.0\.1:5000/campaigns/(\d+)", output)
    assert campaign_url, output
    tracked = re.findall(r"http://127\.0\.0\.1:5000/c/[A-Za-z0-9_.~-]+", output)
    assert len(tracked) >= 3

    factory = demo_app.extensions["clickmap.sessionmaker"]
    with factory() as session:
        assert authenticate(session, "demo", found.group(1)) is not None
        campaign = session.get(Campaign, int(campaign_url.group(1)))
        assert campaign is not None
        assert [v.name for v in campaign.variants] == ["A", "B"]
        assert all(v.amp is not None for v in campaign.variants)
        kinds = {p.kind for p in session.scalars(select(Placement))}
        assert "vml" in kinds
        reasons = {p.skip_reason for p in session.scalars(select(Placement)) if not p.tracked}
        assert {"mailto", "merge_tag"} <= reasons
        deliveries = session.scalar(select(func.count()).select_from(Delivery))
        assert deliveries == demo.DemoSettings().recipients

        view = build_view(session, campaign.id, ViewParams())
        assert {link.tier for link in view.links} == set(TIERS)
        assert view.total > 1000
        # Clicks spread over the days after the send, on every device class.
        first, last = session.execute(
            select(func.min(Click.clicked_at), func.max(Click.clicked_at))
        ).one()
        assert (last - first).days >= 7
        devices = set(session.scalars(select(Click.device).distinct()))
        assert devices == {"desktop", "mobile", "tablet", "other"}
        parts = set(session.scalars(select(Click.part).distinct()))
        assert parts == {"html", "amp"}


def test_demo_runs_again_without_adding_anything(demo_app: Flask) -> None:
    first = run_demo(demo_app, "--recipients", "300", "--password", "a-long-demo-password")
    second = run_demo(demo_app, "--recipients", "300", "--password", "another-long-password")
    assert "created" in first
    assert "reused" in second
    assert "(0 new)" in second
    factory = demo_app.extensions["clickmap.sessionmaker"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1
        assert authenticate(session, "demo", "another-long-password") is not None
        assert authenticate(session, "demo", "a-long-demo-password") is None


def test_demo_links_point_at_the_served_port(demo_app: Flask) -> None:
    output = run_demo(demo_app, "--recipients", "50", "--port", "5077")
    assert "http://127.0.0.1:5077/login" in output
    assert "http://127.0.0.1:5077/c/" in output


def test_demo_click_plan_is_repeatable(demo_app: Flask) -> None:
    run_demo(demo_app, "--recipients", "200")
    factory = demo_app.extensions["clickmap.sessionmaker"]
    with factory() as session:
        campaign = demo.find_campaign(session)
        assert campaign is not None
        ids = {f"reader{n:05d}@example.net": n for n in range(1, 201)}
        settings = demo.DemoSettings(recipients=200)
        now = datetime.now(UTC)
        plans: list[list[ClickEvent]] = [
            demo.plan_clicks(campaign, ids, settings, now) for _ in range(2)
        ]
        assert plans[0] == plans[1]
        assert len({e.click_id for e in plans[0]}) == len(plans[0])
