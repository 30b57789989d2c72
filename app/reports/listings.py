"""Lists for the dashboard: the campaigns with their headline figures, the raw clicks
behind one link (drill-down and CSV export), a page at a time or streamed, and the history
of a campaign's link names and CTA flags (the page and the API read the same pages).

The campaign list reads the aggregates (``campaign_stats``, one row per campaign); the
drill-down reads raw ``click`` rows by the ``(placement_id, clicked_at)`` index, by design:
it shows who clicked, and who (by device, email client and country) clicks the link.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from app.clicks.machines import stored_reasons
from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.models import (
    DELIVERED,
    Campaign,
    CampaignStats,
    Click,
    Delivery,
    Placement,
    PlacementChange,
    Recipient,
    Variant,
)
from app.reports.exports import decode_cursor, encode_cursor
from app.reports.stats import HUMAN, REPORTED, UNKNOWN, click_rate, in_utc

MAX_PER_PAGE = 500


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    created_at: datetime
    delivered: int
    total: int  # human clicks, as every report counts by default
    unique: int  # distinct human clickers
    rate: float | None  # unique / delivered x 100; None when nothing was delivered
    machine: int = 0  # clicks left out as machine


@dataclass(frozen=True)
class Share:
    """One device, client or country among a link's human clicks."""

    value: str  # stats.UNKNOWN for clicks without a client or a country
    clicks: int
    unique: int  # distinct recipients with a human click from it


