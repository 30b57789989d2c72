"""Rebuilding the aggregates from raw clicks, on each database: the rebuilt figures are the
ones the writer keeps, whatever was wrong before, and a second rebuild changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.clicks import rebuild
from app.clicks.conversions import record_conversion
from app.clicks.opens import OpenEvent, record_opens
from app.models import (
    Campaign,
    CampaignStats,
    Click,
    ConversionStats,
    OpenRecipient,
    OpenStats,
    PartClicker,
    PlacementStats,
)
from tests.factories import (
    AGENTS,
    T0,
    click,
    clicker_sets_exact,
    make_campaign,
    part_and_campaign_aggregates,
    placement,
    recipients,
    rows,
)


def aggregates(session: Session, campaign_id: int) -> dict[str, set[tuple[Any, ...]]]:
    """Every aggregate row of one campaign, by table."""
    session.expire_all()
    found = {}
    for model in rebuild.AGGREGATES:
        columns = [c for c in model.__table__.columns]
        found[model.__tablename__] = rows(
            session, select(*columns).where(model.campaign_id == campaign_id)
        )
    return found


def seeded(session: Session) -> tuple[Campaign, Campaign]:
    """Two campaigns with clicks over several hours, devices, links and recipients."""
    first, second = make_campaign(session, "First"), make_campaign(session, "Second")
    who = recipients(session, "ann", "bob", "cid", "dan", "eve")
    devices = ("desktop", "mobile", "tablet", "other")
    for n in range(40):
        amp = n % 9 == 0  # the AMP part has one link
        target = placement(first, 0 if amp else (0, 1, 2, 4)[n % 4], "amp" if amp else "html")
        recipient = who[("ann", "bob", "cid", "dan", "eve")[n % 5]]
        click(session, target, recipient, T0 + timedelta(minutes=37 * n), devices[n % 4])
    click(session, placement(second, 0), who["ann"], T0 + timedelta(hours=1))
    session.flush()
    return first, second


def test_a_rebuild_restores_exactly_what_the_writer_kept(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild, "RECIPIENTS_PER_PAGE", 3)  # many pages, split inside an hour
    first, second = seeded(session)
    kept, other = aggregates(session, first.id), aggregates(session, second.id)
    # Wrong in every way an aggregate can be: rows gone, counts off.
    session.execute(delete(PlacementStats).where(PlacementStats.campaign_id == first.id))
    session.execute(delete(PartClicker).where(PartClicker.campaign_id == first.id))
    session.execute(
        update(CampaignStats).where(CampaignStats.campaign_id == first.id).values(total=999)
    )
    assert aggregates(session, first.id) != kept

    assert rebuild.rebuild_campaign(session, first.id) == 40
    assert aggregates(session, first.id) == kept
    part_and_campaign_aggregates(session)  # and they agree with COUNT(DISTINCT) over clicks
    clicker_sets_exact(session)  # and the clicker sets with the clicks' recipients
    assert rebuild.rebuild_campaign(session, first.id) == 40
    assert aggregates(session, first.id) == kept
    assert aggregates(session, second.id) == other


def test_a_rebuild_restores_the_funnels_opens_and_orders(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Openers and viewers (each recipient's first open kept), the open counters and the
    orders per link and currency come back from the stored opens and orders."""
    monkeypatch.setattr(rebuild, "OPENS_PER_PAGE", 2)  # many pages
    first, _second = seeded(session)
    variant = first.variants[0]
    who = recipients(session, "ann", "bob", "cid")
    opens = [  # out of time order, a bot and a person, a person opening twice
        ("ann", AGENTS["desktop"], 50),
        ("bob", "curl/8.0", 10),
        ("ann", AGENTS["mobile"], 5),
        ("cid", AGENTS["mobile"], 20),
        ("bob", AGENTS["desktop"], 30),
    ]
    record_opens(
        session,
        [
            OpenEvent(
                f"open{n:028d}",
                T0 + timedelta(minutes=m),
                first.id,
                variant.id,
                "html",
                who[name],
                "GET",
                agent,
                None,
            )
            for n, (name, agent, m) in enumerate(opens)
        ],
    )
    clicks = session.scalars(select(Click).where(Click.campaign_id == first.id)).all()
    for n, (value, currency) in enumerate([("10.50", "EUR"), ("4", "EUR"), (None, None)]):
        record_conversion(
            session, clicks[n].click_id, f"order-{n}", value and Decimal(value), currency
        )
    session.flush()

    def funnel_rows() -> set[tuple[Any, ...]]:
        session.expire_all()
        found: set[tuple[Any, ...]] = set()
        for model in (OpenRecipient, OpenStats, ConversionStats):
            columns = list(model.__table__.columns)
            found |= {(model.__tablename__, *r) for r in rows(session, select(*columns))}
        return found

    kept = funnel_rows()
    assert len(kept) == 3 + 3 + 1 + 3  # openers, viewers, one counter row, two currencies
    for model in (OpenRecipient, OpenStats, ConversionStats):
        session.execute(delete(model))
    rebuild.rebuild_campaign(session, first.id)
    assert funnel_rows() == kept


def test_rebuilding_a_campaign_without_clicks_leaves_no_rows(session: Session) -> None:
    campaign = make_campaign(session)
    seen: list[int] = []
    assert rebuild.rebuild_campaign(session, campaign.id, seen.append) == 0
    assert seen == []
    assert all(not found for found in aggregates(session, campaign.id).values())


def test_the_command_rebuilds_and_says_so(runner: FlaskCliRunner, session: Session) -> None:
    first, second = seeded(session)
    kept = aggregates(session, first.id)
    session.execute(delete(PlacementStats))
    session.commit()
    result = runner.invoke(args=["stats", "rebuild", "--campaign", str(first.id)])
    assert result.exit_code == 0, result.output
    assert f"campaign {first.id}: aggregates rebuilt from 40 clicks" in result.output
    assert aggregates(session, first.id) == kept
    everything = runner.invoke(args=["stats", "rebuild"])
    assert everything.exit_code == 0, everything.output
    assert f"campaign {second.id}: aggregates rebuilt from 1 clicks" in everything.output
    part_and_campaign_aggregates(session)
    missing = runner.invoke(args=["stats", "rebuild", "--campaign", "999999"])
    assert missing.exit_code != 0
    assert "no campaign with id 999999 [campaign_not_found]" in missing.output
