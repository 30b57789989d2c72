"""Reading figures back: aggregates for the default view, raw clicks for filters.

Clicks go in through ``app.clicks.recording.record_clicks``, the writer that keeps the aggregates in
step, so these tests also catch the two sides drifting apart.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clicks.recording import record_clicks
from app.ingest.campaigns import record_deliveries
from app.models import Campaign, Click
from app.reports import listings, stats
from app.reports.stats import ClickFilter
from app.vocabulary import DEVICES
from tests.factories import (
    AGENTS,
    T0,
    click,
    click_event,
    make_campaign,
    placement,
    recipients,
)


def counts_by_position(
    session: Session,
    campaign: Campaign,
    since: datetime | None = None,
    until: datetime | None = None,
    device: str | None = None,
) -> dict[int, tuple[int, int]]:
    where = ClickFilter(campaign.id, campaign.variants[0].id, "html", since, until, device)
    found = stats.link_counts(session, where)
    ids = {p.id: p.position for p in campaign.variants[0].placements}
    return {ids[pid]: value for pid, value in found.items()}


def test_default_counts_come_per_placement_and_include_unclicked_links(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    # 0 and 2 share a destination but are separate places in the email: separate rows.
    assert counts_by_position(session, campaign) == {
        0: (3, 2),
        1: (1, 1),
        2: (1, 1),
        4: (0, 0),
    }


def test_filtered_counts_agree_with_the_aggregates_over_all_time(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    everything = counts_by_position(session, campaign, since=T0 - timedelta(days=1))
    assert everything == counts_by_position(session, campaign)


def test_period_filter_counts_clicks_and_clickers_inside_it(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    assert counts_by_position(session, campaign, since=since, until=until) == {
        0: (1, 1),  # ann's second click only
        1: (0, 0),
        2: (1, 1),
        4: (0, 0),
    }
    assert counts_by_position(session, campaign, since=since)[0] == (2, 2)


def test_device_filter(session: Session, sale: tuple[Campaign, dict[str, int]]) -> None:
    campaign, _ = sale
    assert counts_by_position(session, campaign, device="mobile") == {
        0: (1, 1),
        1: (0, 0),
        2: (0, 0),
        4: (0, 0),
    }
    assert counts_by_position(session, campaign, device="desktop")[0] == (2, 1)


@pytest.mark.parametrize(
    "since", [T0 + timedelta(minutes=30), datetime(2025, 3, 1, 8, 0, 1, tzinfo=UTC)]
)
def test_period_bounds_must_be_whole_hours(since: datetime) -> None:
    with pytest.raises(ValueError, match="whole UTC hour"):
        ClickFilter(1, since=since)
    with pytest.raises(ValueError, match="whole UTC hour"):
        ClickFilter(1, until=since)


def test_a_filter_keeps_its_bounds_in_utc() -> None:
    naive = ClickFilter(1, since=datetime(2025, 3, 1, 8), until=T0)
    assert naive.since == datetime(2025, 3, 1, 8, tzinfo=UTC) and naive.until == T0
    assert naive.since is not None and naive.since.tzinfo is UTC
    assert ClickFilter(1).unfiltered and ClickFilter(1, 2, "amp").unfiltered
    assert not ClickFilter(1, device="mobile").unfiltered
    assert not naive.unfiltered


def test_summary_counts_each_clicker_once_across_links(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    record_deliveries(
        session,
        campaign,
        "A",
        ["ann", "bob", "cid", "dan", "eve"],
        delivered_at=T0 - timedelta(hours=1),
    )
    variant_id = campaign.variants[0].id
    html = ClickFilter(campaign.id, variant_id, "html")
    assert stats.campaign_summary(session, html) == (5, 5, 3)
    assert stats.campaign_summary(session, ClickFilter(campaign.id)) == (5, 5, 3)
    assert stats.campaign_summary(session, ClickFilter(campaign.id, variant_id, "amp")) == (5, 0, 0)
    # Every click falls inside this period, so it matches the unfiltered summary.
    filtered = replace(html, since=T0, until=T0 + timedelta(hours=6))
    assert stats.campaign_summary(session, filtered) == (5, 5, 3)
    assert stats.campaign_summary(session, replace(html, device="mobile")) == (5, 1, 1)


def test_summary_without_deliveries_has_zero_delivered(session: Session) -> None:
    campaign = make_campaign(session)
    assert stats.campaign_summary(session, ClickFilter(campaign.id)) == (0, 0, 0)
    assert stats.click_rate(3, 0) is None
    assert stats.click_rate(1, 4) == 25.0


def test_clicks_over_time_fills_hourly_gaps(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    points = stats.clicks_over_time(
        session, ClickFilter(campaign.id), now=T0 + timedelta(hours=6, minutes=3)
    )
    assert points == [
        (T0, 2),
        (T0 + timedelta(hours=1), 1),
        (T0 + timedelta(hours=2), 1),
        (T0 + timedelta(hours=3), 0),
        (T0 + timedelta(hours=4), 0),
        (T0 + timedelta(hours=5), 1),
        (T0 + timedelta(hours=6), 0),
    ]


def test_clicks_over_time_switches_to_days_for_long_spans(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, who = sale
    click(session, placement(campaign, 1), who["dan"], T0 + timedelta(days=4, hours=3))
    points = stats.clicks_over_time(session, ClickFilter(campaign.id), now=T0 + timedelta(days=5))
    midnight = T0.replace(hour=0)
    assert points == [(midnight + timedelta(days=d), n) for d, n in enumerate([5, 0, 0, 0, 1, 0])]
    assert sum(n for _, n in points) == 6


def test_clicks_over_time_respects_the_period(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    where = ClickFilter(
        campaign.id, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3), device="desktop"
    )
    points = stats.clicks_over_time(session, where)
    assert points == [(T0 + timedelta(hours=1), 0), (T0 + timedelta(hours=2), 1)]


def test_clicks_over_time_covers_only_the_campaigns_life(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    """A period from the year 2000 to 9999 charts the days since the send, not millions."""
    campaign, _ = sale
    where = ClickFilter(
        campaign.id, since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(9999, 1, 1, tzinfo=UTC)
    )
    points = stats.clicks_over_time(session, where, now=T0 + timedelta(days=10))
    assert len(points) == 11
    assert points[0] == (T0.replace(hour=0), 5)
    assert sum(n for _, n in points) == 5


def test_clicks_over_time_switches_to_weeks_past_400_days(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, who = sale
    click(session, placement(campaign, 1), who["dan"], T0 + timedelta(days=500))
    points = stats.clicks_over_time(session, ClickFilter(campaign.id), now=T0 + timedelta(days=700))
    assert all(b - a == timedelta(days=7) for (a, _), (b, _) in itertools.pairwise(points))
    assert len(points) == 101
    assert sum(n for _, n in points) == 6


def test_device_split_lists_every_class(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    split = stats.device_split(session, ClickFilter(campaign.id))
    assert split == {"desktop": 3, "mobile": 1, "tablet": 1, "other": 0}
    assert list(split) == list(DEVICES)
    later = stats.device_split(
        session, ClickFilter(campaign.id, part="html", since=T0 + timedelta(hours=3))
    )
    assert later == {"desktop": 0, "mobile": 1, "tablet": 0, "other": 0}


def _recount(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    human_only: bool = True,
) -> tuple[int, int]:
    """(total, unique) straight from the raw clicks, the way the aggregates must agree:
    of the human clicks, unless machine clicks are included."""
    query = select(func.count(), func.count(Click.recipient_id.distinct())).where(
        Click.campaign_id == campaign_id
    )
    if human_only:
        query = query.where(Click.label == "human")
    if variant_id is not None:
        query = query.where(Click.variant_id == variant_id)
    if part is not None:
        query = query.where(Click.part == part)
    total, unique = session.execute(query).one()
    return int(total), int(unique)


def test_summaries_and_campaign_list_equal_a_recount_of_raw_clicks(session: Session) -> None:
    """Clickers spread over two variants, both parts and several links (some people in many
    places): every scope's summary and the campaign list agree with COUNT(DISTINCT)."""
    campaign = make_campaign(session, variants=("A", "B"))
    other = make_campaign(session, "Other")
    people = recipients(session, *(f"p{n}" for n in range(9)))
    ids = list(people.values())
    spots = [
        placement(campaign, position, part, variant)
        for variant in (0, 1)
        for position, part in ((0, "html"), (1, "html"), (4, "html"), (0, "amp"))
    ]
    for n in range(40):
        target = spots[(n * 7) % len(spots)]
        device = list(AGENTS)[n % 4]
        click(session, target, ids[n % 7], T0 + timedelta(minutes=37 * n), device)
    click(session, placement(other, 0), ids[8], T0)  # someone who only clicked elsewhere
    record_deliveries(
        session, campaign, "A", list(people)[:6], delivered_at=T0 - timedelta(hours=1)
    )
    session.flush()
    variants = [v.id for v in campaign.variants]
    # The "other" device's agent is curl's: those clicks are machines, left out by default.
    assert _recount(session, campaign.id, None, None) < _recount(
        session, campaign.id, None, None, human_only=False
    )
    for variant_id in (None, *variants):
        for part in (None, "html", "amp"):
            for human_only in (True, False):
                delivered, total, unique = stats.campaign_summary(
                    session, ClickFilter(campaign.id, variant_id, part, human_only=human_only)
                )
                assert (total, unique) == _recount(
                    session, campaign.id, variant_id, part, human_only
                ), (variant_id, part, human_only)
                assert delivered == (0 if variant_id == variants[1] else 6)
    assert _recount(session, campaign.id, None, None)[1] == 7
    rows, _ = listings.campaign_list(session)
    found = {row.name: (row.total, row.unique) for row in rows}
    assert found == {
        "Spring sale": _recount(session, campaign.id, None, None),
        "Other": _recount(session, other.id, None, None),
    }
    # The charts read per-part buckets: they add up to the same clicks, per device too.
    for variant_id in (None, *variants):
        for part in (None, "html", "amp"):
            points, split = stats.activity(
                session, ClickFilter(campaign.id, variant_id, part), now=T0
            )
            total = _recount(session, campaign.id, variant_id, part)[0]
            assert sum(n for _, n in points) == sum(split.values()) == total
    mobile = session.scalar(
        select(func.count()).where(Click.campaign_id == campaign.id, Click.device == "mobile")
    )
    assert stats.device_split(session, ClickFilter(campaign.id))["mobile"] == mobile


