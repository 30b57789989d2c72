"""The funnel: sent, delivered, viewed, clicked, converted, per variant and for the campaign.

One definition per number (docs/funnel.md), read here and nowhere else by the campaign page,
the API and the PDF. Every step counts recipients of one variant:

``sent``       personalized (``sent_email``)
``delivered``  recorded as delivered (``delivery``; ``stats.delivered_count``)
``viewed``     with a human or proxy open (``open_stats.viewers``); with machines included,
               with any open (``open_stats.openers``). None when the campaign does not track
               opens and has none.
``clicked``    with a click on any of the sender's links, in any part (human clicks by
               default: ``stats.campaign_summary``, the comparison page's figure)
``converted``  with a conversion (``conversion``), whatever the click's label: an order is
               no machine's doing

Each step's rate is of the step before (delivered of sent, viewed of delivered, clicked of
viewed: the click-to-open rate, converted of clicked); the click rate is clicked of
delivered, the heatmap's. The campaign's row adds up its variants (someone sent two
variants counts in each). A step may exceed the one before it: images blocked means clicks
without opens, deliveries recorded for recipients personalized elsewhere; rates over 100%
are shown as they are, never capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from app.clicks.conversions import from_micros, to_micros
from app.ingest.campaigns import get_campaign
from app.models import (
    Conversion,
    ConversionStats,
    OpenRecipient,
    OpenStats,
    Placement,
    PlacementRecipient,
    SentEmail,
    Variant,
)
from app.reports import stats

STEPS = ("sent", "delivered", "viewed", "clicked", "converted")


def rate(part: int | None, whole: int | None) -> float | None:
    """``part`` of ``whole`` in percent; None when either is unknown or ``whole`` is 0."""
    if part is None or not whole:
        return None
    return part / whole * 100


@dataclass(frozen=True)
class FunnelRow:
    """One variant's funnel (or the campaign's: ``variant`` None)."""

    variant: str | None
    sent: int
    delivered: int
    viewed: int | None
    clicked: int
    converted: int
    opened_not_clicked: int | None  # viewers without a click
    revenue: dict[str, str] = field(default_factory=dict)  # currency -> decimal string
    opens: dict[str, int] = field(default_factory=dict)  # loads by label, and "total"

    def count(self, step: str) -> int | None:
        value: int | None = getattr(self, step)
        return value

    @property
    def steps(self) -> list[tuple[str, int | None, float | None]]:
        """``(step, count, rate of the step before)`` in funnel order."""
        out: list[tuple[str, int | None, float | None]] = []
        before: int | None = None
        for i, step in enumerate(STEPS):
            count = self.count(step)
            if step == "clicked" and self.viewed is None:
                before = self.delivered  # no opens: clicks are read against deliveries
            out.append((step, count, None if i == 0 else rate(count, before)))
            before = count
        return out

    @property
    def click_rate(self) -> float | None:
        return rate(self.clicked, self.delivered)

    @property
    def click_to_open_rate(self) -> float | None:
        return rate(self.clicked, self.viewed)

    @property
    def open_rate(self) -> float | None:
        return rate(self.viewed, self.delivered)


@dataclass(frozen=True)
class Funnel:
    campaign_id: int
    human_only: bool
    track_opens: bool
    variants: list[FunnelRow]
    total: FunnelRow


def _viewed(
    session: Session, campaign_id: int, variant_id: int, human_only: bool
) -> tuple[int, dict[str, int]]:
    row = session.get(OpenStats, (campaign_id, variant_id))
    if row is None:
        return 0, {"total": 0, "human": 0, "proxy": 0, "machine": 0}
    opens = {"total": row.total, "human": row.human, "proxy": row.proxy, "machine": row.machine}
    return (row.viewers if human_only else row.openers), opens


def _opened_not_clicked(
    session: Session, campaign_id: int, variant_id: int, human_only: bool
) -> int:
    """Viewers (any opener, with machines included) with no click on the variant's links."""
    clicked = (
        select(PlacementRecipient.recipient_id)
        .join(Placement, Placement.id == PlacementRecipient.placement_id)
        .where(
            Placement.variant_id == variant_id,
            stats.REPORTED,
            PlacementRecipient.recipient_id == OpenRecipient.recipient_id,
            *([PlacementRecipient.human_clicks > 0] if human_only else []),
        )
    )
    return int(
        session.scalar(
            select(func.count())
            .select_from(OpenRecipient)
            .where(
                and_(
                    OpenRecipient.variant_id == variant_id,
                    OpenRecipient.viewer.is_(human_only),
                ),
                ~exists(clicked),
            )
        )
        or 0
    )


