"""Comparing two email variants on click rate, with one decision rule declared in advance.

Pure functions on counts: no session, no request. The click rate is the one the heatmap shows
(docs/heatmap.md): unique clickers / delivered x 100. Every rate and interval is in percent,
every difference in percentage points, and the difference is always b - a.

Choices (docs/ab-testing.md gives the formulas and the sources):

- One rate's interval: the Wilson score interval (Wilson 1927). Email click rates sit near 0
  (a few percent), where the textbook Wald interval p +- z*sqrt(p(1-p)/n) covers the true rate
  far less often than it claims and collapses to a zero-width interval at 0 clicks; Wilson's
  stays inside [0, 100] and keeps close to its nominal coverage there (Newcombe 1998a; Brown,
  Cai and DasGupta 2001). The project's research notes (section 5) name no interval method, so
  the sources are these papers.
- The difference's interval: Newcombe's hybrid score interval (Newcombe 1998b, method 10),
  built from the two Wilson intervals, so it agrees with the intervals shown per arm and
  stays usable with 0 clicks in an arm, where the unpooled Wald interval again has zero width.
- The test: the two-sided pooled two-proportion z-test (the test the research notes work an
  example of: 40/1000 against 58/1000 gives z = 1.86, p = 0.062), p-value from ``math.erfc``.
  The interval and the test can disagree at the margin (the interval is not built from the
  pooled standard error); the decision is the test's alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

ALPHA = 0.05
MIN_DELIVERIES = 1000

DECISION_RULE = (
    "A variant wins only if both hold: (1) the two-sided pooled two-proportion z-test of "
    "unique clickers per delivered email (each recipient who clicked any tracked link at "
    "least once counts once; delivered = the variant's recorded deliveries) gives p < 0.05; "
    "(2) each variant has at least 1,000 deliveries. The winner is the variant with the "
    "higher click rate. The test, its level and the minimum are fixed before the results are "
    "looked at and are not changed after; otherwise there is no winner, and a non-significant "
    "result does not show that the variants perform alike. Per-link differences are "
    "descriptive only: they never name a winner, because many links make many comparisons "
    "and some will reach p < 0.05 by chance."
)
"""The rule pages and docs show. It states the defaults (``ALPHA``, ``MIN_DELIVERIES``);
``compare`` applies whatever values it is given, so show this text only with the defaults."""


@dataclass(frozen=True)
class Interval:
    """A confidence interval: percent for a rate, percentage points for a difference."""

    low: float
    high: float


@dataclass(frozen=True)
class Arm:
    """One variant's counts: ``unique_clickers`` distinct recipients who clicked, out of
    ``delivered`` recorded deliveries."""

    name: str
    delivered: int
    unique_clickers: int

    def __post_init__(self) -> None:
        _check_counts(self.unique_clickers, self.delivered)


@dataclass(frozen=True)
class ArmResult:
    """One arm as compared: its counts, rate (percent) and Wilson interval; ``rate`` and
    ``interval`` are None with no deliveries."""

    name: str
    delivered: int
    unique_clickers: int
    rate: float | None
    interval: Interval | None


@dataclass(frozen=True)
class Comparison:
    """Variant b against variant a.

    ``difference`` is b's rate minus a's in percentage points, with Newcombe's hybrid score
    interval; ``z`` and ``p_value`` are the pooled two-proportion z-test's (positive z when b
    is higher). All four are None when an arm has no deliveries (there is nothing to test).
    ``significant`` is ``p_value < alpha``; ``winner`` names the arm with the higher rate only
    when the decision rule holds (see ``DECISION_RULE``), and is always None for a single
    link's comparison. ``warnings`` says, in words for the page, why there is no winner yet.
    """

    a: ArmResult
    b: ArmResult
    confidence: float
    difference: float | None
    difference_interval: Interval | None
    z: float | None
    p_value: float | None
    significant: bool
    winner: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class LinkClicks:
    """One tracked link of a variant: its place in the email (``position``, unique within the
    variant), where it goes, its text, and how many distinct recipients clicked it."""

    position: int
    destination: str
    text: str
    unique_clickers: int


@dataclass(frozen=True)
class MatchedLink:
    """A link present in both variants and its comparison (that link's unique clickers per
    delivered email of its variant)."""

    destination: str
    text: str
    position_a: int
    position_b: int
    comparison: Comparison


@dataclass(frozen=True)
class LinkComparison:
    """Links matched across the variants (in a's position order), and those only in one."""

    matched: tuple[MatchedLink, ...]
    only_a: tuple[LinkClicks, ...]
    only_b: tuple[LinkClicks, ...]


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0:
        raise ValueError(f"counts cannot be negative: {successes}/{trials}")
    if successes > trials:
        raise ValueError(f"more successes than trials: {successes}/{trials}")


def _check_level(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence level must lie strictly between 0 and 1: {confidence}")


def _z_quantile(confidence: float) -> float:
    """The standard normal quantile of a two-sided interval at ``confidence``."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    """Wilson's score interval as proportions (0 to 1); ``trials`` > 0."""
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # The exact ends are 0 at 0 successes and 1 at all; floats may miss them by an ulp.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def proportion_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval | None:
    """The Wilson score interval of ``successes``/``trials``, in percent.

    Wilson's interval rather than the Wald one because click rates are near 0: there the Wald
    interval undercovers badly and has zero width at 0 successes, while Wilson's keeps close
    to its nominal coverage and never leaves [0, 100] (Wilson 1927; Newcombe 1998a; Brown, Cai
    and DasGupta 2001; see docs/ab-testing.md). None when ``trials`` is 0 (no rate at all);
    ValueError on negative counts, more successes than trials, or a level outside (0, 1).
    """
    _check_counts(successes, trials)
    _check_level(confidence)
    if trials == 0:
        return None
    low, high = _wilson(successes, trials, _z_quantile(confidence))
    return Interval(low * 100, high * 100)


def _arm_result(arm: Arm, z: float) -> ArmResult:
    if arm.delivered == 0:
        return ArmResult(arm.name, 0, 0, None, None)
    low, high = _wilson(arm.unique_clickers, arm.delivered, z)
    return ArmResult(
        arm.name,
        arm.delivered,
        arm.unique_clickers,
        arm.unique_clickers / arm.delivered * 100,
        Interval(low * 100, high * 100),
    )


def _newcombe(a: Arm, b: Arm, z: float) -> Interval:
    """Newcombe's hybrid score interval of b's proportion minus a's, in percentage points."""
    pa = a.unique_clickers / a.delivered
    pb = b.unique_clickers / b.delivered
    la, ua = _wilson(a.unique_clickers, a.delivered, z)
    lb, ub = _wilson(b.unique_clickers, b.delivered, z)
    d = pb - pa
    low = d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return Interval(low * 100, high * 100)


def _z_test(a: Arm, b: Arm) -> tuple[float, float]:
    """The pooled two-proportion z statistic (b - a) and its two-sided p-value.

    When no one or everyone clicked in both arms the pooled standard error is 0 and the
    difference is exactly 0: there is no evidence of a difference, so z = 0 and p = 1.
    """
    pa = a.unique_clickers / a.delivered
    pb = b.unique_clickers / b.delivered
    pooled = (a.unique_clickers + b.unique_clickers) / (a.delivered + b.delivered)
    variance = pooled * (1 - pooled) * (1 / a.delivered + 1 / b.delivered)
    if variance <= 0:
        return 0.0, 1.0
    z = (pb - pa) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def _compare(a: Arm, b: Arm, alpha: float, min_deliveries: int, decide: bool) -> Comparison:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1: {alpha}")
    if min_deliveries < 0:
        raise ValueError(f"min_deliveries cannot be negative: {min_deliveries}")
    if a.name == b.name:
        raise ValueError(f"the two variants need different names: {a.name!r}")
    confidence = 1 - alpha
    zq = _z_quantile(confidence)
    warnings: list[str] = []
    for arm in (a, b):
        if arm.delivered == 0:
            warnings.append(f"no deliveries in variant {arm.name}: no rate, nothing to compare")
        elif arm.delivered < min_deliveries:
            warnings.append(
                f"fewer than {min_deliveries:,} deliveries in variant {arm.name}: "
                "wait before concluding"
            )
    result_a, result_b = _arm_result(a, zq), _arm_result(b, zq)
    if a.delivered == 0 or b.delivered == 0:
        return Comparison(
            result_a, result_b, confidence, None, None, None, None, False, None, tuple(warnings)
        )
    difference = (b.unique_clickers / b.delivered - a.unique_clickers / a.delivered) * 100
    z, p_value = _z_test(a, b)
    significant = p_value < alpha
    winner = None
    if decide and significant and min(a.delivered, b.delivered) >= min_deliveries:
        winner = b.name if z > 0 else a.name
    return Comparison(
        result_a,
        result_b,
        confidence,
        difference,
        _newcombe(a, b, zq),
        z,
        p_value,
        significant,
        winner,
        tuple(warnings),
    )


def compare(
    a: Arm, b: Arm, *, alpha: float = ALPHA, min_deliveries: int = MIN_DELIVERIES
) -> Comparison:
    """Variant b against variant a on click rate, decided by ``DECISION_RULE``.

    Intervals are at confidence 1 - ``alpha``. An arm with no deliveries leaves nothing to
    test (a warning says so); no clicks, or only clicks, in both arms gives p = 1. Swapping
    a and b flips the sign of the difference, its interval and z, and keeps p and the winner.
    """
    return _compare(a, b, alpha, min_deliveries, decide=True)


def _by_key(links: Sequence[LinkClicks], variant: str) -> dict[tuple[str, str], list[LinkClicks]]:
    positions = [link.position for link in links]
    if len(set(positions)) != len(positions):
        raise ValueError(f"two links of variant {variant} share a position")
    groups: dict[tuple[str, str], list[LinkClicks]] = defaultdict(list)
    for link in sorted(links, key=lambda link: link.position):
        groups[(link.destination, link.text)].append(link)
    return groups


def compare_links(
    links_a: Sequence[LinkClicks],
    links_b: Sequence[LinkClicks],
    *,
    delivered_a: int,
    delivered_b: int,
    name_a: str = "A",
    name_b: str = "B",
    alpha: float = ALPHA,
    min_deliveries: int = MIN_DELIVERIES,
) -> LinkComparison:
    """Compare the links the two variants share, each on its own click rate.

    A link of a matches a link of b when both go to the same destination with the same text;
    when that pair occurs several times in a variant, the k-th occurrence in a (in position
    order) matches the k-th in b, and the rest are listed as only in a or only in b. Each
    matched link gets the same comparison as ``compare`` (that link's unique clickers per
    delivered email of its variant), except that ``winner`` is always None: per-link
    differences are descriptive, since testing many links makes some differences look
    significant by chance (``DECISION_RULE``). ValueError on two links of one variant at the
    same position, or a link with more clickers than its variant's deliveries.
    """
    groups_a = _by_key(links_a, name_a)
    groups_b = _by_key(links_b, name_b)
    matched: list[MatchedLink] = []
    only_a: list[LinkClicks] = []
    only_b: list[LinkClicks] = []
    for key, in_a in groups_a.items():
        in_b = groups_b.get(key, [])
        for link_a, link_b in zip(in_a, in_b, strict=False):
            comparison = _compare(
                Arm(name_a, delivered_a, link_a.unique_clickers),
                Arm(name_b, delivered_b, link_b.unique_clickers),
                alpha,
                min_deliveries,
                decide=False,
            )
            matched.append(
                MatchedLink(key[0], key[1], link_a.position, link_b.position, comparison)
            )
        only_a += in_a[len(in_b) :]
    for key, in_b in groups_b.items():
        only_b += in_b[len(groups_a.get(key, [])) :]
    matched.sort(key=lambda m: m.position_a)
    only_a.sort(key=lambda link: link.position)
    only_b.sort(key=lambda link: link.position)
    return LinkComparison(tuple(matched), tuple(only_a), tuple(only_b))