# -- segments: email client and country ------------------------------------------------------

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)"
US, JP, DOCS = "8.8.8.0/24", "1.0.16.0/24", "192.0.2.0/24"  # US, Japan, no country


@pytest.fixture
def segmented(session: Session) -> Campaign:
    """Clicks from Outlook, Safari on an iPhone and Chrome on Windows, from networks in the
    US, Japan and a documentation range, with one HEAD probe (a machine click) among them."""
    campaign = make_campaign(session, "Segments")
    who = recipients(session, "ann", "bob", "cid", "dan")
    minutes = itertools.count(5, 47)
    for target, name, fields in [
        (0, "ann", {"user_agent": OUTLOOK, "ip_prefix": US}),
        (0, "ann", {"user_agent": OUTLOOK, "ip_prefix": US}),
        (1, "ann", {"user_agent": OUTLOOK, "ip_prefix": JP}),
        (0, "bob", {"user_agent": AGENTS["mobile"], "ip_prefix": JP}),
        (1, "cid", {"user_agent": OUTLOOK, "ip_prefix": JP}),
        (2, "dan", {"ip_prefix": DOCS}),
        (0, "dan", {"user_agent": OUTLOOK, "ip_prefix": US, "method": "HEAD"}),
    ]:
        at = T0 + timedelta(minutes=next(minutes))
        event = click_event(placement(campaign, target), who[name], at, **fields)
        assert record_clicks(session, [event]) == 1
    session.flush()
    return campaign


