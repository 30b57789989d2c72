"""Reading click figures: the reporting side of the write/read split.

Every function takes a session and a ``ClickFilter`` (which clicks to count) and returns
plain values, so the dashboard, the JSON API, the PDF and the benchmark share one path. The
default view (all time, every device) reads only aggregates the click writer keeps in step
with ``click``, a few rows per link or per hour, however many clicks there are:
``placement_stats`` for per-link figures, ``part_stats`` (one variant's part) or
``campaign_stats`` (the whole campaign) for the summary, ``part_hourly`` for the time series
and the device split, and ``delivery``.

A period, device or segment (email client, country) filter changes what "unique" means:
distinct recipients with at least one matching click. Counters cannot answer that, so the
writer keeps clicker sets (``app.clicks.clicker_sets``): per (link, hour, device) in
``click_hourly`` and per (link, day, device) in ``click_daily`` for a period, per (link,
device, client, country) in ``click_segment`` for a device or a segment over all time, the
same by day in ``click_segment_daily`` for a segment within a period, and per variant part
in ``part_stats`` for a scope of several parts. A filtered unique is the size of the union
of the sets of the cells the filter covers, and a filtered total the sum of their counters:
exact, at a cost that grows with the cells, not the clicks. Period bounds fall on whole UTC hours
(``ClickFilter`` refuses others), so hourly cells answer them exactly. The charts and the
machine panel of a filtered view read ``part_hourly``, or ``part_cell`` and
``cell_reasons`` (per part, hour, device, client and country) with a segment.

A segment has no hourly cells (they would grow towards one per click): within a period,
the hours either side of its whole days are read from the raw clicks (``click_filters``,
narrowed by the ``(placement_id, clicked_at)`` index), grouped into a cell per link.
The campaign list and the drill-down (who clicked a link) are ``app.reports.listings``.
docs/heatmap.md says what each figure costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pyroaring import BitMap
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.clicks.clicker_sets import encode, union
from app.errors import NotFound
from app.models import (
    BOUNCED,
    COMPLAINED,
    DELIVERED,
    DROPPED,
    Campaign,
    CampaignStats,
    CellReasons,
    Click,
    ClickDaily,
    ClickHourly,
    ClickSegment,
    ClickSegmentDaily,
    Delivery,
    MachineReasons,
    PartCell,
    PartClicker,
    PartHourly,
    PartStats,
    Placement,
    PlacementRecipient,
    PlacementStats,
)
from app.vocabulary import DEVICES, HONEYPOT

HUMAN = "human"  # the label of a click no machine rule fired on
# The segment value of clicks without a client (no browser opened the link) or a country
# (a private or reserved network, or no address): choosable like any other value.
UNKNOWN = "unknown"

# Up to this span the time series uses hourly buckets; beyond it, daily ones (UTC days).
HOURLY_SPAN = timedelta(hours=72)  # longer spans are charted per day,
DAILY_SPAN = timedelta(days=400)  # and longer than this per week


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment`` (naive values are taken as UTC)."""
    return in_utc(moment).replace(minute=0, second=0, microsecond=0)


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value (SQLite hands stored times back naive) is UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _bound(moment: datetime | None, name: str) -> datetime | None:
    """A period bound in UTC; it must fall on a whole hour so hourly totals stay exact."""
    if moment is None:
        return None
    moment = in_utc(moment)
    if moment != floor_hour(moment):
        raise ValueError(f"{name} must fall on a whole UTC hour, got {moment.isoformat()}")
    return moment


