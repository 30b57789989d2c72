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

from sqlalchemy import ColumnElement, delete, func, select
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
from app.clicks.statements import dialect_insert
from app.models import Click

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
