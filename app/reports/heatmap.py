"""The campaign heatmap: the email as sent, each tracked link colored by how much it is clicked.

Pure domain code (no Flask): ``build_view`` turns a campaign and the viewer's choices
(``ViewParams``) into plain figures; ``email_overlay`` draws them on the email. The page, the
JSON API and the PDF all go through ``tier_for``, so a link is the same color everywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.ingest.links import skip_message
from app.models import ConversionStats, Placement, Variant
from app.reports import charts as chart_svgs
from app.reports import stats
from app.reports.funnel import Funnel, build_funnel
from app.vocabulary import CLIENTS, DEVICES, PARTS

TIERS = ("red", "orange", "yellow", "green", "blue", "gray")
# Lower bounds of each colored tier as a share of the top link's value, highest first.
TIER_THRESHOLDS = (("red", 0.8), ("orange", 0.6), ("yellow", 0.4), ("green", 0.2))
# All at least 4.5:1 against white, so the white numbers on the badges stay readable.
TIER_COLORS: dict[str, str] = {
    "red": "#B71C1C",
    "orange": "#C2410C",
    "yellow": "#8A6A00",
    "green": "#2E7D32",
    "blue": "#1565C0",
    "gray": "#616161",
}
LEGEND_LABELS: dict[str, str] = {
    "red": "≥ 80% of the top link",
    "orange": "60–80% of the top link",
    "yellow": "40–60% of the top link",
    "green": "20–40% of the top link",
    "blue": "under 20% of the top link",
    "gray": "no clicks",
}
# Percentages computed through floats (4/7*100 against 5/7*100) must not fall a hair short.
_TOLERANCE = 1e-9

METRICS = ("total", "unique", "rate", "share", "conversions", "revenue")
PERIODS = ("all", "24h", "7d", "30d", "90d", "custom")
SORTS = ("metric", "position")
# Machine clicks (``app.clicks.machines``) are left out of every figure by default.
MACHINES = ("exclude", "include")
# "only": the link list and ranking keep the links marked as calls to action.
CTAS = ("all", "only")
# "destination": links to the same destination are one row (docs/heatmap.md).
GROUPS = ("link", "destination")
# A CTA clicked by fewer than this share of the delivered recipients is flagged: the
# Ptengine guideline for a call to action (the setting CTA_MIN_CLICK_RATE overrides it).
CTA_MIN_CLICK_RATE = 10.0
_PERIOD_HOURS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24}


def tier_for(value: float, max_value: float) -> str:
    """The tier of a link: its value as a share of the top link's value.

    0 (or a top value of 0) is gray; otherwise ratio = value / max_value and
    ratio >= 0.8 is red, >= 0.6 orange, >= 0.4 yellow, >= 0.2 green, anything lower blue.
    Relative to the top link rather than to fixed counts, so a small campaign still shows
    where attention went. Boundaries allow a 1e-9 rounding slack.
    """
    if not value > 0 or not max_value > 0:  # also catches NaN
        return "gray"
    ratio = value / max_value
    for tier, threshold in TIER_THRESHOLDS:
        if ratio >= threshold - _TOLERANCE:
            return tier
    return "blue"


def legend() -> list[tuple[str, str]]:
    return [(tier, LEGEND_LABELS[tier]) for tier in TIERS]


def format_value(metric: str, value: float) -> str:
    """How a link's figure is written on its badge and in the pane."""
    if metric in ("rate", "share"):
        return f"{value:.1f}%"
    if metric == "revenue":
        return f"{value:,.2f}"
    return f"{int(value):,}"


# --- what the viewer asked for ------------------------------------------------------------


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InvalidInput(
            "invalid_view", f"{name} must be one of {', '.join(allowed)}; got {value!r}"
        )


def _parse_date(name: str, raw: str | None) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        parsed = None
    if parsed is None or len(raw) != 10 or not 2000 <= parsed.year <= 2999:
        raise InvalidInput("invalid_view", f"{name} must be a date like 2025-03-31; got {raw!r}")
    return parsed


