"""placement management: the marketer's label and CTA flag, and who changed them

Adds to ``placement`` the marketer's own name for a link (``label``, shown instead of the
link's text where set) and whether it is a call to action (``cta``), and the table
``placement_change`` recording every change to either: the user, the field, the value
before and after, and when.

Existing placements start without a label and as no CTA, so reports read exactly as before
the upgrade. Downgrading drops the columns and the history with them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A bounded wait for the placement table's lock: the redirector reads it on every click
    # that misses its cache, so an upgrade under traffic fails fast and can be retried.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    # Plain ALTER TABLE, never a copy of the table: on SQLite a batch copy drops and
    # recreates ``placement``, and the cascades then delete every row that references a
    # link (its clicks' aggregates), with foreign keys on.
    op.add_column("placement", sa.Column("label", sa.String(length=200), nullable=True))
    op.add_column(
        "placement", sa.Column("cta", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_table(
        "placement_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("placement_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("old_value", sa.String(length=200), nullable=True),
        sa.Column("new_value", sa.String(length=200), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_placement_change_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["placement.id"],
            name=op.f("fk_placement_change_placement_id_placement"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_placement_change_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_placement_change")),
    )
    op.create_index(
        "ix_placement_change_placement", "placement_change", ["placement_id", "changed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_placement_change_placement", table_name="placement_change")
    op.drop_table("placement_change")
    # SQLite 3.35 and later drop a column in place (no copy, so no cascades; see upgrade).
    op.drop_column("placement", "cta")
    op.drop_column("placement", "label")