def _variant_row(
    session: Session, campaign_id: int, variant_id: int, name: str, human_only: bool, opens: bool
) -> FunnelRow:
    sent = session.scalar(
        select(func.count()).select_from(SentEmail).where(SentEmail.variant_id == variant_id)
    )
    delivered, _total, clicked = stats.campaign_summary(
        session, stats.ClickFilter(campaign_id, variant_id, None, human_only=human_only)
    )
    viewed: int | None
    viewed, loads = _viewed(session, campaign_id, variant_id, human_only)
    if not opens and not loads["total"]:
        viewed = None
    converted = session.scalar(
        select(func.count(Conversion.recipient_id.distinct())).where(
            Conversion.campaign_id == campaign_id, Conversion.variant_id == variant_id
        )
    )
    revenue = {
        str(currency): str(from_micros(int(micros or 0)))
        for currency, micros in session.execute(
            select(Conversion.currency, func.sum(Conversion.value_micros))
            .where(
                Conversion.campaign_id == campaign_id,
                Conversion.variant_id == variant_id,
                Conversion.currency.is_not(None),
            )
            .group_by(Conversion.currency)
            .order_by(Conversion.currency)
        )
    }
    return FunnelRow(
        variant=name,
        sent=int(sent or 0),
        delivered=delivered,
        viewed=viewed,
        clicked=clicked,
        converted=int(converted or 0),
        opened_not_clicked=None
        if viewed is None
        else _opened_not_clicked(session, campaign_id, variant_id, human_only),
        revenue=revenue,
        opens=loads,
    )


def _sum(rows: list[FunnelRow]) -> FunnelRow:
    def total(step: str) -> int | None:
        values = [getattr(r, step) for r in rows]
        return None if any(v is None for v in values) else sum(values)

    revenue: dict[str, int] = {}
    for row in rows:
        for currency, value in row.revenue.items():
            revenue[currency] = revenue.get(currency, 0) + (to_micros(Decimal(value)) or 0)
    opens: dict[str, int] = {}
    for row in rows:
        for label, count in row.opens.items():
            opens[label] = opens.get(label, 0) + count
    return FunnelRow(
        variant=None,
        sent=sum(r.sent for r in rows),
        delivered=sum(r.delivered for r in rows),
        viewed=total("viewed"),
        clicked=sum(r.clicked for r in rows),
        converted=sum(r.converted for r in rows),
        opened_not_clicked=total("opened_not_clicked"),
        revenue={c: str(from_micros(v)) for c, v in sorted(revenue.items())},
        opens=opens,
    )


def build_funnel(session: Session, campaign_id: int, *, human_only: bool = True) -> Funnel:
    """The campaign's funnel, per variant and in total. Raises NotFound for an unknown or
    deleted campaign."""
    campaign = get_campaign(session, campaign_id)
    variants = session.execute(
        select(Variant.id, Variant.name)
        .where(Variant.campaign_id == campaign_id)
        .order_by(Variant.id)
    ).all()
    rows = [
        _variant_row(session, campaign_id, vid, name, human_only, campaign.track_opens)
        for vid, name in variants
    ]
    return Funnel(campaign_id, human_only, campaign.track_opens, rows, _sum(rows))


def placement_conversions(session: Session, placement_id: int) -> list[tuple[str, int, str]]:
    """One link's conversions per currency ('' for orders without a value): ``(currency,
    conversions, value as a decimal string)``, for the link's drill-down."""
    rows = session.execute(
        select(ConversionStats.currency, ConversionStats.conversions, ConversionStats.value_micros)
        .where(ConversionStats.placement_id == placement_id)
        .order_by(ConversionStats.currency)
    ).all()
    return [
        (row.currency, int(row.conversions), str(from_micros(int(row.value_micros))))
        for row in rows
    ]
