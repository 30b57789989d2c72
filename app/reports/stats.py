"""Reading click figures: the reporting side of the write/read split.

Every function takes a session and plain values and returns plain values, so the dashboard,
the JSON API, the PDF and the benchmark share one path. The default view (all time, every
device) reads only aggregates the click writer keeps in step with ``click``, a few rows per
link or per hour, however many clicks there are: ``placement_stats`` for per-link figures,
``part_stats`` (one variant's part) or ``campaign_stats`` (the whole campaign) for the
summary, ``part_hourly`` for the time series and the device split, and ``delivery``.

A period or device filter changes what "unique" means: distinct recipients with at least one
matching click. The clicker tables only say whether someone ever clicked, which cannot answer
that exactly, so filtered uniques count raw clicks, narrowed by the ``(campaign_id,
clicked_at)`` index. Filtered totals still come from the hourly tables (``click_hourly`` per
link, ``part_hourly`` for the summary and the charts); both agree exactly because period
bounds fall on whole UTC hours (``_bound`` refuses others). Drill-down (who clicked a link)
reads raw clicks by design. See docs/heatmap.md for what each figure costs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.models import (
    Campaign,
    CampaignStats,
    Click,
    ClickHourly,
    Delivery,
    PartClicker,
    PartHourly,
    PartStats,
    Placement,
    PlacementStats,
    Recipient,
)
from app.vocabulary import DEVICES

# Up to this span the time series uses hourly buckets; beyond it, daily ones (UTC days).
HOURLY_SPAN = timedelta(hours=72)
MAX_PER_PAGE = 500


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment`` (naive values are taken as UTC)."""
    return _utc(moment).replace(minute=0, second=0, microsecond=0)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _bound(moment: datetime | None, name: str) -> datetime | None:
    """A period bound in UTC; it must fall on a whole hour so hourly totals stay exact."""
    if moment is None:
        return None
    moment = _utc(moment)
    if moment != floor_hour(moment):
        raise ValueError(f"{name} must fall on a whole UTC hour, got {moment.isoformat()}")
    return moment


def _placement_ids(
    campaign_id: int, variant_id: int | None, part: str | None, tracked_only: bool = False
) -> Select[int]:
    query = select(Placement.id).where(Placement.campaign_id == campaign_id)
    if variant_id is not None:
        query = query.where(Placement.variant_id == variant_id)
    if part is not None:
        query = query.where(Placement.part == part)
    if tracked_only:
        query = query.where(Placement.tracked.is_(True))
    return query


def _hourly_filters(
    since: datetime | None,
    until: datetime | None,
    device: str | None,
    table: type[ClickHourly] | type[PartHourly] = ClickHourly,
) -> list[ColumnElement[bool]]:
    since, until = _bound(since, "since"), _bound(until, "until")
    filters: list[ColumnElement[bool]] = []
    if since is not None:
        filters.append(table.hour >= since)
    if until is not None:
        filters.append(table.hour < until)
    if device is not None:
        filters.append(table.device == device)
    return filters


def _part_filters(
    table: type[PartHourly] | type[PartStats] | type[PartClicker],
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
) -> list[ColumnElement[bool]]:
    """Rows of one campaign's parts, narrowed to a variant and/or a part when given."""
    filters: list[ColumnElement[bool]] = [table.campaign_id == campaign_id]
    if variant_id is not None:
        filters.append(table.variant_id == variant_id)
    if part is not None:
        filters.append(table.part == part)
    return filters


def _click_filters(
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
) -> list[ColumnElement[bool]]:
    since, until = _bound(since, "since"), _bound(until, "until")
    filters: list[ColumnElement[bool]] = [Click.campaign_id == campaign_id]
    if variant_id is not None:
        filters.append(Click.variant_id == variant_id)
    if part is not None:
        filters.append(Click.part == part)
    if since is not None:
        filters.append(Click.clicked_at >= since)
    if until is not None:
        filters.append(Click.clicked_at < until)
    if device is not None:
        filters.append(Click.device == device)
    return filters


def _unfiltered(since: datetime | None, until: datetime | None, device: str | None) -> bool:
    return since is None and until is None and device is None


