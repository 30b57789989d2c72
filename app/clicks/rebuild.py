"""Rebuilding a campaign's report aggregates exactly from its raw clicks, and labelling its
clicks again by today's rules.

The writer keeps the aggregates click by click (``app.clicks.aggregates.add_clicks``). When
they may be wrong, they need recomputing from the clicks themselves: after a restore from a
backup, or a bug fixed. When the rules that label clicks human or machine change (a new
release, new settings, a new scanner-network file), the labels need judging again, and the
human figures with them. ``rebuild_campaign`` deletes one campaign's aggregate rows and adds
its clicks back through the same ``add_clicks`` and ``labelling.human_figures`` the writer
uses, so a rebuilt figure and a kept one cannot differ in definition; with ``relabel`` it
judges each recipient's clicks again first (``labelling.judge``, as the writer does). Running
either twice changes nothing.

Clicks are read a page of recipients at a time, all of each recipient's clicks together,
since a recipient's figures (a unique clicker, a sweep) need all of them.

One campaign is rebuilt in one transaction, so a report never reads it half done. On
PostgreSQL it holds the campaign's advisory lock (``labelling.lock_campaign``): writers
storing the campaign's clicks finish first, and the next ones wait for the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.clicks.aggregates import TABLES, Later, add_clicks
from app.clicks.labelling import (
    EmailFacts,
    apply_verdicts,
    human_figures,
    judge,
    lock_campaign,
    relabel,
    stored_clicks,
)
from app.clicks.machines import DEFAULT_THRESHOLDS, Thresholds
from app.clicks.opens import add_opens
from app.clicks.statements import dialect_insert
from app.models import Click, Conversion, ConversionStats, EmailOpen, OpenRecipient, OpenStats

# In the writer's global order, so a rebuild and a writer never deadlock.
AGGREGATES = TABLES
RECIPIENTS_PER_PAGE = 2000


def click_count(session: Session, campaign_id: int) -> int:
    """How many clicks a rebuild of ``campaign_id`` will read (for a progress bar)."""
    return int(session.scalar(select(func.count()).where(Click.campaign_id == campaign_id)) or 0)


def rebuild_campaign(
    session: Session,
    campaign_id: int,
    progress: Callable[[int], None] | None = None,
    *,
    relabel_clicks: bool = False,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    only: ColumnElement[bool] | None = None,
) -> int:
    """Recompute every aggregate of ``campaign_id`` from its clicks; returns the clicks read.

    With ``relabel_clicks``, each click is judged again first and its stored label
    rewritten where the verdict changed. With ``only``, a condition on ``Click``, the
    aggregates count only the clicks it holds for (retention rebuilds a campaign without
    the month it is about to drop). Does not commit: the caller commits, which makes the
    whole rebuild visible at once. ``progress`` is told how many clicks each page added.
    """
    connection = session.connection()
    lock_campaign(connection, campaign_id)
    insert = dialect_insert(session)
    for model in AGGREGATES:
        connection.execute(delete(model).where(model.campaign_id == campaign_id))
    done = 0
    after = -1
    # Every row is written once at the end, not rewritten page after page.
    later = Later()
    while True:
        page = select(Click.recipient_id).where(
            Click.campaign_id == campaign_id, Click.recipient_id > after
        )
        if only is not None:
            page = page.where(only)
        recipients = list(
            connection.scalars(
                page.group_by(Click.recipient_id)
                .order_by(Click.recipient_id)
                .limit(RECIPIENTS_PER_PAGE)
            )
        )
        if not recipients:
            later.write(connection, insert)
            _rebuild_opens_and_conversions(connection, insert, campaign_id)
            return done
        clicks = stored_clicks(connection, [(campaign_id, r) for r in recipients], only)
        if relabel_clicks:
            verdicts = judge(clicks, EmailFacts(connection, clicks), thresholds)
            relabel(connection, apply_verdicts(clicks, verdicts))
        clicks.sort(key=lambda c: (c["clicked_at"], c["id"]))
        add_clicks(connection, insert, clicks, human_figures(clicks), later)
        done += len(clicks)
        after = recipients[-1]
        if progress is not None:
            progress(len(clicks))


OPENS_PER_PAGE = 20_000


def _rebuild_opens_and_conversions(connection: Connection, insert: Any, campaign_id: int) -> None:
    """The funnel's other aggregates, from the stored opens (as labelled) and orders: the
    openers and viewers and the per-variant open counters, through the writer's own
    ``add_opens``, oldest open first so each recipient's first open is the one kept; and
    the orders and their value per link and currency."""
    for model in (OpenRecipient, OpenStats, ConversionStats):
        connection.execute(delete(model).where(model.campaign_id == campaign_id))
    columns = [
        EmailOpen.id,
        EmailOpen.opened_at,
        EmailOpen.campaign_id,
        EmailOpen.variant_id,
        EmailOpen.recipient_id,
        EmailOpen.label,
    ]
    after: tuple[Any, int] | None = None
    while True:
        page = select(*columns).where(EmailOpen.campaign_id == campaign_id)
        if after is not None:
            at, row_id = after  # typed, so SQLite compares times as it stores them
            page = page.where(
                tuple_(EmailOpen.opened_at, EmailOpen.id)
                > tuple_(literal(at, EmailOpen.opened_at.type), literal(row_id, EmailOpen.id.type))
            )
        rows = connection.execute(
            page.order_by(EmailOpen.opened_at, EmailOpen.id).limit(OPENS_PER_PAGE)
        ).all()
        if not rows:
            break
        add_opens(connection, insert, [dict(row._mapping) for row in rows])
        after = (rows[-1].opened_at, rows[-1].id)
    currency = func.coalesce(Conversion.currency, "")
    connection.execute(
        insert(ConversionStats).from_select(
            ["placement_id", "currency", "campaign_id", "conversions", "value_micros"],
            select(
                Conversion.placement_id,
                currency,
                Conversion.campaign_id,
                func.count(),
                func.coalesce(func.sum(Conversion.value_micros), 0),
            )
            .where(Conversion.campaign_id == campaign_id)
            .group_by(Conversion.placement_id, currency, Conversion.campaign_id),
        )
    )
