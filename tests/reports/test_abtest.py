"""The A/B comparison of two variants' click rates (app.reports.abtest).

Where the reference numbers come from: every literal below was computed outside the module,
in a separate session, with Python's ``decimal`` at 50 significant digits, writing the
published formulas out again (Wilson 1927; Newcombe 1998b method 10; the pooled
two-proportion z statistic; erfc from its Taylor series) and taking the 97.5% normal quantile
as 1.959963984540054185254502327926745937264. Several of them also agree, to the 4 decimals
printed there, with the worked examples of Newcombe's papers (Statistics in Medicine 17,
1998: "Two-sided confidence intervals for the single proportion", pp. 857-872, and "Interval
estimation for the difference between independent proportions", pp. 873-890) and with the
example in the project's research notes (section 5: 40/1000 against 58/1000, z = 1.86,
p = 0.062); the comment on each says which.
"""

from __future__ import annotations

import pytest

from app.reports.abtest import (
    DECISION_RULE,
    Arm,
    Interval,
    LinkClicks,
    compare,
    compare_links,
    proportion_interval,
)

TOL = 1e-9  # in percent or percentage points: the floats agree with the decimals to ~1e-12


def close(interval: Interval | None, low: float, high: float) -> bool:
    assert interval is not None
    return interval.low == pytest.approx(low, abs=TOL) and interval.high == pytest.approx(
        high, abs=TOL
    )


# --- one rate's interval -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe 1998a, 81/263: Wilson 0.2553 to 0.3662.
        (81, 263, 25.528851987827, 36.620957698280),
        # Newcombe 1998a, 15/148: Wilson 0.0624 to 0.1605.
        (15, 148, 6.238639953074, 16.048724172331),
        # Newcombe 1998a, 0/10: Wilson 0 to 0.2775 (the Wald interval would be 0 to 0).
        (0, 10, 0.0, 27.753279986289),
        # 10/10, the mirror image of 0/10.
        (10, 10, 72.246720013711, 100.0),
        # Click-rate sized: decimal computation only.
        (0, 1000, 0.0, 0.382675848556),
        (40, 1000, 2.951097368545, 5.400964412126),
        (58, 1000, 4.513327823500, 7.424957626623),
    ],
)
def test_wilson_interval_matches_the_references(
    successes: int, trials: int, low: float, high: float
) -> None:
    assert close(proportion_interval(successes, trials), low, high)


def test_a_wider_level_gives_a_wider_interval() -> None:
    at95 = proportion_interval(40, 1000)
    at99 = proportion_interval(40, 1000, confidence=0.99)
    assert at95 is not None and at99 is not None
    assert at99.low < at95.low and at99.high > at95.high


def test_no_trials_is_no_rate() -> None:
    assert proportion_interval(0, 0) is None


@pytest.mark.parametrize(("successes", "trials"), [(11, 10), (-1, 10), (0, -1), (1, 0)])
def test_impossible_counts_are_refused(successes: int, trials: int) -> None:
    with pytest.raises(ValueError):
        proportion_interval(successes, trials)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0, -0.5])
def test_a_level_outside_0_1_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError):
        proportion_interval(1, 10, confidence=confidence)


def test_an_arm_with_impossible_counts_is_refused() -> None:
    with pytest.raises(ValueError):
        Arm("A", 10, 11)
    with pytest.raises(ValueError):
        Arm("A", -1, 0)


# --- two arms ------------------------------------------------------------------------------


def test_the_research_notes_example_is_not_significant() -> None:
    # Research notes section 5: z = 1.86, two-sided p = 0.062; decimals: z = 1.864529284332688,
    # p = 0.062247413091295. The difference interval (decimals only) crosses 0 as well.
    result = compare(Arm("A", 1000, 40), Arm("B", 1000, 58))
    assert result.a.rate == pytest.approx(4.0) and result.b.rate == pytest.approx(5.8)
    assert close(result.a.interval, 2.951097368545, 5.400964412126)
    assert close(result.b.interval, 4.513327823500, 7.424957626623)
    assert result.difference == pytest.approx(1.8)
    assert close(result.difference_interval, -0.102163655899, 3.734084801293)
    assert result.z == pytest.approx(1.864529284332688, abs=1e-12)
    assert result.p_value == pytest.approx(0.062247413091295, abs=1e-12)
    assert result.confidence == pytest.approx(0.95)
    assert not result.significant
    assert result.winner is None
    assert result.warnings == ()


