"""login attempts

Adds ``login_attempt``: the dashboard's failed (and in-flight) login attempts, so the login
throttle counts them in the database, shared by every worker process and instance, instead
of in each process's memory. Rows live for the throttle's window and are pruned after it, so
nothing needs carrying over: the table starts empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempt")),
    )
    op.create_index(
        "ix_login_attempt_username_network",
        "login_attempt",
        ["username", "network", "attempted_at"],
    )
    op.create_index("ix_login_attempt_network", "login_attempt", ["network", "attempted_at"])
    op.create_index("ix_login_attempt_attempted_at", "login_attempt", ["attempted_at"])


def downgrade() -> None:
    op.drop_table("login_attempt")
