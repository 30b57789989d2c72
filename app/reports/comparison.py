"""Two variants of a campaign side by side: the figures the comparison page and API show.

Pure domain code (no Flask): ``build_comparison`` reads the counts through ``app.reports.stats``
and hands them to ``app.reports.abtest``, which owns every formula and the decision rule. The
page and the API call this one function, so a number means the same on both.

Scope (docs/ab-testing.md, "The comparison page"): a variant's unique clickers are read across
all its parts (HTML and AMP), because the decision rule counts a recipient who clicked *any*
tracked link; for a variant without an AMP part this is exactly the heatmap's figure for its
HTML part. The per-link table compares the HTML parts' links, the ones the page shows colored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, Unprocessable
from app.ingest.campaigns import get_campaign
from app.models import Placement, Variant
from app.reports import abtest, stats
from app.reports.heatmap import MACHINES

# The part whose links the per-link table compares: every variant has one.
LINK_PART = "html"
# The chart's colors per arm (fill attributes: the page's CSP allows no inline style), each
# at least 4.5:1 against white like the heatmap's tiers.
ARM_COLORS = ("#1565C0", "#C2410C")


class NothingToCompare(Unprocessable):
    """No comparison can be made: the campaign has a single variant, or a variant has more
    clickers than recorded deliveries (its deliveries were not all recorded, so it has no
    rate to compare). The page says so in words; the API answers 422 with the code."""


@dataclass(frozen=True)
class CompareParams:
    """The page's and API's switches: two variant names (None: the default) and whether
    machine clicks count, as on the heatmap."""

    a: str | None = None
    b: str | None = None
    machines: str = "exclude"  # exclude | include

    def __post_init__(self) -> None:
        if self.machines not in MACHINES:
            raise InvalidInput(
                "invalid_view",
                f"machines must be one of {', '.join(MACHINES)}; got {self.machines!r}",
            )
        if self.a is not None and self.a == self.b:
            raise InvalidInput(
                "invalid_view", f"choose two different variants, not {self.a!r} twice"
            )

    @classmethod
    def from_query(cls, args: Mapping[str, str]) -> CompareParams:
        """Query-string arguments; empty values mean the default, unknown keys are ignored."""

        def get(key: str) -> str | None:
            value = args.get(key)
            value = value.strip() if isinstance(value, str) else None
            return value or None

        return cls(a=get("a"), b=get("b"), machines=get("machines") or "exclude")


@dataclass(frozen=True)
class ChartBar:
    """One arm on the rate chart, in percent of the chart's scale (0 to 100)."""

    name: str
    color: str
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class RateChart:
    """The two rates with their intervals on one axis from 0 to ``scale`` percent."""

    scale: float
    bars: tuple[ChartBar, ...]


@dataclass(frozen=True)
class ComparisonView:
    """Everything the comparison page and API show for one campaign and two variants.

    ``comparison`` holds both arms (delivered, unique clickers, rate and Wilson interval), the
    difference b - a with Newcombe's interval, the pooled z-test's p-value, the winner (only
    when ``abtest.DECISION_RULE`` holds) and the warnings. ``links`` compares the HTML part's
    links present in both variants (matched by destination and text).
    """

    campaign_id: int
    campaign_name: str
    created_at: datetime
    variants: list[str]
    params: CompareParams
    a: str
    b: str
    comparison: abtest.Comparison
    links: abtest.LinkComparison
    left_out: tuple[int, int]  # machine clicks in each arm's scope, shown or not
    verdict: str
    chart: RateChart
    decision_rule: str = abtest.DECISION_RULE


def _choose(names: list[str], params: CompareParams) -> tuple[str, str]:
    for name in (params.a, params.b):
        if name is not None and name not in names:
            raise NotFound("variant_not_found", f"no variant {name!r} ({', '.join(names)})")
    a = params.a or next(n for n in names if n != params.b)
    b = params.b or next(n for n in names if n != a)
    return a, b


def _link_clicks(session: Session, where: stats.ClickFilter) -> list[abtest.LinkClicks]:
    """The tracked links of one variant's part, with their unique clickers (as the heatmap
    counts them for that part)."""
    counts = stats.link_counts(session, where)
    placements = session.scalars(
        select(Placement)
        .where(
            Placement.variant_id == where.variant_id,
            Placement.part == where.part,
            Placement.tracked.is_(True),
            stats.REPORTED,
        )
        .order_by(Placement.position)
    )
    return [
        abtest.LinkClicks(
            position=p.position,
            destination=p.destination or p.href,
            text=p.text,
            unique_clickers=counts.get(p.id, (0, 0))[1],
        )
        for p in placements
    ]