def link_counts(
    session: Session,
    campaign_id: int,
    variant_id: int,
    part: str,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
) -> dict[int, tuple[int, int]]:
    """``placement_id -> (total, unique)`` for every tracked placement of a variant's part.

    Placements nobody clicked are present with ``(0, 0)``, so callers never guess whether a
    missing key means "no clicks" or "not a link". ``until`` is exclusive.
    """
    ids = session.scalars(_placement_ids(campaign_id, variant_id, part, tracked_only=True))
    counts: dict[int, tuple[int, int]] = dict.fromkeys(ids, (0, 0))
    if not counts:
        return counts
    wanted = _placement_ids(campaign_id, variant_id, part, tracked_only=True)
    if _unfiltered(since, until, device):
        rows = session.execute(
            select(PlacementStats.placement_id, PlacementStats.total, PlacementStats.unique).where(
                PlacementStats.placement_id.in_(wanted)
            )
        )
        for placement_id, total, unique in rows:
            counts[placement_id] = (int(total), int(unique))
        return counts
    totals = session.execute(
        select(ClickHourly.placement_id, func.sum(ClickHourly.total))
        .where(ClickHourly.placement_id.in_(wanted), *_hourly_filters(since, until, device))
        .group_by(ClickHourly.placement_id)
    )
    # Grouping by an expression rather than the bare column keeps SQLite from walking the
    # whole (placement_id, clicked_at) index in order to skip a sort: with few campaigns its
    # planner prefers that to the campaign's own range, and reads every click of every one.
    placement = (Click.placement_id + 0).label("placement")
    uniques: dict[int, int] = {
        int(placement_id): int(count)
        for placement_id, count in session.execute(
            select(placement, func.count(Click.recipient_id.distinct()))
            .where(*_click_filters(campaign_id, variant_id, part, since, until, device))
            .group_by(placement)
        )
    }
    for placement_id, total in totals:
        if placement_id in counts:
            counts[placement_id] = (int(total or 0), int(uniques.get(placement_id, 0)))
    return counts


def delivered_count(session: Session, campaign_id: int, variant_id: int | None) -> int:
    """Recipients the campaign (or one variant of it) was delivered to."""
    query = select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
    if variant_id is not None:
        query = query.where(Delivery.variant_id == variant_id)
    return int(session.scalar(query) or 0)


def campaign_summary(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
) -> tuple[int, int, int]:
    """``(delivered, total, unique)``; unique counts recipients who clicked any link.

    Deliveries are never period-filtered: a rate over the last 24 hours is still "of
    everyone who received it". ``variant_id``/``part`` of None mean all of them.

    Unfiltered, the whole campaign reads its ``campaign_stats`` row and one variant's part
    its ``part_stats`` row. The mixed scopes no view shows (one variant across its parts,
    one part across variants) add up ``part_stats`` totals and count distinct recipients
    in ``part_clicker``: exact, at a cost that grows with clickers rather than clicks.
    """
    delivered = delivered_count(session, campaign_id, variant_id)
    if not _unfiltered(since, until, device):
        total_query = select(func.sum(PartHourly.total)).where(
            *_part_filters(PartHourly, campaign_id, variant_id, part),
            *_hourly_filters(since, until, device, PartHourly),
        )
        total = int(session.scalar(total_query) or 0)
        unique_query = select(func.count(Click.recipient_id.distinct())).where(
            *_click_filters(campaign_id, variant_id, part, since, until, device)
        )
        unique = int(session.scalar(unique_query) or 0) if total else 0
        return delivered, total, unique
    if variant_id is None and part is None:
        row = session.execute(
            select(CampaignStats.total, CampaignStats.unique).where(
                CampaignStats.campaign_id == campaign_id
            )
        ).first()
    elif variant_id is not None and part is not None:
        row = session.execute(
            select(PartStats.total, PartStats.unique).where(
                *_part_filters(PartStats, campaign_id, variant_id, part)
            )
        ).first()
    else:
        clickers = (
            select(func.count(PartClicker.recipient_id.distinct()))
            .where(*_part_filters(PartClicker, campaign_id, variant_id, part))
            .scalar_subquery()
        )
        row = session.execute(
            select(func.sum(PartStats.total), clickers).where(
                *_part_filters(PartStats, campaign_id, variant_id, part)
            )
        ).first()
    if row is None:
        return delivered, 0, 0
    return delivered, int(row[0] or 0), int(row[1] or 0)