@dataclass(frozen=True)
class ClickFilter:
    """Which clicks a figure counts: one campaign's, narrowed when given to a variant, a part,
    a period, a device class, an email client and a country (``UNKNOWN`` for clicks with
    none). The heatmap builds one per view (``ViewParams``), and every figure of that view,
    on the page, in the API and in the PDF, is read through it.

    ``since`` is inclusive and ``until`` exclusive; both are kept in UTC and must fall on a
    whole hour (``ValueError`` otherwise), so hourly totals and raw-click uniques agree.
    ``human_only`` (the default everywhere) leaves out the clicks labelled machine
    (``app.clicks.machines``): every figure then reads the aggregates' human columns.
    """

    campaign_id: int
    variant_id: int | None = None
    part: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    device: str | None = None
    human_only: bool = True
    client: str | None = None
    country: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _bound(self.since, "since"))
        object.__setattr__(self, "until", _bound(self.until, "until"))

    @property
    def segmented(self) -> bool:
        """A client or a country is chosen: dimensions only raw clicks have."""
        return self.client is not None or self.country is not None

    @property
    def unfiltered(self) -> bool:
        """All time, every device and no segment: the view the aggregates answer directly."""
        return (
            self.since is None and self.until is None and self.device is None
        ) and not self.segmented


# The placements reports show: every link of the sender's, but not the hidden honeypot link
# ingest adds (docs/machine-clicks.md), which only machines click. Every report query that
# lists placements or their raw clicks applies this one condition.
REPORTED: ColumnElement[bool] = Placement.kind != HONEYPOT


def _placement_ids(
    where: ClickFilter, tracked_only: bool = False, include_honeypot: bool = False
) -> Select[int]:
    query = select(Placement.id).where(Placement.campaign_id == where.campaign_id)
    if not include_honeypot:  # the summary counts every click, as ``part_stats`` does
        query = query.where(REPORTED)
    if where.variant_id is not None:
        query = query.where(Placement.variant_id == where.variant_id)
    if where.part is not None:
        query = query.where(Placement.part == where.part)
    if tracked_only:
        query = query.where(Placement.tracked.is_(True))
    return query


def _span_filters(
    where: ClickFilter, at: InstrumentedAttribute[datetime], device: InstrumentedAttribute[str]
) -> list[ColumnElement[bool]]:
    """The period and device of ``where``, on a table's time (or hour) and device columns."""
    filters: list[ColumnElement[bool]] = []
    if where.since is not None:
        filters.append(at >= where.since)
    if where.until is not None:
        filters.append(at < where.until)
    if where.device is not None:
        filters.append(device == where.device)
    return filters


def _hourly_filters(
    where: ClickFilter, table: type[ClickHourly] | type[PartHourly] = ClickHourly
) -> list[ColumnElement[bool]]:
    return _span_filters(where, table.hour, table.device)


def _part_filters(
    table: type[PartHourly]
    | type[PartStats]
    | type[PartClicker]
    | type[MachineReasons]
    | type[Click],
    where: ClickFilter,
) -> list[ColumnElement[bool]]:
    """Rows of one campaign's parts, narrowed to a variant and/or a part when given."""
    filters: list[ColumnElement[bool]] = [table.campaign_id == where.campaign_id]
    if where.variant_id is not None:
        filters.append(table.variant_id == where.variant_id)
    if where.part is not None:
        filters.append(table.part == where.part)
    return filters


def click_filters(where: ClickFilter, *, labels: bool = True) -> list[ColumnElement[bool]]:
    """The conditions on raw ``click`` rows that select what ``where`` covers; every report
    that reads raw clicks uses them, so a filter means the same thing in each. ``labels``
    False keeps machine clicks in even for a human-only filter (to count them)."""
    filters = _part_filters(Click, where) + _span_filters(where, Click.clicked_at, Click.device)
    for column, value in ((Click.client, where.client), (Click.country, where.country)):
        if value is not None:
            filters.append(column.is_(None) if value == UNKNOWN else column == value)
    if labels and where.human_only:
        filters.append(Click.label == HUMAN)
    return filters


def _counted(model: Any, where: ClickFilter) -> tuple[Any, Any]:
    """The (total, unique) columns of an aggregate table that ``where`` reads: the human
    ones unless machine clicks are included. A table without uniques gives None for them."""
    if where.human_only:
        return model.human_total, getattr(model, "human_unique", None)
    return model.total, getattr(model, "unique", None)


