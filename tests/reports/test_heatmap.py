"""The heatmap: the tier rule, the view's switches and its figures (the colored email itself:
``test_email_overlay.py``)."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.clicks.recording import record_clicks
from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import record_deliveries
from app.models import Campaign
from app.reports import heatmap, stats
from app.reports.email_overlay import view_document
from app.reports.heatmap import ViewParams, build_view, tier_for
from app.vocabulary import HONEYPOT
from tests.factories import T0, click, click_event, make_campaign, placement, recipients

NOW = T0 + timedelta(days=2, hours=3, minutes=10)

# --- the tier rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top", "tier"),
    [
        (0, 10, "gray"),
        (0, 0, "gray"),
        (5, 0, "gray"),
        (-1, 10, "gray"),
        (math.nan, 10, "gray"),
        (10, 10, "red"),
        (8, 10, "red"),
        (7.99, 10, "orange"),
        (6, 10, "orange"),
        (5.99, 10, "yellow"),
        (4, 10, "yellow"),
        (3.99, 10, "green"),
        (2, 10, "green"),
        (1.99, 10, "blue"),
        (1, 1000, "blue"),
        (3, 5, "orange"),  # 0.6 exactly
        (4 / 7 * 100, 5 / 7 * 100, "red"),  # 0.8 through float percentages
        (12, 10, "red"),
    ],
)
def test_tier_rule(value: float, top: float, tier: str) -> None:
    assert tier_for(value, top) == tier


def _contrast_with_white(color: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(color[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def test_tier_colors_carry_white_numbers() -> None:
    assert tuple(heatmap.TIER_COLORS) == heatmap.TIERS
    for tier, color in heatmap.TIER_COLORS.items():
        assert re.fullmatch(r"#[0-9A-F]{6}", color), tier
        assert _contrast_with_white(color) >= 4.5, tier
    assert [tier for tier, _label in heatmap.legend()] == list(heatmap.TIERS)
    assert heatmap.legend()[0] == ("red", "≥ 80% of the top link")


# --- the switches ----------------------------------------------------------------------


def test_view_params_defaults_and_round_trip() -> None:
    assert ViewParams.from_query({}) == ViewParams()
    assert ViewParams().to_query() == {}
    args = {
        "metric": "rate",
        "variant": "B",
        "part": "amp",
        "period": "custom",
        "start": "2025-03-01",
        "end": "2025-03-04",
        "device": "mobile",
        "sort": "position",
        "client": "Apple Mail",
        "country": "FR",
        "ctas": "only",
        "group": "destination",
        "page": "3",  # someone else's argument: ignored
    }
    params = ViewParams.from_query(args)
    assert params.start == date(2025, 3, 1)
    assert params.to_query() == {k: v for k, v in args.items() if k != "page"}
    assert ViewParams.from_query(params.to_query()) == params


def test_to_query_applies_changes_and_drops_dates_off_custom() -> None:
    params = ViewParams(period="custom", start=date(2025, 3, 1), metric="unique")
    assert params.to_query(metric="total") == {"period": "custom", "start": "2025-03-01"}
    assert params.to_query(period="7d") == {"metric": "unique", "period": "7d"}
    with pytest.raises(InvalidInput):
        params.to_query(metric="clicks")


def test_a_segment_travels_in_the_url_and_narrows_every_figure(
    session: Session, busy: Campaign
) -> None:
    """A shared link to an Outlook or a country view opens the same view, and that view
    counts only the matching clicks (the writer files the test agents under Chrome and
    Safari, with no network, so no country)."""
    chrome = ViewParams(client="Chrome", country=stats.UNKNOWN)
    assert chrome.to_query() == {"client": "Chrome", "country": "unknown"}
    assert ViewParams.from_query(chrome.to_query()) == chrome
    everyone = build_view(session, busy.id, ViewParams(), now=NOW)
    desktop = build_view(session, busy.id, ViewParams(device="desktop"), now=NOW)
    assert (desktop.total, desktop.unique) != (everyone.total, everyone.unique)
    by_client = build_view(session, busy.id, chrome, now=NOW)
    # The test agents: Chrome on desktops, Safari on phones and tablets.
    assert [(s.position, s.total, s.unique) for s in by_client.links] == [
        (s.position, s.total, s.unique) for s in desktop.links
    ]
    assert (by_client.total, by_client.unique) == (desktop.total, desktop.unique)
    nowhere = build_view(session, busy.id, ViewParams(country="FR"), now=NOW)
    assert (nowhere.total, nowhere.unique) == (0, 0)
    assert {s.tier for s in nowhere.links} == {"gray"}


def test_empty_values_mean_defaults_and_dates_only_count_for_custom() -> None:
    params = ViewParams.from_query(
        {"metric": "", "device": " ", "period": "7d", "start": "2025-03-01"}
    )
    assert params == ViewParams(period="7d")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"metric": "clicks"}, "metric must be one of"),
        ({"part": "text"}, "part must be one of"),
        ({"period": "365d"}, "period must be one of"),
        ({"device": "phone"}, "device must be one of"),
        ({"sort": "name"}, "sort must be one of"),
        ({"ctas": "yes"}, "ctas must be one of"),
        ({"group": "url"}, "group must be one of"),
        ({"period": "custom"}, "needs a start or an end"),
        ({"period": "custom", "start": "2025-13-01"}, "start must be a date"),
        ({"period": "custom", "start": "1/3/2025"}, "start must be a date"),
        ({"period": "custom", "end": "20250301"}, "end must be a date"),
        ({"period": "custom", "start": "0001-01-01"}, "start must be a date"),
        ({"period": "custom", "start": "2025-03-05", "end": "2025-03-01"}, "is after end"),
        ({"period": "7d", "start": "yesterday"}, "start must be a date"),
        ({"client": "Outlook 2016"}, "client must be one of"),
        ({"country": "France"}, "country must be a two-letter code"),
        ({"country": "fr"}, "country must be a two-letter code"),
    ],
)
def test_bad_switches_are_refused_clearly(args: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ViewParams.from_query(args)


def test_period_bounds_are_whole_hours() -> None:
    now = datetime(2025, 3, 10, 14, 25, tzinfo=UTC)
    bounds = heatmap.period_bounds
    assert bounds(ViewParams(), now) == (None, None)
    assert bounds(ViewParams(period="24h"), now) == (datetime(2025, 3, 9, 15, tzinfo=UTC), None)
    assert bounds(ViewParams(period="7d"), now)[0] == datetime(2025, 3, 3, 15, tzinfo=UTC)
    custom = ViewParams(period="custom", start=date(2025, 3, 1), end=date(2025, 3, 2))
    assert bounds(custom, now) == (
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 3, tzinfo=UTC),
    )
    assert bounds(ViewParams(period="custom", end=date(2025, 3, 2)), now)[0] is None


# --- the figures -------------------------------------------------------------------------


@pytest.fixture
def busy(session: Session) -> Campaign:
    """Link 0: 3 clicks by 2 people; link 1: 3 by 3; link 2 (same page as 0): 1; link 4: 0.
    Two of the clicks are recent (within 24 hours of NOW), on mobile."""
    campaign = make_campaign(session, variants=("A", "B"))
    who = recipients(session, "ann", "bob", "cid", "dan", "eve")
    p0, p1, p2 = (placement(campaign, n) for n in (0, 1, 2))
    click(session, p0, who["ann"], T0 + timedelta(minutes=1))
    click(session, p0, who["ann"], T0 + timedelta(minutes=2))
    click(session, p0, who["bob"], NOW - timedelta(hours=1), "mobile")
    click(session, p1, who["cid"], T0 + timedelta(hours=1))
    click(session, p1, who["dan"], T0 + timedelta(hours=1))
    click(session, p1, who["eve"], NOW - timedelta(minutes=5), "mobile")
    click(session, p2, who["ann"], T0 + timedelta(hours=3))
    record_deliveries(
        session,
        campaign,
        "A",
        ["ann", "bob", "cid", "dan", "eve", "fay"],
        delivered_at=T0 - timedelta(hours=1),
    )
    record_deliveries(session, campaign, "B", ["gus"], delivered_at=T0 - timedelta(hours=1))
    session.flush()
    return campaign


def rows(view: heatmap.HeatmapView) -> list[tuple[int, int, int, str]]:
    return [(s.position, s.total, s.unique, s.tier) for s in view.links]


def test_default_view_ranks_links_by_total_with_ties_by_position(
    session: Session, busy: Campaign
) -> None:
    view = build_view(session, busy.id, ViewParams(), now=NOW)
    assert (view.campaign_name, view.variant, view.variants, view.parts) == (
        "Spring sale",
        "A",
        ["A", "B"],
        ["html", "amp"],
    )
    # Links 0 and 1 tie on 3 clicks: the earlier one in the email comes first.
    assert rows(view) == [(0, 3, 2, "red"), (1, 3, 3, "red"), (2, 1, 1, "green"), (4, 0, 0, "gray")]
    assert (view.delivered, view.total, view.unique) == (6, 7, 5)
    assert view.rate == pytest.approx(5 / 6 * 100)
    assert [s.label for s in view.links] == ["3", "3", "1", "0"]
    assert view.legend == heatmap.legend()
    assert "<svg" in view.time_chart_svg
    assert "<svg" in view.device_chart_svg


def test_same_destination_twice_is_two_rows(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(sort="position"), now=NOW)
    same = [s for s in view.links if s.destination == "https://shop.example.com/sale"]
    assert [(s.position, s.total) for s in same] == [(0, 3), (2, 1)]
    assert len({s.placement_id for s in same}) == 2


def test_unique_metric_and_position_sort(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(metric="unique"), now=NOW)
    assert [(s.position, s.value, s.tier) for s in view.links] == [
        (1, 3.0, "red"),
        (0, 2.0, "orange"),
        (2, 1.0, "green"),
        (4, 0.0, "gray"),
    ]
    by_place = build_view(session, busy.id, ViewParams(metric="unique", sort="position"), now=NOW)
    assert [s.position for s in by_place.links] == [0, 1, 2, 4]
    assert by_place.links[0].tier == "orange"


def test_rate_and_share(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(metric="rate"), now=NOW)
    first = view.links[0]
    assert (first.position, first.rate, first.value, first.label) == (1, 50.0, 50.0, "50.0%")
    assert view.links[1].tier == "orange"  # 2 of 6 against 3 of 6: same tier as by unique
    share = build_view(session, busy.id, ViewParams(metric="share"), now=NOW)
    assert sum(s.share for s in share.links) == pytest.approx(100.0)
    assert [s.label for s in share.links] == ["42.9%", "42.9%", "14.3%", "0.0%"]
    assert [s.value for s in share.links] == [s.share for s in share.links]


def test_rate_without_deliveries_is_unknown_not_zero(session: Session) -> None:
    campaign = make_campaign(session)
    who = recipients(session, "ann")
    click(session, placement(campaign, 0), who["ann"], T0)
    view = build_view(session, campaign.id, ViewParams(metric="rate"), now=NOW)
    assert view.delivered == 0
    assert view.rate is None
    assert all(s.rate is None and s.value == 0 for s in view.links)
    assert {s.tier for s in view.links} == {"gray"}
    assert view.links[0].label == "n/a"
    # Totals and shares do not need deliveries.
    shares = build_view(session, campaign.id, ViewParams(metric="share"), now=NOW)
    assert shares.links[0].share == 100.0


def test_period_filter(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(period="24h"), now=NOW)
    assert rows(view) == [(0, 1, 1, "red"), (1, 1, 1, "red"), (2, 0, 0, "gray"), (4, 0, 0, "gray")]
    assert (view.delivered, view.total, view.unique) == (6, 2, 2)
    first_day = ViewParams(period="custom", start=T0.date(), end=T0.date())
    assert [s.total for s in build_view(session, busy.id, first_day, now=NOW).links] == [
        2,
        2,
        1,
        0,
    ]


def test_device_filter(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(device="desktop"), now=NOW)
    assert rows(view) == [
        (0, 2, 1, "red"),
        (1, 2, 2, "red"),
        (2, 1, 1, "yellow"),
        (4, 0, 0, "gray"),
    ]
    assert (view.total, view.unique) == (5, 3)  # ann, cid and dan


def test_skipped_links_are_listed_with_their_reason(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(), now=NOW)
    assert [(s.position, s.reason, s.href) for s in view.skipped] == [
        (3, "mailto", "mailto:help@example.com")
    ]
    assert "mailto:" in view.skipped[0].message


def test_other_variant_and_amp_part(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(variant="B"), now=NOW)
    assert (view.variant, view.delivered, view.total) == ("B", 1, 0)
    amp = build_view(session, busy.id, ViewParams(part="amp"), now=NOW)
    assert [(s.position, s.total) for s in amp.links] == [(0, 0)]


def test_unknown_things_are_not_found(session: Session, busy: Campaign) -> None:
    with pytest.raises(NotFound):
        build_view(session, 999_999, ViewParams())
    with pytest.raises(NotFound, match="no variant 'Z'"):
        build_view(session, busy.id, ViewParams(variant="Z"))
    html_only = make_campaign(session, "HTML only")
    html_only.variants[0].amp = None
    session.flush()
    with pytest.raises(NotFound, match="no amp part"):
        build_view(session, html_only.id, ViewParams(part="amp"))
    busy.deleted_at = NOW
    session.flush()
    with pytest.raises(NotFound):
        build_view(session, busy.id, ViewParams())


def test_view_document_colors_the_chosen_part(session: Session, busy: Campaign) -> None:
    view = build_view(session, busy.id, ViewParams(), now=NOW)
    document = view_document(session, view, highlight=1)
    assert 'href="#cm-0" id="cm-0"' in document
    assert '[href="#cm-1"]{outline:5px solid #000' in document


def test_honeypot_clicks_never_reach_the_links(session: Session, busy: Campaign) -> None:
    """The hidden link is no link of the sender's: clicked or not, the heatmap, its link
    counts and the colored email show the same links with the same numbers."""
    before = build_view(session, busy.id, ViewParams(), now=NOW)
    [honeypot] = [p for p in busy.variants[0].placements if p.kind == HONEYPOT]
    who = recipients(session, "ann", "bob", "scanner")
    for name in who:
        click(session, honeypot, who[name], T0 + timedelta(minutes=3))
    session.flush()
    after = build_view(session, busy.id, ViewParams(), now=NOW)
    assert rows(after) == rows(before)
    assert honeypot.id not in {s.placement_id for s in [*after.links, *before.links]}
    assert honeypot.position not in {s.position for s in after.skipped}
    assert honeypot.id not in stats.link_counts(session, after.where)
    assert "aria-hidden" not in view_document(session, after)


# --- CTAs and grouping ------------------------------------------------------------------


def test_grouping_by_destination_counts_each_clicker_once(session: Session, busy: Campaign) -> None:
    """Links 0 and 2 lead to the sale: ann clicked both, so the row has 4 clicks but 2
    clickers (ann, bob), not 3; the row stands at its first link's place."""
    view = build_view(session, busy.id, ViewParams(group="destination", sort="position"), now=NOW)
    assert [(s.positions, s.total, s.unique) for s in view.links] == [
        ((0, 2), 4, 2),
        ((1,), 3, 3),
        ((4,), 0, 0),
    ]
    sale = view.links[0]
    assert sale.rate == pytest.approx(2 / 6 * 100)
    assert sale.placement_ids == (placement(busy, 0).id, placement(busy, 2).id)
    assert (view.total, view.unique) == (7, 5)  # the summary is the part's, as ungrouped
    # The email colors both sale links by the row's figure.
    overlay = {s.position: (s.tier, s.label) for s in view.overlay}
    assert overlay[0] == overlay[2] == ("red", "4")


