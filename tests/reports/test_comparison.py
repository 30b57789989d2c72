"""The comparison of two variants: the counts it reads and the figures it gives, checked
against figures worked out by hand (the intervals with Python's decimal at 40 digits)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.clicks.recording import record_clicks
from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import record_deliveries
from app.models import Campaign
from app.reports import abtest
from app.reports.comparison import (
    CompareParams,
    NothingToCompare,
    build_comparison,
    format_p,
    rate_chart,
)
from app.reports.heatmap import ViewParams, build_view
from tests.factories import T0, click_event, make_campaign, placement, recipients

HOUR = timedelta(hours=1)


def _deliver(
    session: Session, campaign: Campaign, variant: str, names: list[str]
) -> dict[str, int]:
    record_deliveries(session, campaign, variant, names, delivered_at=T0)
    return recipients(session, *names)


@pytest.fixture
def small(session: Session) -> Campaign:
    """A: 10 delivered; a0 clicks links 0 and 1 hours apart, a1 link 0, a2 the AMP link
    (3 human clickers, 2 in the HTML part), a3 only sends a HEAD request (machine).
    B: 8 delivered; b0..b3 click link 0, b4 link 1 (5 human clickers)."""
    campaign = make_campaign(session, variants=("A", "B"))
    a = _deliver(session, campaign, "A", [f"a{i}" for i in range(10)])
    b = _deliver(session, campaign, "B", [f"b{i}" for i in range(8)])
    events = [
        click_event(placement(campaign, 0), a["a0"], T0 + HOUR),
        click_event(placement(campaign, 1), a["a0"], T0 + 3 * HOUR),
        click_event(placement(campaign, 0), a["a1"], T0 + 2 * HOUR),
        click_event(placement(campaign, 0, "amp"), a["a2"], T0 + 2 * HOUR),
        click_event(placement(campaign, 0), a["a3"], T0 + 4 * HOUR, method="HEAD"),
        *(
            click_event(placement(campaign, 0, variant=1), b[f"b{i}"], T0 + (i + 1) * HOUR)
            for i in range(4)
        ),
        click_event(placement(campaign, 1, variant=1), b["b4"], T0 + 5 * HOUR),
    ]
    record_clicks(session, events)
    session.flush()
    return campaign


def test_the_arms_count_human_clickers_of_any_part_per_delivery(
    session: Session, small: Campaign
) -> None:
    view = build_comparison(session, small.id, CompareParams())
    c = view.comparison
    assert (view.a, view.b) == ("A", "B")
    assert (c.a.delivered, c.a.unique_clickers, c.b.delivered, c.b.unique_clickers) == (10, 3, 8, 5)
    assert c.a.rate == pytest.approx(30.0) and c.b.rate == pytest.approx(62.5)
    assert c.a.interval is not None and c.b.interval is not None
    assert (c.a.interval.low, c.a.interval.high) == pytest.approx((10.779127, 60.322185))
    assert (c.b.interval.low, c.b.interval.high) == pytest.approx((30.574239, 86.315571))
    assert c.difference == pytest.approx(32.5)
    assert c.difference_interval is not None
    assert (c.difference_interval.low, c.difference_interval.high) == pytest.approx(
        (-11.530547, 63.104304)
    )
    assert c.z == pytest.approx(1.3788582) and c.p_value == pytest.approx(0.1679385)
    assert c.winner is None and not c.significant
    assert view.left_out == (1, 0)
    assert view.verdict == (
        "No winner: the difference is not significant (p = 0.168, not below 0.05). "
        "This does not show that the variants perform alike."
    )
    assert c.warnings == (
        "fewer than 1,000 deliveries in variant A: wait before concluding",
        "fewer than 1,000 deliveries in variant B: wait before concluding",
    )
    assert view.decision_rule == abtest.DECISION_RULE


def test_including_machine_clicks_counts_the_head_request(
    session: Session, small: Campaign
) -> None:
    c = build_comparison(session, small.id, CompareParams(machines="include")).comparison
    assert (c.a.unique_clickers, c.b.unique_clickers) == (4, 5)
    assert c.a.interval is not None
    assert (c.a.interval.low, c.a.interval.high) == pytest.approx((16.818033, 68.732623))


def test_without_an_amp_click_the_arm_is_the_heatmaps_figure(
    session: Session, small: Campaign
) -> None:
    """B's clickers are all in its HTML part: the heatmap's summary says the same. A's AMP
    clicker counts once, on top of its two HTML clickers."""
    view = build_comparison(session, small.id, CompareParams())
    heat_b = build_view(session, small.id, ViewParams(variant="B"), charts=False)
    heat_a = build_view(session, small.id, ViewParams(variant="A"), charts=False)
    assert (
        (heat_b.delivered, heat_b.unique)
        == (8, 5)
        == (
            view.comparison.b.delivered,
            view.comparison.b.unique_clickers,
        )
    )
    assert heat_a.unique == 2 and view.comparison.a.unique_clickers == 3


def test_links_present_in_both_variants_are_compared_on_their_own_clickers(
    session: Session, small: Campaign
) -> None:
    links = build_comparison(session, small.id, CompareParams()).links
    by_text = {m.text: m for m in links.matched}
    assert list(by_text) == ["Shop the sale", "New arrivals", "Sale again", "Odd one"]
    assert links.only_a == () and links.only_b == ()
    shop = by_text["Shop the sale"].comparison
    assert (shop.a.unique_clickers, shop.b.unique_clickers) == (2, 4)
    assert (shop.a.rate, shop.b.rate) == pytest.approx((20.0, 50.0))
    assert shop.difference == pytest.approx(30.0)
    arrivals = by_text["New arrivals"].comparison
    assert (arrivals.a.rate, arrivals.b.rate) == pytest.approx((10.0, 12.5))
    assert all(m.comparison.winner is None for m in links.matched)


def test_the_variants_can_be_chosen_and_swapped(session: Session, small: Campaign) -> None:
    swapped = build_comparison(session, small.id, CompareParams(a="B"))
    assert (swapped.a, swapped.b) == ("B", "A")
    assert swapped.comparison.difference == pytest.approx(-32.5)
    assert build_comparison(session, small.id, CompareParams(b="A")).a == "B"


def test_a_clear_winner_needs_significance_and_the_minimum(session: Session) -> None:
    """1,000 deliveries each, 40 clickers in A against 80 in B: z = 3.77, p = 0.00017."""
    campaign = make_campaign(session, variants=("A", "B"))
    a = _deliver(session, campaign, "A", [f"a{i}" for i in range(1000)])
    b = _deliver(session, campaign, "B", [f"b{i}" for i in range(1000)])
    events = [click_event(placement(campaign, 1), a[f"a{i}"], T0 + HOUR) for i in range(40)]
    events += [
        click_event(placement(campaign, 1, variant=1), b[f"b{i}"], T0 + HOUR) for i in range(80)
    ]
    record_clicks(session, events)
    view = build_comparison(session, campaign.id, CompareParams())
    c = view.comparison
    assert (c.a.unique_clickers, c.b.unique_clickers) == (40, 80)
    assert c.p_value == pytest.approx(0.00016573917) and c.winner == "B"
    assert c.difference_interval is not None
    assert (c.difference_interval.low, c.difference_interval.high) == pytest.approx(
        (1.929028, 6.123744)
    )
    assert c.warnings == ()
    assert view.verdict == (
        "Variant B wins: its click rate is higher than variant A's by 4.00 percentage points "
        "(p < 0.001, below 0.05)."
    )


def test_a_campaign_with_one_variant_has_nothing_to_compare(session: Session) -> None:
    campaign = make_campaign(session)
    with pytest.raises(NothingToCompare) as caught:
        build_comparison(session, campaign.id, CompareParams())
    assert caught.value.code == "nothing_to_compare"
    assert "single variant" in caught.value.message


def test_clicks_without_recorded_deliveries_are_no_rate(session: Session) -> None:
    campaign = make_campaign(session, variants=("A", "B"))
    who = recipients(session, "ann")
    record_clicks(session, [click_event(placement(campaign, 0), who["ann"], T0 + HOUR)])
    with pytest.raises(NothingToCompare) as caught:
        build_comparison(session, campaign.id, CompareParams(machines="include"))
    assert caught.value.code == "deliveries_incomplete"


def test_no_deliveries_at_all_gives_no_verdict(session: Session) -> None:
    campaign = make_campaign(session, variants=("A", "B"))
    view = build_comparison(session, campaign.id, CompareParams())
    assert view.comparison.difference is None and view.comparison.winner is None
    assert view.verdict.startswith("No verdict")
    assert view.chart.bars == ()


def test_unknown_campaigns_and_variants_are_not_found(session: Session, small: Campaign) -> None:
    with pytest.raises(NotFound):
        build_comparison(session, small.id + 1000, CompareParams())
    with pytest.raises(NotFound):
        build_comparison(session, small.id, CompareParams(a="C"))


@pytest.mark.parametrize(
    "args",
    [{"a": "A", "b": "A"}, {"machines": "all"}, {"machines": "EXCLUDE"}],
)
def test_bad_choices_are_refused(args: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        CompareParams.from_query(args)


def test_empty_query_values_mean_the_defaults() -> None:
    assert CompareParams.from_query({"a": " ", "b": "", "machines": ""}) == CompareParams()


@pytest.mark.parametrize(
    ("p", "shown"), [(0.0001657, "< 0.001"), (0.001, "0.001"), (0.16794, "0.168"), (1.0, "1.000")]
)
def test_p_values_read_as_people_read_them(p: float, shown: str) -> None:
    assert format_p(p) == shown


def test_the_chart_fits_both_intervals() -> None:
    c = abtest.compare(abtest.Arm("A", 10, 3), abtest.Arm("B", 8, 5))
    chart = rate_chart(c)
    assert chart.scale == 100  # B's interval ends at 86.3%
    assert [bar.name for bar in chart.bars] == ["A", "B"]
    b = chart.bars[1]
    assert (b.low, b.rate, b.high) == pytest.approx((30.574239, 62.5, 86.315571))
    small = rate_chart(abtest.compare(abtest.Arm("A", 1000, 40), abtest.Arm("B", 1000, 80)))
    assert small.scale == 10  # B's interval ends at 9.8%: the axis stops at 10%, not 100%
    assert all(0 <= bar.low <= bar.rate <= bar.high <= 100 for bar in chart.bars)