def _cells(
    session: Session, where: ClickFilter, placement_ids: Any = None
) -> list[tuple[int, int, bytes | None]]:
    """``(placement_id, clicks, clicker set)`` of every aggregate cell ``where`` covers,
    for a filtered view. Over all time, the ``click_segment`` cells (link, device, client,
    country) of a device or a segment. For a period, its whole UTC days from ``click_daily``
    (link, day, device), or from ``click_segment_daily`` for a segment, and the hours either
    side from ``click_hourly`` (link, hour, device); a segment has no hourly cells, so for
    those hours, at most two partial days, its raw clicks are grouped into one cell per link.
    Human clicks and clickers unless machine clicks are included.

    The cost grows with the cells (days and at most 46 hours, x devices x links; or
    segments x links), not with the campaign's clicks; the unique clickers are the size of
    the union of the sets (``app.clicks.clicker_sets``).
    """
    scope = placement_ids if placement_ids is not None else _placement_ids(where)
    if where.since is None and where.until is None:  # all time
        filters: list[ColumnElement[bool]] = [ClickSegment.placement_id.in_(scope)]
        if where.device is not None:
            filters.append(ClickSegment.device == where.device)
        return _cell_rows(session, where, ClickSegment, filters + _segment(ClickSegment, where))
    # Whole UTC days inside the period come from the daily cells, the hours around them
    # from the hourly ones (or a segment's raw clicks).
    first_day = None if where.since is None else _day_after(where.since)
    end_day = None if where.until is None else floor_hour(where.until).replace(hour=0)
    if first_day is not None and end_day is not None and first_day >= end_day:
        return _hour_cells(session, where, scope)  # no whole day
    table = ClickSegmentDaily if where.segmented else ClickDaily
    days: list[ColumnElement[bool]] = [table.placement_id.in_(scope), *_segment(table, where)]
    if first_day is not None:
        days.append(table.day >= first_day)
    if end_day is not None:
        days.append(table.day < end_day)
    if where.device is not None:
        days.append(table.device == where.device)
    rows = _cell_rows(session, where, table, days)
    if where.since is not None and first_day is not None and where.since < first_day:
        rows += _hour_cells(session, replace(where, until=first_day), scope)
    if where.until is not None and end_day is not None and end_day < where.until:
        rows += _hour_cells(session, replace(where, since=end_day), scope)
    return rows


def _segment(table: Any, where: ClickFilter) -> list[ColumnElement[bool]]:
    """A segment cell table's rows of ``where``'s client and country ('' for none)."""
    return [
        getattr(table, name) == ("" if value == UNKNOWN else value)
        for name, value in (("client", where.client), ("country", where.country))
        if value is not None
    ]


def _hour_cells(
    session: Session, where: ClickFilter, scope: Any
) -> list[tuple[int, int, bytes | None]]:
    """The cells of a span of hours: ``click_hourly``'s, or for a segment, which has no
    hourly cells, one per link built from the span's raw clicks."""
    if not where.segmented:
        hours = [ClickHourly.placement_id.in_(scope), *_hourly_filters(where)]
        return _cell_rows(session, where, ClickHourly, hours)
    clicks: dict[int, int] = {}
    members: dict[int, BitMap] = {}
    for placement_id, recipient_id, n in session.execute(
        select(Click.placement_id, Click.recipient_id, func.count())
        .where(*click_filters(where), Click.placement_id.in_(scope))
        .group_by(Click.placement_id, Click.recipient_id)
    ):
        clicks[placement_id] = clicks.get(placement_id, 0) + int(n)
        members.setdefault(placement_id, BitMap()).add(recipient_id)
    return [(p, clicks[p], encode(members[p])) for p in clicks]