@dataclass(frozen=True)
class Breakdown:
    """Who clicks a link: its human clicks and clickers by device, email client and country,
    each list most clicks first. A recipient who clicked from two devices counts once under
    each, so a list's uniques can add up to more than ``unique``."""

    clicks: int
    unique: int
    devices: list[Share]
    clients: list[Share]
    countries: list[Share]


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
    deliveries, and the ``campaign_stats`` rows (human clicks, distinct human clickers,
    and the machine clicks left out of them).
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
    figures: dict[int, tuple[int, int, int]] = {}
    if ids:
        delivered = _grouped(
            session,
            select(Delivery.campaign_id, func.count())
            .where(Delivery.campaign_id.in_(ids), Delivery.status == DELIVERED)
            .group_by(Delivery.campaign_id),
        )
        figures = {
            int(cid): (int(human), int(unique), int(total) - int(human))
            for cid, human, unique, total in session.execute(
                select(
                    CampaignStats.campaign_id,
                    CampaignStats.human_total,
                    CampaignStats.human_unique,
                    CampaignStats.total,
                ).where(CampaignStats.campaign_id.in_(ids))
            )
        }
    rows = []
    for cid, name, created_at in campaigns:
        sent = delivered.get(cid, 0)
        total, unique, machine = figures.get(cid, (0, 0, 0))
        rows.append(
            CampaignRow(
                id=cid,
                name=name,
                created_at=created_at,
                delivered=sent,
                total=total,
                unique=unique,
                rate=click_rate(unique, sent),
                machine=machine,
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
    label: str = "human"  # or "machine" (app.clicks.machines)
    reasons: tuple[str, ...] = ()  # the rules that labelled it machine
    certainty: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2 of the network's registration


def _clicks_query(
    session: Session, campaign_id: int, placement_id: int
) -> Select[*tuple[Any, ...]]:
    get_campaign(session, campaign_id)
    found = session.scalar(
        select(Placement.id).where(
            Placement.id == placement_id, Placement.campaign_id == campaign_id, REPORTED
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
            Click.label,
            Click.reasons,
            Click.certainty,
            Click.country,
        )
        .join(Recipient, Recipient.id == Click.recipient_id)
        .where(Click.placement_id == placement_id)
        .order_by(Click.clicked_at.desc(), Click.id.desc())
    )


def _row(values: Sequence[Any]) -> ClickRow:
    (
        recipient,
        clicked_at,
        device,
        client,
        method,
        user_agent,
        label,
        reasons,
        certainty,
        country,
    ) = values
    return ClickRow(
        recipient,
        in_utc(clicked_at),
        device,
        client,
        method,
        user_agent,
        label,
        stored_reasons(reasons),
        certainty,
        country,
    )


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


def placement_breakdown(session: Session, campaign_id: int, placement_id: int) -> Breakdown:
    """The link's human clicks by device, client and country, with distinct clickers.

    Human clicks only, like every default figure: what machines click says nothing about
    the audience. One grouped pass per dimension over the link's raw clicks, by the
    ``(placement_id, clicked_at)`` index, so it costs what the click list's count does.
    """
    _clicks_query(session, campaign_id, placement_id)  # NotFound for a link not shown
    human = (Click.placement_id == placement_id, Click.label == HUMAN)
    clicks, unique = session.execute(
        select(func.count(), func.count(Click.recipient_id.distinct())).where(*human)
    ).one()

    def shares(column: Any) -> list[Share]:
        found = [
            Share(value or UNKNOWN, int(n), int(people))
            for value, n, people in session.execute(
                select(column, func.count(), func.count(Click.recipient_id.distinct()))
                .where(*human)
                .group_by(column)
            )
        ]
        return sorted(found, key=lambda share: (-share.clicks, share.value))

    return Breakdown(
        int(clicks),
        int(unique),
        shares(Click.device),
        shares(Click.client),
        shares(Click.country),
    )


# -- the history of the marketer's link names and CTA flags --------------------------------------

DEFAULT_CHANGES = 50
MAX_CHANGES = 500


@dataclass(frozen=True)
class ChangeRow:
    """One change to a link's name or CTA flag, with the link as it was sent."""

    id: int
    changed_at: datetime
    username: str  # a user's name, or placements.TOKEN_AUTHOR and an API token's name
    field: str  # "label" | "cta"
    old_value: str | None  # a name (None: none), or "true" / "false"
    new_value: str | None
    placement_id: int
    variant: str
    part: str
    position: int
    text: str  # the link's own text, as sent
    label: str | None  # its name now


@dataclass(frozen=True)
class ChangePage:
    """One page of a campaign's history, newest first; ``next_cursor`` None on the last."""

    rows: tuple[ChangeRow, ...]
    next_cursor: str | None


def placement_change_page(
    session: Session, campaign_id: int, *, after: str | None = None, limit: int = DEFAULT_CHANGES
) -> ChangePage:
    """Every change to a campaign's link names and CTA flags, newest first, a page at a time.

    Pages are read by keyset on ``(changed_at, id)`` as the raw-click export reads its pages,
    with the same cursor (``exports.encode_cursor``: a time and a row id), so a change made
    meanwhile cannot shift rows between pages. NotFound for an unknown campaign,
    ``InvalidInput`` for a cursor this module did not write or a limit out of range.
    """
    if isinstance(limit, bool) or not 1 <= limit <= MAX_CHANGES:
        raise InvalidInput(
            "invalid_limit", f"limit must be between 1 and {MAX_CHANGES}, got {limit}"
        )
    get_campaign(session, campaign_id)
    query = (
        select(PlacementChange, Placement, Variant.name)
        .join(Placement, Placement.id == PlacementChange.placement_id)
        .join(Variant, Variant.id == Placement.variant_id)
        .where(PlacementChange.campaign_id == campaign_id)
        .order_by(PlacementChange.changed_at.desc(), PlacementChange.id.desc())
    )
    if after is not None:
        at, row_id = decode_cursor(after)
        query = query.where(
            PlacementChange.changed_at <= at,
            or_(PlacementChange.changed_at < at, PlacementChange.id < row_id),
        )
    found = session.execute(query.limit(limit + 1)).all()
    page = found[:limit]
    rows = tuple(
        ChangeRow(
            id=change.id,
            changed_at=in_utc(change.changed_at),
            username=change.username,
            field=change.field,
            old_value=change.old_value,
            new_value=change.new_value,
            placement_id=placement.id,
            variant=variant,
            part=placement.part,
            position=placement.position,
            text=placement.text,
            label=placement.label,
        )
        for change, placement, variant in page
    )
    next_cursor = None
    if len(found) > limit:
        next_cursor = encode_cursor(rows[-1].changed_at, rows[-1].id)
    return ChangePage(rows, next_cursor)
