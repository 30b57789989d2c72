"""click partitions: on PostgreSQL, ``click`` is split by month of ``clicked_at``

The table becomes a declarative range-partitioned table with one partition per calendar
month (UTC), named ``click_YYYY_MM``, and a default partition, ``click_default``, which takes
any click whose month has no partition yet, so no click is ever refused. Old months can then
be dropped whole (``clickmap clicks drop-month``) instead of deleted row by row, and a
month's indexes stay the size of a month.

A partitioned table's unique keys must hold the partition key, so the primary key becomes
``(id, clicked_at)`` and the click's identity ``(click_id, clicked_at)``. Both come from the
one spool record the redirector wrote, so a replayed click carries the same pair and still
conflicts with its first copy: the writer's ``ON CONFLICT (click_id, clicked_at) DO NOTHING``
keeps every replay out, as ``click_id`` alone did.

The upgrade moves every row: ``click`` is renamed, a partitioned ``click`` is created like
it (same columns, defaults and id sequence), with a partition for each month that has
clicks, for this month and the next two, and the default one; the rows are copied, the
keys and indexes built per partition, and the old table dropped. It holds ``click``'s lock
for as long as the copy takes: redirects are still answered and clicks wait in the spools
until the writers can store them again. After it, the click writer and ``clickmap clicks
partitions`` create months ahead.

SQLite keeps one unpartitioned table: nothing changes there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "click_unpartitioned"
# The secondary indexes, as 0001 and 0007 created them; rebuilt on the partitioned table.
INDEXES = {
    "ix_click_placement_clicked_at": "placement_id, clicked_at",
    "ix_click_campaign_clicked_at": "campaign_id, clicked_at",
    "ix_click_campaign_recipient": "campaign_id, recipient_id, clicked_at",
}
AHEAD = 2  # months created beyond the current one


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # lock_timeout is set for every migration (migrations/env.py): should a long query hold
    # ``click``, this fails fast instead of queueing every reader and writer behind it.
    op.execute("LOCK TABLE click IN ACCESS EXCLUSIVE MODE")
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('click', 'id')")).scalar()
    op.execute(f"ALTER TABLE click RENAME TO {OLD}")
    # The names go with the new table; the old one is dropped below, in this transaction.
    op.execute(f"ALTER TABLE {OLD} DROP CONSTRAINT pk_click, DROP CONSTRAINT uq_click_click_id")
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute(
        f"CREATE TABLE click (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (clicked_at)"
    )
    if sequence:  # the ids go on from where they were
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY click.id")
    op.execute("CREATE TABLE click_default PARTITION OF click DEFAULT")
    months = {
        row[0].date()
        for row in bind.execute(
            sa.text(
                f"SELECT DISTINCT date_trunc('month', clicked_at AT TIME ZONE 'UTC') FROM {OLD}"  # noqa: S608
            )
        )
    }
    month = datetime.now(UTC).date().replace(day=1)
    for _ in range(AHEAD + 1):
        months.add(month)
        month = _next(month)
    for month in sorted(months):
        op.execute(
            f"CREATE TABLE click_{month.year:04d}_{month.month:02d} PARTITION OF click "
            f"FOR VALUES FROM ({_bound(month)}) TO ({_bound(_next(month))})"
        )
    op.execute(f"INSERT INTO click SELECT * FROM {OLD}")  # noqa: S608
    # Keys and indexes after the rows: one build per partition instead of row by row.
    op.execute("ALTER TABLE click ADD CONSTRAINT pk_click PRIMARY KEY (id, clicked_at)")
    op.execute("ALTER TABLE click ADD CONSTRAINT uq_click_click_id UNIQUE (click_id, clicked_at)")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON click ({columns})")
    op.execute(f"DROP TABLE {OLD}")


def downgrade() -> None:
    """One table again, every row kept (a click id stored twice, which the upgrade's key
    would have allowed in two months, makes this fail rather than lose either)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE click IN ACCESS EXCLUSIVE MODE")
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('click', 'id')")).scalar()
    op.execute("ALTER TABLE click RENAME TO click_partitioned")
    op.execute(
        "ALTER TABLE click_partitioned DROP CONSTRAINT pk_click, DROP CONSTRAINT uq_click_click_id"
    )
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute("CREATE TABLE click (LIKE click_partitioned INCLUDING DEFAULTS)")
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY click.id")
    op.execute("INSERT INTO click SELECT * FROM click_partitioned")
    op.execute("ALTER TABLE click ADD CONSTRAINT pk_click PRIMARY KEY (id)")
    op.execute("ALTER TABLE click ADD CONSTRAINT uq_click_click_id UNIQUE (click_id)")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON click ({columns})")
    op.execute("DROP TABLE click_partitioned")  # and its partitions