def _day_after(moment: datetime) -> datetime:
    """The first UTC midnight at or after ``moment``."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == moment else day + timedelta(days=1)


def _cell_rows(
    session: Session, where: ClickFilter, table: Any, filters: list[ColumnElement[bool]]
) -> list[tuple[int, int, bytes | None]]:
    """The cells of ``table`` that ``filters`` pick; they name the links (which are the
    campaign's), so the planner walks the cells' primary key, which leads with the link
    and then the day or hour, rather than every cell of the campaign (as SQLite does when
    the campaign is named too)."""
    total = table.human_total if where.human_only else table.total
    members = table.human_clickers if where.human_only else table.clickers
    return [
        (int(p), int(n), blob)
        for p, n, blob in session.execute(
            select(table.placement_id, total, members).where(*filters)
        )
    ]


def link_counts(session: Session, where: ClickFilter) -> dict[int, tuple[int, int]]:
    """``placement_id -> (total, unique)`` for every tracked placement ``where`` covers (the
    heatmap asks for one variant's part).

    Placements nobody clicked are present with ``(0, 0)``, so callers never guess whether a
    missing key means "no clicks" or "not a link".
    """
    ids = session.scalars(_placement_ids(where, tracked_only=True))
    counts: dict[int, tuple[int, int]] = dict.fromkeys(ids, (0, 0))
    if not counts:
        return counts
    wanted = _placement_ids(where, tracked_only=True)
    if where.unfiltered:
        rows = session.execute(
            select(PlacementStats.placement_id, *_counted(PlacementStats, where)).where(
                PlacementStats.placement_id.in_(wanted)
            )
        )
        for placement_id, total, unique in rows:
            counts[placement_id] = (int(total), int(unique))
        return counts
    return _with_links(counts, _per_link(_cells(session, where, wanted)))


def _per_link(cells: list[tuple[int, int, bytes | None]]) -> dict[int, tuple[int, BitMap]]:
    """Each link's cells added up: its clicks, and the union of its clicker sets."""
    totals: dict[int, int] = {}
    sets: dict[int, list[bytes | None]] = {}
    for placement_id, n, blob in cells:
        totals[placement_id] = totals.get(placement_id, 0) + n
        sets.setdefault(placement_id, []).append(blob)
    return {p: (n, union(sets[p])) for p, n in totals.items()}


def _with_links(
    counts: dict[int, tuple[int, int]], links: dict[int, tuple[int, BitMap]]
) -> dict[int, tuple[int, int]]:
    """``counts`` with the clicks and unique clickers of each of its links in ``links``."""
    for placement_id, (n, members) in links.items():
        if placement_id in counts:
            counts[placement_id] = (n, len(members))
    return counts


def _together(links: dict[int, tuple[int, BitMap]]) -> tuple[int, int]:
    """The clicks and the distinct clickers of all of ``links``: the union of their unions,
    so each cell's set is decoded once."""
    clickers = BitMap.union(*(m for _n, m in links.values())) if links else BitMap()
    return sum(n for n, _members in links.values()), len(clickers)


def view_figures(
    session: Session, where: ClickFilter
) -> tuple[dict[int, tuple[int, int]], tuple[int, int, int]]:
    """``link_counts`` and ``campaign_summary`` of one view together: a filtered view reads
    its cells once for both (the summary's cover every link of the scope, honeypot
    included)."""
    if where.unfiltered:
        return link_counts(session, where), campaign_summary(session, where)
    ids = session.scalars(_placement_ids(where, tracked_only=True))
    links = _per_link(_cells(session, where, _placement_ids(where, include_honeypot=True)))
    delivered = delivered_count(session, where.campaign_id, where.variant_id)
    return _with_links(dict.fromkeys(ids, (0, 0)), links), (delivered, *_together(links))


def first_and_last(session: Session, where: ClickFilter) -> dict[int, tuple[int, int]]:
    """``placement_id -> (first, last)``: how many recipients clicked each link ``where``
    covers as their first link in the email part, and how many as their last.

    Over each recipient's clicks in the part, human ones unless machines are included,
    whatever the period or device (a first link is a person's, not a period's); a recipient
    who clicked one link counts for it twice. Read from ``placement_stats``, which the
    writer keeps exact (``app.clicks.labelling.human_figures``).
    """
    first, last = (
        (PlacementStats.human_first_clickers, PlacementStats.human_last_clickers)
        if where.human_only
        else (PlacementStats.first_clickers, PlacementStats.last_clickers)
    )
    rows = session.execute(
        select(PlacementStats.placement_id, first, last).where(
            PlacementStats.placement_id.in_(_placement_ids(where, tracked_only=True))
        )
    )
    return {int(p): (int(f), int(n)) for p, f, n in rows}


def delivered_count(session: Session, campaign_id: int, variant_id: int | None) -> int:
    """Recipients the campaign (or one variant of it) was delivered to: the click rate's
    denominator. Recipients whose email bounced for good, who complained or whose email the
    ESP dropped have left it (docs/esp-webhooks.md)."""
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DELIVERED)
    )
    if variant_id is not None:
        query = query.where(Delivery.variant_id == variant_id)
    return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class DeliveryOutcomes:
    """Recipients by delivery status: the ESPs' webhooks move them out of ``delivered``."""

    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    dropped: int = 0