def _matching(session: Session, where: ClickFilter, human: bool | None = None) -> list[Click]:
    """The campaign's raw clicks that ``where`` covers, picked in Python: the recount every
    figure must equal."""
    if human is None and where.human_only:
        human = True
    picked = []
    for c in session.scalars(select(Click).where(Click.campaign_id == where.campaign_id)):
        if where.variant_id is not None and c.variant_id != where.variant_id:
            continue
        if where.part is not None and c.part != where.part:
            continue
        if where.device is not None and c.device != where.device:
            continue
        if where.since is not None and c.clicked_at < where.since:
            continue
        if where.until is not None and c.clicked_at >= where.until:
            continue
        if where.client is not None and (c.client or stats.UNKNOWN) != where.client:
            continue
        if where.country is not None and (c.country or stats.UNKNOWN) != where.country:
            continue
        if human is not None and (c.label == "human") != human:
            continue
        picked.append(c)
    return picked


SEGMENTS = [
    {"client": "Outlook"},
    {"client": "Safari"},
    {"client": "Chrome"},
    {"client": stats.UNKNOWN},
    {"country": "US"},
    {"country": "JP"},
    {"country": stats.UNKNOWN},
    {"client": "Outlook", "country": "JP"},
    {"client": "Outlook", "device": "desktop", "since": T0 + timedelta(hours=1)},
    {"client": "Outlook", "device": "desktop"},
    # Not segments, but the other filtered views, read from the same kind of cells.
    {"device": "desktop"},
    {"device": "mobile"},
    {"since": T0 + timedelta(hours=1)},
    {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=3), "device": "desktop"},
    {"until": T0 + timedelta(hours=2)},
]


