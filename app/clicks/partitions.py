"""The click table's months on PostgreSQL: partitions made ahead, and old months dropped.

Since migration 0012, PostgreSQL keeps ``click`` as one partition per calendar month (UTC) of
``clicked_at``, named ``click_YYYY_MM``, plus ``click_default`` for any click whose month has
no partition yet, so a click is never refused. SQLite keeps one table; there, ``ensure_months``
does nothing and ``drop_month`` deletes the month's rows.

A month is made ahead of its clicks: the writer makes the months it sees and the next
``AHEAD`` ones, the first time it sees a month (``ClickWriter``), and ``clickmap clicks
partitions`` does the same from the clock. A partition is created as a table of its own and
then attached, which needs only a ``SHARE UPDATE EXCLUSIVE`` lock on ``click``, so the writers
keep inserting meanwhile (``CREATE TABLE ... PARTITION OF`` would lock them out). Clicks of
that month already in the default partition move into it first, or the attach would refuse.

``drop_month`` is retention: it removes a month of clicks at once (detaching and dropping
its partition instead of deleting row by row) and, in the same transaction, rebuilds the
aggregates of every campaign that had clicks in it from the clicks that remain
(``app.clicks.rebuild``), so no report counts a click that is gone.

Every statement here runs with a ``lock_timeout`` (and the writer's with a
``statement_timeout``): a queued lock request on ``click`` would make every later reader
and writer queue behind it. Pure SQLAlchemy: no Flask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import or_, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.clicks.labelling import lock_campaign, take_write_lock
from app.clicks.rebuild import rebuild_campaign
from app.models import Click

AHEAD = 2  # months made beyond the latest one seen (or the current one)
DEFAULT = "click_default"
_NAME = re.compile(r"^click_(\d{4})_(\d{2})$")
# The advisory lock that one maker of partitions holds at a time. Negative: campaign ids,
# which writers and rebuilds lock in the same one-number key space, are positive.
_LOCK = -2_020_202_011


def month_of(moment: datetime) -> date:
    """The first day of ``moment``'s month, in UTC."""
    return moment.astimezone(UTC).date().replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_from(month: date, count: int) -> list[date]:
    """``month`` and the ``count`` months after it."""
    found = [month]
    for _ in range(count):
        found.append(next_month(found[-1]))
    return found


def parse_month(value: str) -> date:
    """``YYYY-MM`` as the first day of that month; ``ValueError`` otherwise."""
    if not re.fullmatch(r"\d{4}-\d{2}", value):
        raise ValueError(f"a month is written YYYY-MM, not {value!r}")
    return datetime.strptime(value, "%Y-%m").date()


def partition_name(month: date) -> str:
    return f"click_{month.year:04d}_{month.month:02d}"


def _bounds(month: date) -> dict[str, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = next_month(month)
    return {"lo": start, "hi": datetime(end_month.year, end_month.month, 1, tzinfo=UTC)}


def _literal(moment: datetime) -> str:
    return f"'{moment:%Y-%m-%d %H:%M:%S}+00'"


def is_partitioned(connection: Connection) -> bool:
    """Whether ``click`` is partitioned here (PostgreSQL from migration 0012 on)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('click')")
    ).scalar()
    return kind == "p"


def existing_months(connection: Connection) -> set[date]:
    """The months that have a partition."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('click')"
        )
    ).scalars()
    found = set()
    for name in names:
        match = _NAME.match(name)
        if match:
            found.add(date(int(match[1]), int(match[2]), 1))
    return found