def delivery_outcomes(
    session: Session, campaign_id: int, variant_id: int | None
) -> DeliveryOutcomes:
    """The campaign's (or one variant's) recipients by delivery status."""
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)
    )
    if variant_id is not None:
        query = query.where(Delivery.variant_id == variant_id)
    counts = {str(status): int(n) for status, n in session.execute(query)}
    return DeliveryOutcomes(
        delivered=counts.get(DELIVERED, 0),
        bounced=counts.get(BOUNCED, 0),
        complained=counts.get(COMPLAINED, 0),
        dropped=counts.get(DROPPED, 0),
    )


def campaign_summary(session: Session, where: ClickFilter) -> tuple[int, int, int]:
    """``(delivered, total, unique)``; unique counts recipients who clicked any link.

    Deliveries are never period-filtered: a rate over the last 24 hours is still "of
    everyone who received it". A ``variant_id``/``part`` of None means all of them.

    Unfiltered, the whole campaign reads its ``campaign_stats`` row and one variant's part
    its ``part_stats`` row. The mixed scopes (one variant across its parts, which the funnel
    and the comparison of variants read; one part across variants) add up ``part_stats``
    totals and union the parts' clicker sets. Filtered, the cells the filter covers
    (``_cells``).
    """
    delivered = delivered_count(session, where.campaign_id, where.variant_id)
    if not where.unfiltered:
        links = _per_link(_cells(session, where, _placement_ids(where, include_honeypot=True)))
        return (delivered, *_together(links))
    whole = where.variant_id is None and where.part is None
    if whole or (where.variant_id is not None and where.part is not None):
        row = session.execute(
            select(*_counted(CampaignStats, where)).where(
                CampaignStats.campaign_id == where.campaign_id
            )
            if whole
            else select(*_counted(PartStats, where)).where(*_part_filters(PartStats, where))
        ).first()
        return delivered, int(row[0] or 0) if row else 0, int(row[1] or 0) if row else 0
    # A scope of several parts: add up their totals and union their sets of clickers.
    total_column, _unique = _counted(PartStats, where)
    members = PartStats.human_clickers if where.human_only else PartStats.clickers
    rows = session.execute(
        select(total_column, members).where(*_part_filters(PartStats, where))
    ).all()
    return delivered, sum(int(n or 0) for n, _b in rows), len(union(b for _n, b in rows))


def _hourly(session: Session, where: ClickFilter) -> list[tuple[datetime, str, int]]:
    """``(hour, device, clicks)`` rows: one pass over ``part_hourly`` feeds both charts.

    Its rows are (part, hour, device) cells, without the link dimension, so the default
    view reads at most (hours since the send) x 4 rows per part, whatever the clicks. A
    segment, which ``part_hourly`` has no column for, groups the matching raw clicks into
    the same cells."""
    if where.segmented:
        return [
            (in_utc(hour), name, int(total or 0))
            for hour, name, total in session.execute(
                select(PartCell.hour, PartCell.device, func.sum(_counted(PartCell, where)[0]))
                .where(*_cell_filters(where))
                .group_by(PartCell.hour, PartCell.device)
            )
        ]
    return [
        (in_utc(hour), name, int(total or 0))
        for hour, name, total in session.execute(
            select(PartHourly.hour, PartHourly.device, func.sum(_counted(PartHourly, where)[0]))
            .where(*_part_filters(PartHourly, where), *_hourly_filters(where, PartHourly))
            .group_by(PartHourly.hour, PartHourly.device)
        )
    ]


def _cell_filters(where: ClickFilter, table: Any = PartCell) -> list[ColumnElement[bool]]:
    """The rows of ``part_cell`` (or ``cell_reasons``) that ``where`` covers: its scope,
    period, device, client and country ('' is a click without one)."""
    return [
        *_part_filters(table, where),
        *_span_filters(where, table.hour, table.device),
        *_segment(table, where),
    ]


