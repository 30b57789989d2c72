"""delivery events: the ESPs' webhooks, each delivery's status, and Mailgun's used tokens

Adds to ``delivery`` its ``status`` (``delivered``, ``bounced``, ``complained`` or
``dropped``) and when it left ``delivered`` (``status_at``); the table ``delivery_event``
keeping each event an ESP reported, once (``idempotency_key`` is unique); and the table
``webhook_token`` of webhook tokens already accepted, so a replayed Mailgun request is refused
by every worker and instance.

Existing deliveries start as ``delivered``, so reports read exactly as before the upgrade.
Downgrading drops the columns and both tables with them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 10:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A bounded wait for the delivery table's lock: the deliveries API and the click writer's
    # labelling read it, so an upgrade under traffic fails fast and can be retried.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    # Plain ALTER TABLE, never a copy of the table (a batch copy on SQLite would recreate
    # ``delivery``): a constant default fills existing rows without rewriting them.
    op.add_column(
        "delivery",
        sa.Column("status", sa.String(length=16), nullable=False, server_default="delivered"),
    )
    op.add_column("delivery", sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "delivery_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("esp", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("raw_type", sa.String(length=64), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=True),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_delivery_event_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variant.id"],
            name=op.f("fk_delivery_event_variant_id_variant"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipient.id"],
            name=op.f("fk_delivery_event_recipient_id_recipient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_event")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_delivery_event_idempotency_key")),
    )
    op.create_index("ix_delivery_event_campaign_event", "delivery_event", ["campaign_id", "event"])
    op.create_table(
        "webhook_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("esp", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_webhook_token")),
    )
    op.create_index("ix_webhook_token_seen_at", "webhook_token", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_token_seen_at", table_name="webhook_token")
    op.drop_table("webhook_token")
    op.drop_index("ix_delivery_event_campaign_event", table_name="delivery_event")
    op.drop_table("delivery_event")
    # SQLite 3.35 and later drop a column in place (no copy, so no cascades; see upgrade).
    op.drop_column("delivery", "status_at")
    op.drop_column("delivery", "status")