def test_newcombe_difference_examples() -> None:
    # Newcombe 1998b example (a), 56/70 - 48/80: method 10 gives +0.0524 to +0.3339.
    # z and p: decimals only (z = 2.650171951258533, p = 0.008045081368197).
    result = compare(Arm("A", 80, 48), Arm("B", 70, 56), min_deliveries=0)
    assert close(result.difference_interval, 5.243147240236, 33.387265403691)
    assert result.z == pytest.approx(2.650171951258533, abs=1e-12)
    assert result.p_value == pytest.approx(0.008045081368197, abs=1e-12)
    assert result.winner == "B"
    # Newcombe 1998b example (e), 5/56 - 0/29: method 10 gives -0.0381 to +0.1926; here the
    # difference is taken the other way round (b - a = 0/29 - 5/56).
    result = compare(Arm("A", 56, 5), Arm("B", 29, 0), min_deliveries=0)
    assert close(result.difference_interval, -19.256001385511, 3.813714790354)


def test_significant_with_enough_deliveries_names_the_better_arm() -> None:
    # 120/1500 against 90/1500: decimals give z = -2.146693953705459, p = 0.031817654447406,
    # and the difference interval -3.842053935165 to -0.171085323554.
    result = compare(Arm("A", 1500, 120), Arm("B", 1500, 90))
    assert result.z == pytest.approx(-2.146693953705459, abs=1e-12)
    assert result.p_value == pytest.approx(0.031817654447406, abs=1e-12)
    assert close(result.difference_interval, -3.842053935165, -0.171085323554)
    assert result.significant
    assert result.winner == "A"
    assert result.warnings == ()


def test_significant_under_the_minimum_is_no_winner_and_a_warning() -> None:
    # 20/400 against 36/400: decimals give z = 2.217095981894773, p = 0.026616533323462.
    result = compare(Arm("A", 400, 20), Arm("B", 400, 36))
    assert result.z == pytest.approx(2.217095981894773, abs=1e-12)
    assert result.p_value == pytest.approx(0.026616533323462, abs=1e-12)
    assert result.significant
    assert result.winner is None
    assert result.warnings == (
        "fewer than 1,000 deliveries in variant A: wait before concluding",
        "fewer than 1,000 deliveries in variant B: wait before concluding",
    )
    # The same counts decide once the minimum is lowered, and a stricter level refuses them.
    assert compare(Arm("A", 400, 20), Arm("B", 400, 36), min_deliveries=400).winner == "B"
    strict = compare(Arm("A", 400, 20), Arm("B", 400, 36), alpha=0.01, min_deliveries=400)
    assert not strict.significant and strict.winner is None
    assert strict.confidence == pytest.approx(0.99)


def test_one_arm_under_the_minimum_is_enough_to_withhold_the_winner() -> None:
    result = compare(Arm("A", 5000, 200), Arm("B", 999, 80))
    assert result.significant
    assert result.winner is None
    assert result.warnings == ("fewer than 1,000 deliveries in variant B: wait before concluding",)


def test_swapping_the_arms_flips_the_sign_and_keeps_p() -> None:
    ab = compare(Arm("A", 1500, 120), Arm("B", 1300, 70))
    ba = compare(Arm("B", 1300, 70), Arm("A", 1500, 120))
    assert ab.difference is not None and ba.difference is not None
    assert ba.difference == pytest.approx(-ab.difference, abs=1e-12)
    assert ab.z is not None and ba.z is not None
    assert ba.z == pytest.approx(-ab.z, abs=1e-12)
    assert ba.p_value == pytest.approx(ab.p_value, abs=1e-15)
    assert ab.difference_interval is not None and ba.difference_interval is not None
    assert ba.difference_interval.low == pytest.approx(-ab.difference_interval.high, abs=1e-12)
    assert ba.difference_interval.high == pytest.approx(-ab.difference_interval.low, abs=1e-12)
    assert ab.winner == ba.winner == "A"
    assert ab.a == ba.b and ab.b == ba.a


def test_no_clickers_in_either_arm() -> None:
    result = compare(Arm("A", 2000, 0), Arm("B", 1500, 0))
    assert result.z == 0 and result.p_value == 1
    assert result.difference == 0
    assert not result.significant and result.winner is None
    assert result.a.rate == 0 and result.a.interval is not None and result.a.interval.low == 0
    assert result.difference_interval is not None
    assert result.difference_interval.low < 0 < result.difference_interval.high


def test_everyone_clicked_in_both_arms() -> None:
    result = compare(Arm("A", 10, 10), Arm("B", 20, 20))
    assert result.z == 0 and result.p_value == 1
    assert not result.significant and result.winner is None
    assert result.b.rate == 100 and result.b.interval is not None
    assert result.b.interval.high == 100


def test_no_clickers_against_some_clickers_is_still_tested() -> None:
    result = compare(Arm("A", 1000, 0), Arm("B", 1000, 30))
    assert result.z is not None and result.z > 0
    assert result.significant and result.winner == "B"
    assert close(result.a.interval, 0.0, 0.382675848556)


