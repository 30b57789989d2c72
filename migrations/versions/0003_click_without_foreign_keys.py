"""click without foreign keys

Drops the four foreign keys of ``click`` (campaign, variant, placement, recipient). The click
writer inserts thousands of clicks per transaction, and checking four parents for every row
cost PostgreSQL about 17 of its 30 µs of server time per click.

Integrity stays enforced in the same transaction: every stored click inserts or updates its
``placement_recipient`` row, whose foreign keys (placement, recipient, campaign; ON DELETE
CASCADE) reject a click of a placement or recipient removed for good, and the writer then
drops such clicks (``app.clicks.writer.ClickWriter._store``). An existing pair row implies its
parents exist, as it is deleted with them. What no longer happens is the cascade: removing a
campaign, placement or recipient for good must delete its clicks itself.

On SQLite the table is rebuilt (batch mode): nothing references ``click``, so this is safe
with foreign keys on. On PostgreSQL the constraints are dropped in place.

Downgrade restores the keys (ON DELETE CASCADE) after deleting the clicks whose parents are
gone, which the cascade would have deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, referred table), as 0001 created them.
PARENTS: tuple[tuple[str, str], ...] = (
    ("campaign_id", "campaign"),
    ("placement_id", "placement"),
    ("recipient_id", "recipient"),
    ("variant_id", "variant"),
)


def _name(column: str, referred: str) -> str:
    return f"fk_click_{column}_{referred}"


def upgrade() -> None:
    with op.batch_alter_table("click", schema=None) as batch_op:
        for column, referred in PARENTS:
            batch_op.drop_constraint(op.f(_name(column, referred)), type_="foreignkey")


def downgrade() -> None:
    # The cascade would have removed these; the keys cannot be created while they exist.
    # (Only the table names, constants, are spliced into the SQL.)
    for column, referred in PARENTS:
        op.execute(
            sa.text(
                f"DELETE FROM click WHERE NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM {referred} WHERE {referred}.id = click.{column})"
            )
        )
    with op.batch_alter_table("click", schema=None) as batch_op:
        for column, referred in PARENTS:
            batch_op.create_foreign_key(
                op.f(_name(column, referred)), referred, [column], ["id"], ondelete="CASCADE"
            )