@pytest.mark.parametrize("segment", SEGMENTS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("human_only", [True, False], ids=["people", "everyone"])
def test_every_segmented_figure_equals_a_recount_of_raw_clicks(
    session: Session, segmented: Campaign, segment: dict[str, Any], human_only: bool
) -> None:
    """Links, summary, charts and the machine panel of a client or country view (and of a
    period or device view) count the same clicks a reader would pick out of the click table
    by hand; grouped links count a recipient once."""
    variant = segmented.variants[0].id
    where = ClickFilter(segmented.id, variant, "html", human_only=human_only, **segment)
    clicks = _matching(session, where)
    per_link = stats.link_counts(session, where)
    for placement_id, (total, unique) in per_link.items():
        mine = [c for c in clicks if c.placement_id == placement_id]
        assert (total, unique) == (len(mine), len({c.recipient_id for c in mine}))
    assert sum(total for total, _unique in per_link.values()) == len(clicks)
    summary = stats.campaign_summary(session, where)
    assert summary[1:] == (len(clicks), len({c.recipient_id for c in clicks}))
    assert stats.view_figures(session, where) == (per_link, summary)  # one read for both
    series, split = stats.activity(session, where, now=T0 + timedelta(hours=12))
    assert sum(n for _hour, n in series) == len(clicks)
    assert split == {d: sum(c.device == d for c in clicks) for d in DEVICES}
    for hour, n in series:  # each click in the hour it happened, as the hourly tables keep it
        assert n == sum(stats.floor_hour(c.clicked_at) == hour for c in clicks)
    machine = _matching(session, replace(where, human_only=False), human=False)
    assert stats.machine_clicks(session, where).clicks == len(machine)
    links = list(per_link)
    assert stats.distinct_clickers(session, where, links) == len({c.recipient_id for c in clicks})


def test_a_country_view_reads_as_a_marketer_expects(session: Session, segmented: Campaign) -> None:
    where = ClickFilter(segmented.id, segmented.variants[0].id, "html")
    us = replace(where, country="US")
    assert stats.campaign_summary(session, us)[1:] == (2, 1)  # ann's two clicks; the probe not
    assert stats.machine_clicks(session, us).reasons == {"head": 1}
    japan = replace(where, country="JP", client="Outlook")
    assert stats.campaign_summary(session, japan)[1:] == (2, 2)  # ann and cid on link 1
    assert stats.campaign_summary(session, replace(where, client="Firefox"))[1:] == (0, 0)


def test_segments_list_what_the_campaign_has_most_first(
    session: Session, segmented: Campaign
) -> None:
    where = ClickFilter(segmented.id, segmented.variants[0].id, "html", device="mobile")
    found = stats.segments(session, where)
    # All devices and periods: the choices do not move when the viewer narrows the view.
    assert found.clients == [("Outlook", 4), ("Chrome", 1), ("Safari", 1)]
    assert found.countries == [("JP", 3), ("US", 2), (stats.UNKNOWN, 1)]
    everyone = stats.segments(session, replace(where, human_only=False))
    assert everyone.clients[0] == ("Outlook", 5)


@pytest.fixture
def four_days(session: Session) -> Campaign:
    """Clicks every 5 hours over four days, by four people on three devices and two links,
    delivered the day before: periods with whole days and odd hours either side."""
    campaign = make_campaign(session, "Four days")
    who = recipients(session, "ann", "bob", "cid", "dan")
    record_deliveries(session, campaign, "A", list(who), delivered_at=T0 - timedelta(days=1))
    names = list(who)
    for n in range(20):
        target = placement(campaign, n % 2)
        device = ("desktop", "mobile", "tablet")[n % 3]
        at, network = T0 + timedelta(hours=5 * n), (US, JP)[n % 5 % 2]
        event = click_event(target, who[names[(n * 3) % 4]], at, device, ip_prefix=network)
        assert record_clicks(session, [event]) == 1
    session.flush()
    return campaign


MIDNIGHT = T0.replace(hour=0)
PERIODS = [
    {"since": T0 + timedelta(hours=3), "until": MIDNIGHT + timedelta(days=3, hours=7)},
    {"until": MIDNIGHT + timedelta(days=2)},
    {"since": MIDNIGHT + timedelta(days=1)},
    {"since": MIDNIGHT + timedelta(days=1), "until": MIDNIGHT + timedelta(days=3)},
    {"since": T0 + timedelta(hours=5), "until": T0 + timedelta(hours=20)},
    {"since": T0 + timedelta(hours=17), "device": "mobile"},
    # A segment within a period: its whole days from daily segment cells, the hours either
    # side from raw clicks.
    {
        "since": T0 + timedelta(hours=3),
        "until": MIDNIGHT + timedelta(days=3, hours=7),
        "country": "US",
    },
    {"since": MIDNIGHT + timedelta(days=1), "until": MIDNIGHT + timedelta(days=3), "country": "JP"},
    {"since": T0 + timedelta(hours=5), "until": T0 + timedelta(hours=20), "country": "JP"},
    {"since": T0 + timedelta(hours=17), "country": "US", "device": "mobile"},
]


@pytest.mark.parametrize("period", PERIODS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_periods_over_whole_days_count_each_recipient_once(
    session: Session, four_days: Campaign, period: dict[str, Any]
) -> None:
    """A period's whole days are read from daily cells and its edges from hourly ones (or a
    segment's raw clicks); a recipient who clicked in both still counts once, per link and
    overall."""
    where = ClickFilter(four_days.id, four_days.variants[0].id, "html", **period)
    clicks = _matching(session, where)
    assert clicks, "the period should hold clicks"
    per_link = stats.link_counts(session, where)
    for placement_id, (total, unique) in per_link.items():
        mine = [c for c in clicks if c.placement_id == placement_id]
        assert (total, unique) == (len(mine), len({c.recipient_id for c in mine}))
    summary = stats.campaign_summary(session, where)
    assert summary[1:] == (len(clicks), len({c.recipient_id for c in clicks}))
    assert stats.view_figures(session, where) == (per_link, summary)