def test_an_arm_without_deliveries_is_not_tested() -> None:
    result = compare(Arm("A", 0, 0), Arm("B", 1200, 40))
    assert result.a.rate is None and result.a.interval is None
    assert result.b.rate == pytest.approx(40 / 1200 * 100)
    assert result.difference is None and result.difference_interval is None
    assert result.z is None and result.p_value is None
    assert not result.significant and result.winner is None
    assert result.warnings == ("no deliveries in variant A: no rate, nothing to compare",)


def test_neither_arm_delivered() -> None:
    result = compare(Arm("A", 0, 0), Arm("B", 0, 0))
    assert result.p_value is None and result.winner is None
    assert len(result.warnings) == 2


@pytest.mark.parametrize(
    ("alpha", "min_deliveries"), [(0.0, 1000), (1.0, 1000), (5.0, 1000), (0.05, -1)]
)
def test_bad_settings_are_refused(alpha: float, min_deliveries: int) -> None:
    with pytest.raises(ValueError):
        compare(Arm("A", 10, 1), Arm("B", 10, 2), alpha=alpha, min_deliveries=min_deliveries)


def test_two_arms_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError):
        compare(Arm("A", 10, 1), Arm("A", 10, 2))


def test_the_rule_states_the_test_the_level_and_the_minimum() -> None:
    for part in ("two-sided", "p < 0.05", "1,000 deliveries", "before", "Per-link"):
        assert part in DECISION_RULE


# --- links ---------------------------------------------------------------------------------


def link(position: int, destination: str, text: str, clickers: int) -> LinkClicks:
    return LinkClicks(position, destination, text, clickers)


def test_links_match_by_destination_and_text_in_position_order() -> None:
    shop = "https://shop.example/"
    links_a = [
        link(0, shop, "Shop now", 50),
        link(1, "https://shop.example/sale", "Sale", 30),
        link(2, shop, "Shop now", 20),
        link(3, shop, "Shop now", 5),
        link(4, "https://example.com/old", "Old", 1),
    ]
    links_b = [  # given out of order: matching follows positions, not the list's order
        link(3, shop, "Shop now", 25),
        link(0, "https://shop.example/sale", "Sale", 45),
        link(1, shop, "Shop now", 60),
        link(2, shop, "Shop!", 9),
        link(4, "https://example.com/new", "New", 2),
    ]
    result = compare_links(links_a, links_b, delivered_a=1000, delivered_b=1000)
    pairs = [(m.destination, m.text, m.position_a, m.position_b) for m in result.matched]
    assert pairs == [
        (shop, "Shop now", 0, 1),
        ("https://shop.example/sale", "Sale", 1, 0),
        (shop, "Shop now", 2, 3),
    ]
    assert [x.position for x in result.only_a] == [3, 4]
    assert [x.position for x in result.only_b] == [2, 4]
    first = result.matched[0].comparison
    assert first.a.name == "A" and first.a.unique_clickers == 50
    assert first.b.unique_clickers == 60 and first.b.delivered == 1000
    assert first.difference == pytest.approx(1.0)


def test_a_link_comparison_is_the_same_comparison_but_never_names_a_winner() -> None:
    # 120/1500 against 90/1500 is significant (see above), yet a link never wins.
    result = compare_links(
        [link(0, "https://a.example/", "Go", 120)],
        [link(0, "https://a.example/", "Go", 90)],
        delivered_a=1500,
        delivered_b=1500,
        name_a="Spring",
        name_b="Summer",
    )
    (matched,) = result.matched
    whole = compare(Arm("Spring", 1500, 120), Arm("Summer", 1500, 90))
    assert matched.comparison.p_value == whole.p_value
    assert matched.comparison.difference_interval == whole.difference_interval
    assert matched.comparison.significant
    assert whole.winner == "Spring" and matched.comparison.winner is None


def test_link_comparison_with_a_variant_not_delivered() -> None:
    result = compare_links(
        [link(0, "https://a.example/", "Go", 0)],
        [link(0, "https://a.example/", "Go", 3)],
        delivered_a=0,
        delivered_b=100,
    )
    (matched,) = result.matched
    assert matched.comparison.p_value is None
    assert "no deliveries in variant A: no rate, nothing to compare" in matched.comparison.warnings


def test_no_links_in_common() -> None:
    result = compare_links(
        [link(0, "https://a.example/", "A", 1)],
        [],
        delivered_a=10,
        delivered_b=10,
    )
    assert result.matched == () and result.only_b == ()
    assert [x.destination for x in result.only_a] == ["https://a.example/"]


def test_links_sharing_a_position_or_over_counting_are_refused() -> None:
    with pytest.raises(ValueError):
        compare_links(
            [link(0, "https://a.example/", "A", 1), link(0, "https://b.example/", "B", 1)],
            [],
            delivered_a=10,
            delivered_b=10,
        )
    with pytest.raises(ValueError):
        compare_links(
            [link(0, "https://a.example/", "A", 11)],
            [link(0, "https://a.example/", "A", 1)],
            delivered_a=10,
            delivered_b=10,
        )
