"""Repeat clicks: bursts of one recipient clicking one link within seconds, per link."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Campaign, Placement
from app.reports import repeats
from app.reports.repeats import mean_one_decimal, repeat_clicks, severity_for
from app.reports.stats import ClickFilter
from app.vocabulary import HONEYPOT
from tests.factories import T0, click, make_campaign, placement, recipients


def clicks_at(
    session: Session,
    target: Placement,
    recipient: int,
    seconds: Sequence[float],
    device: str = "desktop",
) -> None:
    """Clicks by one recipient on one link, ``seconds`` after T0."""
    for offset in seconds:
        click(session, target, recipient, T0 + timedelta(seconds=offset), device)
    session.flush()


def steady(count: int, gap: float, start: float = 0.0) -> list[float]:
    return [start + n * gap for n in range(count)]


@pytest.fixture
def campaign(session: Session) -> Campaign:
    return make_campaign(session)


@pytest.fixture
def who(session: Session) -> dict[str, int]:
    return recipients(session, "ann", "bob")


def test_exactly_five_clicks_are_a_burst(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    target = placement(campaign, 0)
    clicks_at(session, target, who["ann"], steady(5, 1.0))
    [found] = repeat_clicks(session, ClickFilter(campaign.id))
    assert found.placement_id == target.id
    assert (found.position, found.kind, found.text) == (0, "a", "Shop the sale")
    assert found.destination == "https://shop.example.com/sale"
    assert (found.count, found.avg_clicks, found.max_clicks, found.recipients) == (1, 5.0, 5, 1)
    assert found.severity == "low"


def test_four_clicks_are_not(session: Session, campaign: Campaign, who: dict[str, int]) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(4, 1.0))
    assert repeat_clicks(session, ClickFilter(campaign.id)) == []


def test_gaps_of_exactly_the_window_still_join(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(5, 10.0))
    [found] = repeat_clicks(session, ClickFilter(campaign.id))
    assert (found.count, found.max_clicks) == (1, 5)


def test_a_gap_just_over_the_window_splits_the_run(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    # 0, 10, 20, then 30.001 and 40.001: runs of three and two, neither a burst.
    clicks_at(session, placement(campaign, 0), who["ann"], [0, 10, 20, 30.001, 40.001])
    assert repeat_clicks(session, ClickFilter(campaign.id)) == []


def test_two_bursts_by_one_recipient_separated_by_a_pause(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(5, 2.0) + steady(7, 1.0, 60))
    [found] = repeat_clicks(session, ClickFilter(campaign.id))
    assert (found.count, found.avg_clicks, found.max_clicks, found.recipients) == (2, 6.0, 7, 1)
    assert found.severity == "medium"


def test_interleaved_recipients_are_counted_apart(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    target = placement(campaign, 0)
    clicks_at(session, target, who["ann"], steady(5, 2.0))
    clicks_at(session, target, who["bob"], steady(6, 2.0, 1.0))
    [found] = repeat_clicks(session, ClickFilter(campaign.id))
    assert (found.count, found.avg_clicks, found.max_clicks, found.recipients) == (2, 5.5, 6, 2)


def test_two_recipients_do_not_make_one_burst_together(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    target = placement(campaign, 0)
    clicks_at(session, target, who["ann"], steady(3, 2.0))
    clicks_at(session, target, who["bob"], steady(3, 2.0, 1.0))
    assert repeat_clicks(session, ClickFilter(campaign.id)) == []


def test_clicks_on_two_links_do_not_make_one_burst(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(3, 1.0))
    clicks_at(session, placement(campaign, 1), who["ann"], steady(3, 1.0, 3.0))
    assert repeat_clicks(session, ClickFilter(campaign.id)) == []


def test_most_bursts_first_then_document_order(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    clicks_at(session, placement(campaign, 4), who["ann"], steady(12, 0.5))
    clicks_at(session, placement(campaign, 2), who["ann"], steady(5, 1.0))
    clicks_at(session, placement(campaign, 1), who["bob"], steady(5, 1.0))
    clicks_at(session, placement(campaign, 2), who["bob"], steady(5, 1.0))
    found = repeat_clicks(session, ClickFilter(campaign.id))
    assert [(r.position, r.count) for r in found] == [(2, 2), (1, 1), (4, 1)]
    assert found[2].severity == "high"
    assert found[2].avg_clicks == 12.0


def test_the_filter_narrows_device_period_and_variant(session: Session) -> None:
    campaign = make_campaign(session, variants=("A", "B"))
    who = recipients(session, "ann", "bob")
    clicks_at(session, placement(campaign, 0), who["ann"], steady(5, 1.0), "mobile")
    clicks_at(
        session, placement(campaign, 0, variant=1), who["bob"], steady(5, 1.0, 7200), "desktop"
    )
    everything = repeat_clicks(session, ClickFilter(campaign.id))
    assert sorted(r.placement_id for r in everything) == sorted(
        [placement(campaign, 0).id, placement(campaign, 0, variant=1).id]
    )
    mobile = repeat_clicks(session, ClickFilter(campaign.id, device="mobile"))
    assert [r.placement_id for r in mobile] == [placement(campaign, 0).id]
    later = repeat_clicks(session, ClickFilter(campaign.id, since=T0 + timedelta(hours=1)))
    assert [r.placement_id for r in later] == [placement(campaign, 0, variant=1).id]
    variant_b = campaign.variants[1].id
    assert [
        r.placement_id for r in repeat_clicks(session, ClickFilter(campaign.id, variant_b))
    ] == [placement(campaign, 0, variant=1).id]
    assert repeat_clicks(session, ClickFilter(campaign.id, part="amp")) == []
    assert repeat_clicks(session, ClickFilter(campaign.id, until=T0)) == []


def test_a_custom_rule(session: Session, campaign: Campaign, who: dict[str, int]) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(3, 20.0))
    [found] = repeat_clicks(
        session, ClickFilter(campaign.id), min_clicks=3, window=timedelta(seconds=30)
    )
    assert (found.count, found.max_clicks) == (1, 3)


@pytest.mark.parametrize(
    "rule",
    [
        {"min_clicks": 1},
        {"min_clicks": 0},
        {"min_clicks": -5},
        {"window": timedelta(0)},
        {"window": timedelta(seconds=-1)},
    ],
)
def test_a_nonsense_rule_is_refused(session: Session, rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as raised:
        repeat_clicks(session, ClickFilter(1), **rule)
    assert raised.value.code == "invalid_repeat_rule"


@pytest.mark.parametrize(
    ("average", "grade"),
    [(5.0, "low"), (5.9, "low"), (6.0, "medium"), (9.9, "medium"), (10.0, "high"), (42.0, "high")],
)
def test_severity_bands_meet_without_overlap(average: float, grade: str) -> None:
    assert severity_for(average) == grade


@pytest.mark.parametrize(
    ("total", "count", "mean"),
    [(10, 2, 5.0), (11, 2, 5.5), (119, 20, 6.0), (118, 20, 5.9), (17, 3, 5.7), (16, 3, 5.3)],
)
def test_average_rounds_halves_up(total: int, count: int, mean: float) -> None:
    assert mean_one_decimal(total, count) == mean


def test_bursts_read_across_chunks_are_whole(
    session: Session, campaign: Campaign, who: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    clicks_at(session, placement(campaign, 0), who["ann"], steady(7, 1.0))
    clicks_at(session, placement(campaign, 0), who["bob"], steady(5, 1.0))
    clicks_at(session, placement(campaign, 1), who["ann"], steady(6, 1.0))
    whole = repeat_clicks(session, ClickFilter(campaign.id))
    monkeypatch.setattr(repeats, "CHUNK", 2)
    assert repeat_clicks(session, ClickFilter(campaign.id)) == whole
    assert [(r.position, r.count, r.max_clicks, r.recipients) for r in whole] == [
        (0, 2, 7, 2),
        (1, 1, 6, 1),
    ]


def test_a_burst_on_the_honeypot_is_not_listed(
    session: Session, campaign: Campaign, who: dict[str, int]
) -> None:
    [honeypot] = [p for p in campaign.variants[0].placements if p.kind == HONEYPOT]
    clicks_at(session, honeypot, who["ann"], steady(6, 1))
    clicks_at(session, placement(campaign, 0), who["bob"], steady(5, 1))
    found = repeat_clicks(session, ClickFilter(campaign.id))
    assert [r.position for r in found] == [0]