def test_grouped_clickers_follow_the_views_filters(session: Session, busy: Campaign) -> None:
    """Filtered (desktop only), the clickers come from the raw clicks: ann alone."""
    params = ViewParams(group="destination", sort="position", device="desktop")
    view = build_view(session, busy.id, params, now=NOW)
    assert (view.links[0].positions, view.links[0].total, view.links[0].unique) == ((0, 2), 3, 1)


def test_grouped_clickers_leave_machines_out_unless_included(
    session: Session, busy: Campaign
) -> None:
    link_checker = recipients(session, "gateway")["gateway"]
    event = click_event(placement(busy, 2), link_checker, T0 + timedelta(hours=4), method="HEAD")
    record_clicks(session, [event])
    session.flush()
    grouped = ViewParams(group="destination", sort="position")
    assert build_view(session, busy.id, grouped, now=NOW).links[0].unique == 2
    included = dataclasses.replace(grouped, machines="include")
    assert build_view(session, busy.id, included, now=NOW).links[0].unique == 3


def test_ctas_only_narrows_the_list_but_not_the_colors_or_summary(
    session: Session, busy: Campaign
) -> None:
    placement(busy, 2).cta = True
    placement(busy, 4).cta = True
    session.flush()
    every = build_view(session, busy.id, ViewParams(), now=NOW)
    ctas = build_view(session, busy.id, ViewParams(ctas="only"), now=NOW)
    assert [(s.position, s.cta) for s in ctas.links] == [(2, True), (4, True)]
    assert [s.tier for s in ctas.links] == ["green", "gray"]  # relative to the top link, 0
    assert (ctas.delivered, ctas.total, ctas.unique) == (every.delivered, every.total, every.unique)
    assert [s.position for s in ctas.overlay] == [0, 1, 2, 4]


