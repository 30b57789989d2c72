"""user session version

Adds ``user_account.session_version``: every dashboard login cookie carries it, and a
cookie whose version is not the user's current one is refused, so logging out (or a new
password) ends every session of that user on the server, not just in the browser that
asked.

Existing users start at 0 and keep working. Cookies issued before this revision carry no
version, so whoever is logged in during the upgrade is asked to log in once more.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("session_version")
