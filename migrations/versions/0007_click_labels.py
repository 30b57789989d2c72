"""click labels: human or machine, with reasons, and human figures in every aggregate

Adds to ``click`` the request's ``purpose`` header and the label the writer gives each
click (``label``, ``reasons``, ``certainty``; see ``app.clicks.labelling``), with an index
on (campaign, recipient, time) that the writer reads a recipient's clicks through. The
aggregates gain the same figures over human clicks only (``human_clicks``,
``human_total``, ``human_unique``), and ``machine_reasons`` counts machine clicks per
variant part and reason.

Clicks stored before this revision were never judged: they start as human, and every human
figure starts equal to its all-clicks figure, so reports read exactly as before the
upgrade. ``clickmap clicks reclassify`` then labels them by the rules and rebuilds the
aggregates.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, its all-clicks counter, the human counter added beside it)
_HUMAN_COLUMNS = (
    ("placement_recipient", "clicks", "human_clicks"),
    ("placement_stats", "total", "human_total"),
    ("placement_stats", "unique", "human_unique"),
    ("part_stats", "total", "human_total"),
    ("part_stats", "unique", "human_unique"),
    ("campaign_stats", "total", "human_total"),
    ("campaign_stats", "unique", "human_unique"),
    ("click_hourly", "total", "human_total"),
    ("part_hourly", "total", "human_total"),
)


def upgrade() -> None:
    # A bounded wait for each table's lock: an upgrade under live traffic fails fast and
    # can be retried, rather than queueing every click writer behind it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    with op.batch_alter_table("click") as batch:
        batch.add_column(sa.Column("purpose", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("label", sa.String(length=8), nullable=False, server_default="human")
        )
        batch.add_column(
            sa.Column("reasons", sa.String(length=128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("certainty", sa.String(length=8), nullable=True))
    op.create_index(
        "ix_click_campaign_recipient", "click", ["campaign_id", "recipient_id", "clicked_at"]
    )
    for table, counter, human in _HUMAN_COLUMNS:
        big = sa.Integer() if table == "placement_recipient" else sa.BigInteger()
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(human, big, nullable=False, server_default="0"))
        op.execute(f'UPDATE {table} SET {human} = "{counter}"')  # noqa: S608
    op.create_table(
        "machine_reasons",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_machine_reasons_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variant.id"],
            name=op.f("fk_machine_reasons_variant_id_variant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "variant_id", "part", "reason", name=op.f("pk_machine_reasons")
        ),
    )


def downgrade() -> None:
    op.drop_table("machine_reasons")
    for table, _counter, human in reversed(_HUMAN_COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(human)
    op.drop_index("ix_click_campaign_recipient", table_name="click")
    with op.batch_alter_table("click") as batch:
        batch.drop_column("certainty")
        batch.drop_column("reasons")
        batch.drop_column("label")
        batch.drop_column("purpose")