def _series(
    rows: Sequence[tuple[datetime, str, int]], sent: datetime, where: ClickFilter, now: datetime
) -> list[tuple[datetime, int]]:
    per_hour: dict[datetime, int] = {}
    for hour, _device, total in rows:
        per_hour[hour] = per_hour.get(hour, 0) + total
    # The chart spans the chosen period, but only where clicks can be: from the send to now.
    # (A period asked from the year 2000, or up to 9999, must not draw a million empty days.)
    first, last = floor_hour(sent), floor_hour(now) + timedelta(hours=1)
    start = max(where.since, first) if where.since else first
    end = min(where.until, last) if where.until else last
    if per_hour:
        # Clicks stamped before the send or after "now" (clock skew) still show up.
        start = min(start, min(per_hour))
        end = max(end, max(per_hour) + timedelta(hours=1))
    end = max(end, start)
    step = timedelta(hours=1)
    if end - start > DAILY_SPAN:
        step, start = timedelta(days=7), start.replace(hour=0)
    elif end - start > HOURLY_SPAN:
        step, start = timedelta(days=1), start.replace(hour=0)
    buckets: dict[datetime, int] = {}
    moment = start
    while moment < end:
        buckets[moment] = 0
        moment += step
    for hour, total in per_hour.items():
        key = start + (hour - start) // step * step
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
    session: Session, where: ClickFilter, *, now: datetime | None = None
) -> list[tuple[datetime, int]]:
    """Clicks per bucket from the send (or ``since``) to ``until`` (or now), gaps as zeros.

    Buckets are hours when the span is at most three days, UTC days up to 400 days and weeks
    beyond, so the chart stays readable whether it covers the launch morning or a year.
    """
    sent = _sent_at(session, where.campaign_id)
    rows = _hourly(session, where)
    return _series(rows, sent, where, now or datetime.now(UTC))


def device_split(session: Session, where: ClickFilter) -> dict[str, int]:
    """Clicks per device class, every known class present (zeros included), in a fixed order."""
    return _split(_hourly(session, where))


def activity(
    session: Session, where: ClickFilter, *, now: datetime | None = None
) -> tuple[list[tuple[datetime, int]], dict[str, int]]:
    """``clicks_over_time`` and ``device_split`` together, from one read of the buckets
    (the heatmap needs both, and the bucket rows are its biggest read after the uniques)."""
    sent = _sent_at(session, where.campaign_id)
    rows = _hourly(session, where)
    return _series(rows, sent, where, now or datetime.now(UTC)), _split(rows)


# The page lists the segments it can narrow to from at most this many of the scope's latest
# clicks: a bounded read, so the default page stays flat however many clicks there are.
SEGMENT_SAMPLE = 50_000


@dataclass(frozen=True)
class Segments:
    """The clients and countries present in a scope, each with its clicks, most first
    (``UNKNOWN`` for clicks without one): what a viewer can narrow a view to. ``sampled``:
    the scope has more clicks than ``SEGMENT_SAMPLE``, so the lists and counts are those of
    its latest clicks (a value seen only earlier can still be asked for)."""

    clients: list[tuple[str, int]]
    countries: list[tuple[str, int]]
    sampled: bool = False


def segments(session: Session, where: ClickFilter) -> Segments:
    """The clients and countries of the clicks in ``where``'s campaign, variant and part
    (human clicks only when ``where`` counts only those), over all time and devices, so the
    choices stay put while the viewer changes the period, the device or the segment.

    No aggregate has these dimensions, so this reads raw clicks: at most the scope's latest
    ``SEGMENT_SAMPLE`` ones, newest first by the ``(campaign_id, clicked_at)`` index, so the
    cost is bounded whatever the campaign's size.
    """
    scope = ClickFilter(
        where.campaign_id, where.variant_id, where.part, human_only=where.human_only
    )
    latest = (
        select(Click.client, Click.country)
        .where(*click_filters(scope))
        .order_by(Click.clicked_at.desc())
        .limit(SEGMENT_SAMPLE + 1)
        .subquery()
    )
    clients: dict[str, int] = {}
    countries: dict[str, int] = {}
    seen = 0
    for client, country, n in session.execute(
        select(latest.c.client, latest.c.country, func.count()).group_by(
            latest.c.client, latest.c.country
        )
    ):
        seen += int(n)
        clients[client or UNKNOWN] = clients.get(client or UNKNOWN, 0) + int(n)
        countries[country or UNKNOWN] = countries.get(country or UNKNOWN, 0) + int(n)
    return Segments(_most_first(clients), _most_first(countries), seen > SEGMENT_SAMPLE)


