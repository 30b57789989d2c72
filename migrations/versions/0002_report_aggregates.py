"""report aggregates per variant part and per campaign

Adds the aggregates that keep the heatmap's default view flat as a campaign's clicks grow:
``part_clicker`` and ``campaign_clicker`` (who clicked anything, once per recipient),
``part_stats`` and ``campaign_stats`` (running totals and distinct clickers) and
``part_hourly`` (clicks per part, hour and device, without the link dimension).

The new tables are filled from the existing ``click`` rows in the same transaction, so an
upgraded install shows the same figures as one that recorded every click with the new
writer. The click writer only offers a recipient to ``part_clicker`` when it creates a new
``placement_recipient`` row, so the backfill must (and does) cover every clicker already
stored.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred}.id"],
        name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete="CASCADE",
    )


def _hour_of_click() -> str:
    """The UTC hour of ``click.clicked_at``, stored exactly as the writer stores an hour."""
    if op.get_bind().dialect.name == "postgresql":
        return "date_trunc('hour', clicked_at, 'UTC')"
    # SQLite keeps UTC wall time as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return "substr(clicked_at, 1, 13) || ':00:00.000000'"


def upgrade() -> None:
    op.create_table(
        "part_clicker",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        _fk("part_clicker", "campaign_id", "campaign"),
        _fk("part_clicker", "recipient_id", "recipient"),
        _fk("part_clicker", "variant_id", "variant"),
        sa.PrimaryKeyConstraint(
            "campaign_id", "variant_id", "part", "recipient_id", name=op.f("pk_part_clicker")
        ),
    )
    op.create_table(
        "campaign_clicker",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        _fk("campaign_clicker", "campaign_id", "campaign"),
        _fk("campaign_clicker", "recipient_id", "recipient"),
        sa.PrimaryKeyConstraint("campaign_id", "recipient_id", name=op.f("pk_campaign_clicker")),
    )
    op.create_table(
        "part_stats",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("unique", sa.BigInteger(), nullable=False),
        _fk("part_stats", "campaign_id", "campaign"),
        _fk("part_stats", "variant_id", "variant"),
        sa.PrimaryKeyConstraint("campaign_id", "variant_id", "part", name=op.f("pk_part_stats")),
    )
    op.create_table(
        "campaign_stats",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("unique", sa.BigInteger(), nullable=False),
        _fk("campaign_stats", "campaign_id", "campaign"),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_stats")),
    )
    op.create_table(
        "part_hourly",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.String(length=16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        _fk("part_hourly", "campaign_id", "campaign"),
        _fk("part_hourly", "variant_id", "variant"),
        sa.PrimaryKeyConstraint(
            "campaign_id", "variant_id", "part", "hour", "device", name=op.f("pk_part_hourly")
        ),
    )

    # Backfill from the raw clicks, the source every aggregate is derived from. (The only
    # text spliced into the SQL is the hour expression, a constant.)
    for statement in (
        """INSERT INTO part_clicker (campaign_id, variant_id, part, recipient_id)
           SELECT DISTINCT campaign_id, variant_id, part, recipient_id FROM click""",
        """INSERT INTO campaign_clicker (campaign_id, recipient_id)
           SELECT DISTINCT campaign_id, recipient_id FROM click""",
        """INSERT INTO part_stats (campaign_id, variant_id, part, total, "unique")
           SELECT campaign_id, variant_id, part, COUNT(*), COUNT(DISTINCT recipient_id)
           FROM click GROUP BY campaign_id, variant_id, part""",
        """INSERT INTO campaign_stats (campaign_id, total, "unique")
           SELECT campaign_id, COUNT(*), COUNT(DISTINCT recipient_id)
           FROM click GROUP BY campaign_id""",
        f"""INSERT INTO part_hourly (campaign_id, variant_id, part, hour, device, total)
            SELECT campaign_id, variant_id, part, {_hour_of_click()}, device, COUNT(*)
            FROM click GROUP BY campaign_id, variant_id, part, {_hour_of_click()}, device""",  # noqa: S608
    ):
        op.execute(sa.text(statement))


def downgrade() -> None:
    op.drop_table("part_hourly")
    op.drop_table("campaign_stats")
    op.drop_table("part_stats")
    op.drop_table("campaign_clicker")
    op.drop_table("part_clicker")