def verdict(comparison: abtest.Comparison) -> str:
    """The one sentence the page and the API give as the outcome, by the decision rule."""
    a, b = comparison.a, comparison.b
    p = comparison.p_value
    if comparison.difference is None or p is None:
        return "No verdict: a variant has no deliveries yet, so there is nothing to compare."
    level = f"{1 - comparison.confidence:g}"
    if comparison.winner is not None:
        loser = a.name if comparison.winner == b.name else b.name
        return (
            f"Variant {comparison.winner} wins: its click rate is higher than variant "
            f"{loser}'s by {abs(comparison.difference):.2f} percentage points "
            f"({_p_is(p)}, below {level})."
        )
    if comparison.significant:
        return (
            f"No winner yet: the difference is significant ({_p_is(p)}, below {level}), "
            "but a variant has fewer deliveries than the rule's minimum."
        )
    return (
        f"No winner: the difference is not significant ({_p_is(p)}, not below "
        f"{level}). This does not show that the variants perform alike."
    )


def format_p(p: float) -> str:
    """A p-value as people read it: three decimals, and "< 0.001" below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float) -> str:
    shown = format_p(p)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def rate_chart(comparison: abtest.Comparison) -> RateChart:
    """The chart's geometry: both intervals fit, on a scale rounded up to a whole step."""
    arms = (comparison.a, comparison.b)
    top = max((arm.interval.high for arm in arms if arm.interval is not None), default=0.0)
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50) if top <= s * 5), 100)
    scale = float(min(100, max(step, -(-top // step) * step)))
    bars = tuple(
        ChartBar(
            arm.name,
            color,
            arm.rate / scale * 100,
            arm.interval.low / scale * 100,
            arm.interval.high / scale * 100,
        )
        for arm, color in zip(arms, ARM_COLORS, strict=True)
        if arm.rate is not None and arm.interval is not None
    )
    return RateChart(scale, bars)


def build_comparison(session: Session, campaign_id: int, params: CompareParams) -> ComparisonView:
    """The comparison of two variants of a campaign, in human clicks unless the params
    include machine clicks.

    Raises NotFound for an unknown or deleted campaign or an unknown variant, and
    NothingToCompare for a campaign with a single variant.
    """
    campaign = get_campaign(session, campaign_id)
    rows = session.execute(
        select(Variant.id, Variant.name)
        .where(Variant.campaign_id == campaign_id)
        .order_by(Variant.id)
    ).all()
    names = [row.name for row in rows]
    if len(names) < 2:
        raise NothingToCompare(
            "nothing_to_compare",
            f"campaign {campaign_id} has a single variant: there is nothing to compare it with",
        )
    a, b = _choose(names, params)
    ids = {row.name: row.id for row in rows}
    human_only = params.machines == "exclude"
    arms: list[abtest.Arm] = []
    link_lists: list[list[abtest.LinkClicks]] = []
    left_out: list[int] = []
    for name in (a, b):
        where = stats.ClickFilter(campaign_id, ids[name], None, human_only=human_only)
        delivered, _total, unique = stats.campaign_summary(session, where)
        if unique > delivered:
            # A rate above 100% is no rate: some deliveries were never recorded.
            raise NothingToCompare(
                "deliveries_incomplete",
                f"variant {name} has {unique:,} unique clickers but only {delivered:,} "
                "recorded deliveries: record its deliveries before comparing",
            )
        arms.append(abtest.Arm(name, delivered, unique))
        left_out.append(stats.machine_clicks(session, where).clicks)
        part = stats.ClickFilter(campaign_id, ids[name], LINK_PART, human_only=human_only)
        link_lists.append(_link_clicks(session, part))
    comparison = abtest.compare(arms[0], arms[1])
    links = abtest.compare_links(
        link_lists[0],
        link_lists[1],
        delivered_a=arms[0].delivered,
        delivered_b=arms[1].delivered,
        name_a=a,
        name_b=b,
    )
    return ComparisonView(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        created_at=campaign.created_at,
        variants=names,
        params=params,
        a=a,
        b=b,
        comparison=comparison,
        links=links,
        left_out=(left_out[0], left_out[1]),
        verdict=verdict(comparison),
        chart=rate_chart(comparison),
    )