def _hourly(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
) -> list[tuple[datetime, str, int]]:
    """``(hour, device, clicks)`` rows: one pass over ``part_hourly`` feeds both charts.

    Its rows are (part, hour, device) cells, without the link dimension, so the default
    view reads at most (hours since the send) x 4 rows per part, whatever the clicks."""
    return [
        (_utc(hour), name, int(total or 0))
        for hour, name, total in session.execute(
            select(PartHourly.hour, PartHourly.device, func.sum(PartHourly.total))
            .where(
                *_part_filters(PartHourly, campaign_id, variant_id, part),
                *_hourly_filters(since, until, device, PartHourly),
            )
            .group_by(PartHourly.hour, PartHourly.device)
        )
    ]


def _series(
    rows: Sequence[tuple[datetime, str, int]],
    sent: datetime,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> list[tuple[datetime, int]]:
    per_hour: dict[datetime, int] = {}
    for hour, _device, total in rows:
        per_hour[hour] = per_hour.get(hour, 0) + total
    start = _bound(since, "since") or floor_hour(sent)
    end = _bound(until, "until") or floor_hour(now) + timedelta(hours=1)
    if per_hour:
        # Clicks stamped before the send or after "now" (clock skew) still show up.
        start = min(start, min(per_hour))
        end = max(end, max(per_hour) + timedelta(hours=1))
    step = timedelta(hours=1)
    if end - start > HOURLY_SPAN:
        step = timedelta(days=1)
        start = start.replace(hour=0)
    buckets: dict[datetime, int] = {}
    moment = start
    while moment < end:
        buckets[moment] = 0
        moment += step
    for hour, total in per_hour.items():
        key = hour if step == timedelta(hours=1) else hour.replace(hour=0)
        buckets[key] = buckets.get(key, 0) + total
    return sorted(buckets.items())


def _split(rows: Sequence[tuple[datetime, str, int]]) -> dict[str, int]:
    split = dict.fromkeys(DEVICES, 0)
    for _hour, name, total in rows:
        split[name] = split.get(name, 0) + total
    return split


def _sent_at(session: Session, campaign_id: int) -> datetime:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("campaign_not_found", f"no campaign with id {campaign_id}")
    return campaign.created_at


def clicks_over_time(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
    *,
    now: datetime | None = None,
) -> list[tuple[datetime, int]]:
    """Clicks per bucket from the send (or ``since``) to ``until`` (or now), gaps as zeros.

    Buckets are hours when the span is at most three days and UTC days beyond that, so the
    chart stays readable whether it covers the launch morning or a whole quarter.
    """
    sent = _sent_at(session, campaign_id)
    rows = _hourly(session, campaign_id, variant_id, part, since, until, device)
    return _series(rows, sent, since, until, now or datetime.now(UTC))


def device_split(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
) -> dict[str, int]:
    """Clicks per device class, every known class present (zeros included), in a fixed order."""
    return _split(_hourly(session, campaign_id, variant_id, part, since, until, device))


def activity(
    session: Session,
    campaign_id: int,
    variant_id: int | None,
    part: str | None,
    since: datetime | None,
    until: datetime | None,
    device: str | None,
    *,
    now: datetime | None = None,
) -> tuple[list[tuple[datetime, int]], dict[str, int]]:
    """``clicks_over_time`` and ``device_split`` together, from one read of the buckets
    (the heatmap needs both, and the bucket rows are its biggest read after the uniques)."""
    sent = _sent_at(session, campaign_id)
    rows = _hourly(session, campaign_id, variant_id, part, since, until, device)
    return _series(rows, sent, since, until, now or datetime.now(UTC)), _split(rows)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    created_at: datetime
    delivered: int
    total: int
    unique: int
    rate: float | None  # unique / delivered x 100; None when nothing was delivered


def click_rate(unique: int, delivered: int) -> float | None:
    """Unique clickers per hundred deliveries; None (not 0) when the base is unknown."""
    return unique / delivered * 100 if delivered else None


def _check_page(page: int, per_page: int) -> None:
    if page < 1:
        raise InvalidInput("invalid_page", f"page must be 1 or more, got {page}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(
            "invalid_page", f"per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}"
        )


def campaign_list(
    session: Session, search: str = "", page: int = 1, per_page: int = 25
) -> tuple[list[CampaignRow], int]:
    """One page of live campaigns, newest first, with their headline figures.

    ``search`` matches anywhere in the name, ignoring case (on SQLite only ASCII letters
    fold). Figures for the page come from two grouped queries, not one per campaign:
    deliveries, and the ``campaign_stats`` rows (total clicks, distinct clickers).
    """
    _check_page(page, per_page)
    filters: list[ColumnElement[bool]] = [Campaign.deleted_at.is_(None)]
    term = search.strip()
    if term:
        filters.append(Campaign.name.icontains(term, autoescape=True))
    count = int(session.scalar(select(func.count()).select_from(Campaign).where(*filters)) or 0)
    campaigns = session.execute(
        select(Campaign.id, Campaign.name, Campaign.created_at)
        .where(*filters)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    ids = [row.id for row in campaigns]
    delivered: dict[int, int] = {}
    figures: dict[int, tuple[int, int]] = {}
    if ids:
        delivered = _grouped(
            session,
            select(Delivery.campaign_id, func.count())
            .where(Delivery.campaign_id.in_(ids))
            .group_by(Delivery.campaign_id),
        )
        figures = {
            int(cid): (int(total), int(unique))
            for cid, total, unique in session.execute(
                select(CampaignStats.campaign_id, CampaignStats.total, CampaignStats.unique).where(
                    CampaignStats.campaign_id.in_(ids)
                )
            )
        }
    rows = []
    for cid, name, created_at in campaigns:
        sent = delivered.get(cid, 0)
        total, unique = figures.get(cid, (0, 0))
        rows.append(
            CampaignRow(
                id=cid,
                name=name,
                created_at=created_at,
                delivered=sent,
                total=total,
                unique=unique,
                rate=click_rate(unique, sent),
            )
        )
    return rows, count


def _grouped(session: Session, query: Select[int, Any]) -> dict[int, int]:
    return {int(key): int(value or 0) for key, value in session.execute(query)}


@dataclass(frozen=True)
class ClickRow:
    recipient: str  # the sender's recipient id
    clicked_at: datetime
    device: str
    client: str | None
    method: str
    user_agent: str


def _clicks_query(
    session: Session, campaign_id: int, placement_id: int
) -> Select[str, datetime, str, str | None, str, str]:
    get_campaign(session, campaign_id)
    found = session.scalar(
        select(Placement.id).where(
            Placement.id == placement_id, Placement.campaign_id == campaign_id
        )
    )
    if found is None:
        raise NotFound(
            "placement_not_found", f"campaign {campaign_id} has no link with id {placement_id}"
        )
    return (
        select(
            Recipient.external_id,
            Click.clicked_at,
            Click.device,
            Click.client,
            Click.method,
            Click.user_agent,
        )
        .join(Recipient, Recipient.id == Click.recipient_id)
        .where(Click.placement_id == placement_id)
        .order_by(Click.clicked_at.desc(), Click.id.desc())
    )


def _row(values: Sequence[Any]) -> ClickRow:
    recipient, clicked_at, device, client, method, user_agent = values
    return ClickRow(recipient, _utc(clicked_at), device, client, method, user_agent)


def placement_clicks(
    session: Session, campaign_id: int, placement_id: int, page: int = 1, per_page: int = 50
) -> tuple[list[ClickRow], int]:
    """One page of a link's raw clicks, newest first, and how many there are in all."""
    _check_page(page, per_page)
    query = _clicks_query(session, campaign_id, placement_id)
    count = session.scalar(
        select(func.count()).select_from(Click).where(Click.placement_id == placement_id)
    )
    rows = session.execute(query.limit(per_page).offset((page - 1) * per_page))
    return [_row(row) for row in rows], int(count or 0)


def iter_placement_clicks(
    session: Session, campaign_id: int, placement_id: int
) -> Iterator[ClickRow]:
    """Every click of a link, newest first, streamed in batches (for CSV export).

    The campaign and placement are checked before this returns, so a web view can answer
    404 before it starts streaming.
    """
    query = _clicks_query(session, campaign_id, placement_id)

    def stream() -> Iterator[ClickRow]:
        result = session.execute(query.execution_options(yield_per=1000))
        for row in result:
            yield _row(row)

    return stream()
