"""Rebuilding a campaign's report aggregates exactly from its raw clicks.

The writer keeps the aggregates click by click (``app.clicks.aggregates.add_clicks``). When
they may be wrong, they need recomputing from the clicks themselves: after a restore from a
backup, a bug fixed, or a rule that relabels clicks. ``rebuild_campaign`` deletes one
campaign's aggregate rows and adds its clicks back, in time order, through the same
``add_clicks`` the writer uses, so a rebuilt figure and a kept one cannot differ in
definition. Running it twice changes nothing.

One campaign is rebuilt in one transaction, so a report never reads it half done, and a
writer storing new clicks meanwhile stays exact. A click the writer committed before the
rebuild's reads is counted once, by the rebuild, because its aggregate rows are deleted with
the rest. A click committed later adds its increments after the rebuild commits: on
PostgreSQL its updates wait for the rebuild's row locks, and on SQLite writes take turns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.clicks.aggregates import TABLES, add_clicks
from app.clicks.statements import dialect_insert
from app.models import Click

# In the writer's global order, so a rebuild and a writer never deadlock.
AGGREGATES = TABLES
BATCH = 5000
_COLUMNS = (
    Click.id,
    Click.clicked_at,
    Click.campaign_id,
    Click.variant_id,
    Click.part,
    Click.placement_id,
    Click.recipient_id,
    Click.device,
)


def click_count(session: Session, campaign_id: int) -> int:
    """How many clicks a rebuild of ``campaign_id`` will read (for a progress bar)."""
    return int(session.scalar(select(func.count()).where(Click.campaign_id == campaign_id)) or 0)


def rebuild_campaign(
    session: Session, campaign_id: int, progress: Callable[[int], None] | None = None
) -> int:
    """Recompute every aggregate of ``campaign_id`` from its clicks; returns the clicks read.

    Does not commit: the caller commits, which makes the whole rebuild visible at once.
    ``progress`` is told how many clicks each batch added.
    """
    connection = session.connection()
    insert = dialect_insert(session)
    for model in AGGREGATES:
        connection.execute(delete(model).where(model.campaign_id == campaign_id))
    done = 0
    after: tuple[datetime, int] | None = None
    while True:
        query = select(*_COLUMNS).where(Click.campaign_id == campaign_id)
        if after is not None:
            moment, row_id = after
            query = query.where(
                or_(Click.clicked_at > moment, and_(Click.clicked_at == moment, Click.id > row_id))
            )
        rows = connection.execute(query.order_by(Click.clicked_at, Click.id).limit(BATCH)).all()
        if not rows:
            return done
        add_clicks(connection, insert, [dict(row._mapping) for row in rows])
        done += len(rows)
        after = (rows[-1].clicked_at, rows[-1].id)
        if progress is not None:
            progress(len(rows))
