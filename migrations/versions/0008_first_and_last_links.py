"""first and last links: per link, the people who clicked it first and last in the email

Adds four counters to ``placement_stats``: how many recipients' first click in the email
part was on this link, and how many recipients' last, of all clicks and of the clicks
labelled human. The writer keeps them by difference, from each recipient's clicks
(``app.clicks.labelling.human_figures``); here they are counted once from the stored clicks
with a window over each recipient's clicks per part (ties in time go to the lower link id,
as the writer breaks them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, clicks counted, which end)
_COLUMNS = (
    ("first_clickers", "1 = 1", "ASC"),
    ("last_clickers", "1 = 1", "DESC"),
    ("human_first_clickers", "label = 'human'", "ASC"),
    ("human_last_clickers", "label = 'human'", "DESC"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    with op.batch_alter_table("placement_stats") as batch:
        for column, _where, _order in _COLUMNS:
            batch.add_column(sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"))
    for column, where, order in _COLUMNS:
        op.execute(
            "CREATE TEMPORARY TABLE link_ends AS "  # noqa: S608
            "SELECT placement_id, count(*) AS n FROM ("
            "SELECT placement_id, row_number() OVER (PARTITION BY campaign_id, variant_id, "
            f"part, recipient_id ORDER BY clicked_at {order}, placement_id {order}) AS rank "
            f"FROM click WHERE {where}) AS ranked WHERE rank = 1 GROUP BY placement_id"
        )
        op.execute(
            f"UPDATE placement_stats SET {column} = COALESCE((SELECT n FROM link_ends "  # noqa: S608
            "WHERE link_ends.placement_id = placement_stats.placement_id), 0)"
        )
        op.execute("DROP TABLE link_ends")


def downgrade() -> None:
    with op.batch_alter_table("placement_stats") as batch:
        for column, _where, _order in reversed(_COLUMNS):
            batch.drop_column(column)
