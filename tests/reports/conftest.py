"""Fixtures of the report tests: a campaign with known clicks (``sale``, built with the
helpers of test_stats) and a local HTTP server that records what is asked of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.models import Campaign
from tests.factories import T0, click, make_campaign, placement, recipients, recording_server


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


@pytest.fixture
def local_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request made to it."""
    with recording_server() as found:
        yield found