@dataclass(frozen=True)
class ViewParams:
    """The heatmap's switches, validated on construction so a bad URL fails early and clearly."""

    metric: str = "total"  # total | unique | rate | share | conversions | revenue
    variant: str | None = None  # None: the campaign's first variant
    part: str = "html"  # html | amp
    period: str = "all"  # all | 24h | 7d | 30d | custom
    start: date | None = None  # custom period, inclusive UTC dates
    end: date | None = None
    device: str | None = None  # desktop | mobile | tablet | other
    sort: str = "metric"  # metric | position
    machines: str = "exclude"  # exclude | include: clicks labelled machine
    client: str | None = None  # one of app.vocabulary.CLIENTS, or stats.UNKNOWN
    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "FR", or stats.UNKNOWN
    ctas: str = "all"  # all | only: the link list keeps the calls to action
    group: str = "link"  # link | destination: one row per destination

    def __post_init__(self) -> None:
        _choice("metric", self.metric, METRICS)
        _choice("machines", self.machines, MACHINES)
        _choice("ctas", self.ctas, CTAS)
        _choice("group", self.group, GROUPS)
        _choice("part", self.part, PARTS)
        _choice("period", self.period, PERIODS)
        _choice("sort", self.sort, SORTS)
        if self.device is not None:
            _choice("device", self.device, DEVICES)
        if self.client is not None:
            _choice("client", self.client, (*CLIENTS, stats.UNKNOWN))
        if self.country is not None and not (
            self.country == stats.UNKNOWN or re.fullmatch(r"[A-Z]{2}", self.country)
        ):
            raise InvalidInput(
                "invalid_view",
                f"country must be a two-letter code like FR, or {stats.UNKNOWN}; "
                f"got {self.country!r}",
            )
        if self.variant is not None and not self.variant.strip():
            raise InvalidInput("invalid_view", "variant must not be empty")
        if self.period == "custom":
            if self.start is None and self.end is None:
                raise InvalidInput("invalid_view", "a custom period needs a start or an end date")
            if self.start is not None and self.end is not None and self.start > self.end:
                raise InvalidInput("invalid_view", f"start {self.start} is after end {self.end}")
        elif self.start is not None or self.end is not None:
            raise InvalidInput("invalid_view", "start and end only apply to period=custom")

    @classmethod
    def from_query(cls, args: Mapping[str, str]) -> ViewParams:
        """Read query-string arguments; empty values mean the default, unknown keys are
        ignored (pages add their own), and dates are dropped unless the period is custom."""

        def get(key: str) -> str | None:
            value = args.get(key)
            value = value.strip() if isinstance(value, str) else None
            return value or None

        period = get("period") or "all"
        start = _parse_date("start", get("start"))
        end = _parse_date("end", get("end"))
        if period != "custom":
            start = end = None
        return cls(
            metric=get("metric") or "total",
            variant=get("variant"),
            part=get("part") or "html",
            period=period,
            start=start,
            end=end,
            device=get("device"),
            sort=get("sort") or "metric",
            machines=get("machines") or "exclude",
            client=get("client"),
            country=get("country"),
            ctas=get("ctas") or "all",
            group=get("group") or "link",
        )

    def to_query(self, **changes: Any) -> dict[str, str]:
        """Query arguments for this view with ``changes`` applied, defaults left out, so
        shared URLs stay short and survive new defaults."""
        if changes.get("period", self.period) != "custom":
            changes.setdefault("start", None)
            changes.setdefault("end", None)
        changed = dataclasses.replace(self, **changes)
        query: dict[str, str] = {}
        for f in dataclasses.fields(changed):
            value = getattr(changed, f.name)
            if value is None or value == f.default:
                continue
            query[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return query

    def click_filter(self, campaign_id: int, variant_id: int, now: datetime) -> stats.ClickFilter:
        """The clicks this view counts: the chosen variant's part, period, device, client
        and country, human only unless the viewer included machine clicks."""
        since, until = period_bounds(self, now)
        return stats.ClickFilter(
            campaign_id,
            variant_id,
            self.part,
            since,
            until,
            self.device,
            human_only=self.machines == "exclude",
            client=self.client,
            country=self.country,
        )


def period_bounds(params: ViewParams, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``(since, until)`` of the chosen period; until is exclusive, None means open.

    Rolling periods are whole UTC hours ("24h" is the current hour and the 23 before it),
    because totals come from hourly buckets and must agree with the uniques.
    """
    if params.period in _PERIOD_HOURS:
        hours = _PERIOD_HOURS[params.period]
        return stats.floor_hour(now) - timedelta(hours=hours - 1), None
    if params.period == "custom":
        since = datetime.combine(params.start, time(), UTC) if params.start else None
        until = (
            datetime.combine(params.end + timedelta(days=1), time(), UTC) if params.end else None
        )
        return since, until
    return None, None


# --- the figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkStat:
    placement_id: int
    position: int
    kind: str
    text: str
    destination: str | None
    href: str
    total: int
    unique: int
    rate: float | None  # unique / delivered x 100; None when nothing was delivered
    share: float  # this link's total / all links' total x 100
    value: float  # the chosen metric's figure (0 for an unknown rate)
    tier: str
    label: str = ""  # ``value`` as shown on the badge, e.g. "1,234" or "12.5%"
    first: int = 0  # recipients whose first link in the email this was (stats.first_and_last)
    last: int = 0  # ... and whose last
    name: str | None = None  # the marketer's name for the link, shown instead of ``text``
    cta: bool = False  # marked as a call to action
    below_cta_guideline: bool = False  # a CTA whose click rate is under CTA_MIN_CLICK_RATE
    # The placements this row stands for: one, or every link to the destination when grouped.
    placement_ids: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    # Conversions reported against this link's clicks, and their value in the view's
    # currency, in millionths (``app.clicks.conversions``; all time, docs/funnel.md).
    conversions: int = 0
    revenue_micros: int = 0

    @property
    def revenue(self) -> float:
        return self.revenue_micros / 1_000_000

    @property
    def shown_text(self) -> str:
        """What a report calls the link: the marketer's name where set, else its text."""
        return self.name or self.text


@dataclass(frozen=True)
class SkippedLink:
    position: int
    kind: str
    href: str
    text: str
    reason: str  # a key of app.ingest.links.SKIP_REASONS
    message: str  # the sentence shown to the sender


@dataclass(frozen=True)
class HeatmapView:
    campaign_id: int
    campaign_name: str
    created_at: datetime
    params: ViewParams
    variants: list[str]
    parts: list[str]  # parts of the chosen variant
    delivered: int
    total: int
    unique: int
    rate: float | None
    links: list[LinkStat]
    skipped: list[SkippedLink]
    legend: list[tuple[str, str]]
    time_chart_svg: str
    device_chart_svg: str
    variant: str  # the chosen variant's name (params.variant may be None)
    variant_id: int
    where: stats.ClickFilter  # the clicks every figure of this view counts
    # The machine clicks in this view's scope, period and device, shown or not.
    left_out: stats.LeftOut = dataclasses.field(default_factory=lambda: stats.LeftOut(0))
    # What the colored email shows: every link at its own position with its row's figures
    # and tier (its group's, when grouped), whatever the link list keeps ("CTAs only").
    overlay: list[LinkStat] = dataclasses.field(default_factory=list)
    cta_min_rate: float = CTA_MIN_CLICK_RATE
    # Recipients by delivery status (bounces and complaints come from the ESPs' webhooks).
    outcomes: stats.DeliveryOutcomes = dataclasses.field(default_factory=stats.DeliveryOutcomes)
    # Sent, delivered, viewed, clicked, converted per variant (built with the charts).
    funnel: Funnel | None = None
    # The currency of the links' revenue: the one this variant's orders carry most value in.
    currency: str | None = None


def below_cta_guideline(cta: bool, rate: float | None, min_rate: float) -> bool:
    """Whether a link is a CTA clicked by too few: its click rate (unique clickers /
    delivered x 100, the heatmap's one definition) under ``min_rate``. An unknown rate
    (nothing delivered) is not flagged: there is nothing to judge yet."""
    return cta and rate is not None and rate < min_rate - _TOLERANCE


def _basis(
    metric: str, total: int, unique: int, delivered: int, conversions: int = 0, revenue: int = 0
) -> int:
    # Tiers and sorting use the exact counts behind each metric: a rate is unique/delivered
    # and a share is total/sum, so ranking by the integers gives the same order without
    # float noise. An unknown rate (nothing delivered) ranks everything as 0.
    if metric in ("total", "share"):
        return total
    if metric == "conversions":
        return conversions
    if metric == "revenue":
        return revenue
    if metric == "rate" and not delivered:
        return 0
    return unique


def build_view(
    session: Session,
    campaign_id: int,
    params: ViewParams,
    now: datetime | None = None,
    *,
    charts: bool = True,
    cta_min_rate: float = CTA_MIN_CLICK_RATE,
) -> HeatmapView:
    """Everything the heatmap page, API and PDF show, for one campaign and set of switches
    (``charts=False`` leaves the two charts empty, for callers that only want figures;
    ``cta_min_rate`` is the click rate in percent under which a CTA is flagged).

    ``params.group`` merges links to the same destination into one row before tiers and
    ranking; ``params.ctas`` then narrows the link list to the CTAs, after the tiers, so a
    link has the same color whichever rows are listed. The summary is always the whole part.

    Raises NotFound for an unknown or deleted campaign, an unknown variant, or an AMP part
    the variant does not have.
    """
    now = now or datetime.now(UTC)
    campaign = get_campaign(session, campaign_id)
    variant_rows = session.execute(
        select(Variant.id, Variant.name, Variant.amp.is_not(None))
        .where(Variant.campaign_id == campaign_id)
        .order_by(Variant.id)
    ).all()
    chosen = next((row for row in variant_rows if params.variant in (None, row.name)), None)
    if chosen is None:
        names = ", ".join(row.name for row in variant_rows)
        raise NotFound(
            "variant_not_found",
            f"campaign {campaign_id} has no variant {params.variant!r} ({names})",
        )
    variant_id, variant_name, has_amp = chosen
    parts: list[str] = list(PARTS) if has_amp else ["html"]
    if params.part not in parts:
        raise NotFound("part_not_found", f"variant {variant_name!r} has no {params.part} part")
    where = params.click_filter(campaign_id, variant_id, now)
    placements = session.scalars(
        select(Placement)
        .where(Placement.variant_id == variant_id, Placement.part == params.part, stats.REPORTED)
        .order_by(Placement.position)
    ).all()
    counts, (delivered, total, unique) = stats.view_figures(session, where)
    ends = stats.first_and_last(session, where)
    tracked = [p for p in placements if p.tracked]
    rows = _rows(session, where, tracked, counts, params.group)
    all_links = sum(total for _, total, _ in rows)
    metric = params.metric
    currency, converted = link_conversions(session, campaign_id, variant_id)

    def sales(members: list[Placement]) -> tuple[int, int]:
        found = [converted.get(m.id, (0, 0)) for m in members]
        return sum(f[0] for f in found), sum(f[1] for f in found)

    top = max(
        (_basis(metric, total, unique, delivered, *sales(m)) for m, total, unique in rows),
        default=0,
    )
    links: list[LinkStat] = []
    for members, link_total, link_unique in rows:
        p = members[0]
        rate = stats.click_rate(link_unique, delivered)
        share = link_total / all_links * 100 if all_links else 0.0
        conversions, revenue = sales(members)
        value = {
            "total": link_total,
            "unique": link_unique,
            "rate": rate or 0.0,
            "conversions": conversions,
            "revenue": revenue / 1_000_000,
        }.get(metric, share)
        basis = _basis(metric, link_total, link_unique, delivered, conversions, revenue)
        cta = any(m.cta for m in members)
        links.append(
            LinkStat(
                placement_id=p.id, position=p.position, kind=p.kind, text=p.text,
                destination=p.destination, href=p.href, total=link_total, unique=link_unique,
                rate=rate, share=share, value=float(value), tier=tier_for(basis, top),
                label="n/a" if metric == "rate" and rate is None else format_value(metric, value),
                name=next((m.label for m in members if m.label), None), cta=cta,
                below_cta_guideline=below_cta_guideline(cta, rate, cta_min_rate),
                placement_ids=tuple(m.id for m in members),
                positions=tuple(m.position for m in members),
                first=sum(ends.get(m.id, (0, 0))[0] for m in members),
                last=sum(ends.get(m.id, (0, 0))[1] for m in members),
                conversions=conversions, revenue_micros=revenue,
            )
        )  # fmt: skip
    overlay = [
        dataclasses.replace(link, position=position)
        for link in links
        for position in link.positions
    ]
    if params.ctas == "only":
        links = [link for link in links if link.cta]
    if params.sort == "metric":
        links.sort(
            key=lambda s: (
                -_basis(metric, s.total, s.unique, delivered, s.conversions, s.revenue_micros),
                s.position,
            )
        )
    skipped = [
        SkippedLink(
            position=p.position, kind=p.kind, href=p.href, text=p.text,
            reason=p.skip_reason or "", message=skip_message(p.skip_reason, p.href),
        )
        for p in placements
        if not p.tracked
    ]  # fmt: skip
    time_svg = device_svg = ""
    funnel = None
    if charts:
        points, split = stats.activity(session, where, now=now)
        time_svg, device_svg = chart_svgs.time_chart(points), chart_svgs.device_chart(split)
        funnel = build_funnel(session, campaign_id, human_only=where.human_only)
    return HeatmapView(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        created_at=campaign.created_at,
        params=params,
        variants=[row.name for row in variant_rows],
        parts=parts,
        delivered=delivered,
        total=total,
        unique=unique,
        rate=stats.click_rate(unique, delivered),
        outcomes=stats.delivery_outcomes(session, where.campaign_id, where.variant_id),
        links=links,
        skipped=skipped,
        legend=legend(),
        time_chart_svg=time_svg,
        device_chart_svg=device_svg,
        variant=variant_name,
        variant_id=variant_id,
        where=where,
        left_out=stats.machine_clicks(session, where),
        overlay=overlay,
        cta_min_rate=cta_min_rate,
        funnel=funnel,
        currency=currency,
    )


def link_conversions(
    session: Session, campaign_id: int, variant_id: int
) -> tuple[str | None, dict[int, tuple[int, int]]]:
    """``(currency, {placement: (conversions, revenue in millionths of currency)})`` of one
    variant's links, from ``conversion_stats``. Orders in several currencies are never
    added together: the links' revenue is in the currency with the most value (its
    conversions count in every currency)."""
    rows = session.execute(
        select(ConversionStats.placement_id, ConversionStats.currency,
               ConversionStats.conversions, ConversionStats.value_micros)
        .join(Placement, Placement.id == ConversionStats.placement_id)
        .where(ConversionStats.campaign_id == campaign_id, Placement.variant_id == variant_id)
    ).all()  # fmt: skip
    by_currency: dict[str, int] = {}
    for row in rows:
        if row.currency:
            by_currency[row.currency] = by_currency.get(row.currency, 0) + row.value_micros
    currency = max(sorted(by_currency), key=lambda c: by_currency[c], default=None)
    found: dict[int, tuple[int, int]] = {}
    for row in rows:
        count, value = found.get(row.placement_id, (0, 0))
        found[row.placement_id] = (
            count + row.conversions,
            value + (row.value_micros if row.currency == currency else 0),
        )
    return currency, found


def _rows(
    session: Session,
    where: stats.ClickFilter,
    tracked: Sequence[Placement],
    counts: Mapping[int, tuple[int, int]],
    group: str,
) -> list[tuple[list[Placement], int, int]]:
    """The link list's rows as ``(placements, total, unique)``, in email order: one per
    link, or with ``group="destination"`` one per destination (at its first link's place).

    A group's total is the sum of its links' totals, but its unique clickers are distinct
    recipients across its links, which the per-link figures cannot give (someone who
    clicked two of them counts once): ``stats.distinct_clickers`` counts them, one query
    per group of more than one link.
    """
    if group != "destination":
        return [([p], *counts.get(p.id, (0, 0))) for p in tracked]
    groups: dict[str, list[Placement]] = {}
    for p in tracked:
        groups.setdefault(p.destination or p.href, []).append(p)
    rows: list[tuple[list[Placement], int, int]] = []
    for members in groups.values():
        total = sum(counts.get(m.id, (0, 0))[0] for m in members)
        if len(members) == 1:
            unique = counts.get(members[0].id, (0, 0))[1]
        else:
            unique = stats.distinct_clickers(session, where, [m.id for m in members])
        rows.append((members, total, unique))
    return rows