def _most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def distinct_clickers(session: Session, where: ClickFilter, placement_ids: Sequence[int]) -> int:
    """Distinct recipients with a counted click on any of ``placement_ids``: the unique
    clickers of links grouped together, where a recipient who clicked two of them counts
    once. All time and every device: their ``placement_recipient`` rows (one per link and
    recipient; ``human_clicks > 0`` marks a human clicker). Otherwise the raw clicks, as for
    every filtered unique."""
    if not placement_ids:
        return 0
    if where.unfiltered:
        query = select(func.count(PlacementRecipient.recipient_id.distinct())).where(
            PlacementRecipient.placement_id.in_(placement_ids)
        )
        if where.human_only:
            query = query.where(PlacementRecipient.human_clicks > 0)
        return int(session.scalar(query) or 0)
    return len(union(b for *_k, b in _cells(session, where, list(placement_ids))))


def click_rate(unique: int, delivered: int) -> float | None:
    """Unique clickers per hundred deliveries; None (not 0) when the base is unknown."""
    return unique / delivered * 100 if delivered else None


@dataclass(frozen=True)
class LeftOut:
    """The clicks labelled machine within a filter's scope, period and device: how many,
    and how many of them each rule caught (a click caught by two rules counts under both,
    so the reasons can add up to more than ``clicks``)."""

    clicks: int
    reasons: dict[str, int] = field(default_factory=dict)


def machine_clicks(session: Session, where: ClickFilter) -> LeftOut:
    """The machine clicks ``where`` covers, whether or not the view shows them: the panel
    that says "N clicks left out as machine", and why.

    Unfiltered, the stats row answers (``total - human_total``, the reasons from
    ``machine_reasons``); filtered, the ``part_hourly`` rows (``part_cell`` with a segment)
    and the ``cell_reasons`` rows the filter covers.
    """
    if where.unfiltered:
        if where.variant_id is None and where.part is None:
            row = session.execute(
                select(CampaignStats.total - CampaignStats.human_total).where(
                    CampaignStats.campaign_id == where.campaign_id
                )
            ).first()
        else:
            row = session.execute(
                select(func.sum(PartStats.total - PartStats.human_total)).where(
                    *_part_filters(PartStats, where)
                )
            ).first()
        found = session.execute(
            select(MachineReasons.reason, func.sum(MachineReasons.clicks))
            .where(*_part_filters(MachineReasons, where))
            .group_by(MachineReasons.reason)
        )
        reasons = {reason: int(n) for reason, n in found if n}
        return LeftOut(int(row[0] or 0) if row else 0, _in_order(reasons))
    # Without a segment, ``part_hourly`` (hour, device) has the same clicks in fewer rows.
    clicks = session.scalar(
        select(func.sum(PartCell.total - PartCell.human_total)).where(*_cell_filters(where))
        if where.segmented
        else select(func.sum(PartHourly.total - PartHourly.human_total)).where(
            *_part_filters(PartHourly, where), *_hourly_filters(where, PartHourly)
        )
    )
    found = session.execute(
        select(CellReasons.reason, func.sum(CellReasons.clicks))
        .where(*_cell_filters(where, CellReasons))
        .group_by(CellReasons.reason)
    )
    reasons = {reason: int(n) for reason, n in found if n}
    return LeftOut(int(clicks or 0), _in_order(reasons))


def _in_order(reasons: dict[str, int]) -> dict[str, int]:
    """Most clicks first, then by name, so the panel reads from the biggest cause."""
    return dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