def set_timeouts(connection: Connection, lock: str, statement: str | None = None) -> None:
    """PostgreSQL: bound this transaction's waits for locks (and its statements)."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": lock})
    if statement is not None:
        connection.execute(
            text("SELECT set_config('statement_timeout', :t, true)"), {"t": statement}
        )


def ensure_months(connection: Connection, months: Iterable[date]) -> list[str]:
    """Create the partitions of ``months`` that do not exist yet; returns their names.

    Holds one advisory lock for the transaction, so writers on many hosts make each month
    once. The caller owns the transaction (and sets its timeouts).
    """
    wanted = set(months)
    if not wanted or not is_partitioned(connection):
        return []
    if wanted <= existing_months(connection):
        return []
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    created = []
    for month in sorted(wanted - existing_months(connection)):
        _create(connection, month)
        created.append(partition_name(month))
    return created


def _create(connection: Connection, month: date) -> None:
    name, bounds = partition_name(month), _bounds(month)
    # (Only names and bounds made here from a date are spliced into the SQL.)
    connection.execute(text(f"CREATE TABLE {name} (LIKE click INCLUDING DEFAULTS)"))
    # The default partition is locked first, so no click of this month lands in it between
    # the move and the attach (the attach would then refuse).
    connection.execute(text(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE"))
    connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE clicked_at >= :lo AND clicked_at < :hi "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    connection.execute(
        text(
            f"ALTER TABLE click ATTACH PARTITION {name} "
            f"FOR VALUES FROM ({_literal(bounds['lo'])}) TO ({_literal(bounds['hi'])})"
        )
    )


@dataclass
class Maintenance:
    """What ``maintain`` did."""

    created: list[str] = field(default_factory=list)
    months: list[date] = field(default_factory=list)  # every month with a partition, after
    in_default: int = 0  # clicks still in the default partition (none, unless out of range)


def maintain(connection: Connection, today: date, ahead: int = AHEAD) -> Maintenance:
    """Make the partitions of ``today``'s month and the ``ahead`` months after it, and of
    every month that has clicks in the default partition (which moves them there)."""
    done = Maintenance()
    if not is_partitioned(connection):
        return done
    stranded = connection.execute(
        text(
            f"SELECT DISTINCT CAST(date_trunc('month', clicked_at AT TIME ZONE 'UTC') AS date) "  # noqa: S608
            f"FROM {DEFAULT}"
        )
    ).scalars()
    wanted = set(months_from(today.replace(day=1), ahead)) | set(stranded)
    done.created = ensure_months(connection, wanted)
    done.months = sorted(existing_months(connection))
    done.in_default = int(connection.execute(text(f"SELECT count(*) FROM {DEFAULT}")).scalar() or 0)  # noqa: S608
    return done


def clicks_in_month(connection: Connection, month: date) -> dict[int, int]:
    """``campaign id -> clicks`` stored in ``month``."""
    rows = connection.execute(
        text(
            "SELECT campaign_id, count(*) FROM click WHERE clicked_at >= :lo AND clicked_at < :hi "
            "GROUP BY campaign_id ORDER BY campaign_id"
        ),
        _bind(connection, _bounds(month)),
    )
    return {int(c): int(n) for c, n in rows}


def _bind(connection: Connection, bounds: dict[str, datetime]) -> dict[str, object]:
    # SQLite keeps times as naive UTC text (``models.UTCDateTime``).
    if connection.dialect.name == "sqlite":
        return {k: f"{v:%Y-%m-%d %H:%M:%S.%f}" for k, v in bounds.items()}
    return dict(bounds)


class MonthChanged(Exception):
    """Clicks of the month being dropped arrived for a campaign that was not rebuilt."""


def drop_month(
    session: Session, month: date, progress: Callable[[int, int], None] | None = None
) -> dict[int, int]:
    """Remove every click of ``month`` and rebuild the aggregates of the campaigns that had
    some; returns ``campaign id -> clicks removed``. Does not commit: the caller commits,
    and reports see the month gone and the figures without it at the same moment.

    The campaigns are locked first, as a rebuild locks them (their writers finish, the next
    ones wait), and rebuilt from every click but the month's. Only then is ``click`` itself
    locked, to detach and drop the month's partition on PostgreSQL (or delete its rows), so
    the table is held exclusively for the drop and the commit alone, not for the rebuilds;
    campaigns first, then the table, is the order writers take them in, so none waits on
    the other in a cycle. Should a click of the month have arrived meanwhile for another
    campaign (a late spool replay), ``MonthChanged`` is raised and nothing is dropped.
    ``progress`` is told each campaign rebuilt and the clicks it read.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        take_write_lock(connection)  # before reading: no writer commits in between
    removed = clicks_in_month(connection, month)
    for campaign_id in removed:
        lock_campaign(connection, campaign_id)
    bounds = _bounds(month)
    outside = or_(Click.clicked_at < bounds["lo"], Click.clicked_at >= bounds["hi"])
    for campaign_id in removed:
        read = rebuild_campaign(session, campaign_id, only=outside)
        if progress is not None:
            progress(campaign_id, read)
    if is_partitioned(connection) and month in existing_months(connection):
        name = partition_name(month)
        connection.execute(text(f"ALTER TABLE click DETACH PARTITION {name}"))
        late = set(connection.execute(text(f"SELECT DISTINCT campaign_id FROM {name}")).scalars())  # noqa: S608
        if not late <= set(removed):
            raise MonthChanged(f"clicks of {month:%Y-%m} arrived meanwhile for other campaigns")
        connection.execute(text(f"DROP TABLE {name}"))
    # What is left: the month's rows in the default partition, or all of them on SQLite
    # (where the write lock has kept every writer out since the count).
    delete = "DELETE FROM click WHERE clicked_at >= :lo AND clicked_at < :hi"
    if connection.dialect.name == "postgresql":
        late = set(connection.execute(text(delete + " RETURNING campaign_id"), bounds).scalars())
        if not late <= set(removed):
            raise MonthChanged(f"clicks of {month:%Y-%m} arrived meanwhile for other campaigns")
    else:
        connection.execute(text(delete), _bind(connection, bounds))
    return removed