def test_ctas_under_the_click_rate_guideline_are_flagged(session: Session, busy: Campaign) -> None:
    """6 delivered: link 2 (1 clicker, 16.7%) passes 10% but not 20%; link 4 (nobody, 0%)
    fails both; link 1 (50%) is no CTA, so it is never flagged."""
    placement(busy, 2).cta = True
    placement(busy, 4).cta = True
    session.flush()

    def flagged(min_rate: float) -> list[int]:
        view = build_view(session, busy.id, ViewParams(), now=NOW, cta_min_rate=min_rate)
        return sorted(s.position for s in view.links if s.below_cta_guideline)

    assert flagged(heatmap.CTA_MIN_CLICK_RATE) == [4]
    assert flagged(20.0) == [2, 4]
    assert flagged(0.0) == []
    assert flagged(100 / 6) == [4]  # exactly at the guideline is not under it


def test_the_marketers_name_is_shown_instead_of_the_text(session: Session, busy: Campaign) -> None:
    placement(busy, 1).label = "Hero button"
    session.flush()
    by_position = {s.position: s for s in build_view(session, busy.id, ViewParams(), now=NOW).links}
    assert (by_position[1].shown_text, by_position[1].text) == ("Hero button", "New arrivals")
    assert by_position[0].shown_text == "Shop the sale"


def test_nothing_delivered_flags_no_cta(session: Session) -> None:
    campaign = make_campaign(session)
    placement(campaign, 0).cta = True
    session.flush()
    view = build_view(session, campaign.id, ViewParams(), now=NOW)
    assert [s.below_cta_guideline for s in view.links if s.cta] == [False]
