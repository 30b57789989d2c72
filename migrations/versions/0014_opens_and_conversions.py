"""opens and conversions: the funnel's sent, viewed and converted steps

Adds to ``campaign`` whether its emails carry the open pixel (``track_opens``, on) and the
query parameter that hands a click's id to the destination (``click_param``, none), and the
tables behind the funnel (docs/funnel.md): ``sent_email`` (who was personalized which
variant), ``email_open`` (each pixel load, labelled human, proxy or machine) with its
aggregates ``open_recipient`` and ``open_stats``, and ``conversion`` (orders reported against
a click id) with ``conversion_stats``.

Existing campaigns get the pixel in emails personalized from now on; nothing already sent
changes. Downgrading drops the tables and the columns.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 10:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    # Plain ALTER TABLE, never a batch copy: see 0010 (a copy of ``campaign`` on SQLite would
    # cascade into every table that references it).
    op.add_column(
        "campaign",
        sa.Column("track_opens", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("campaign", sa.Column("click_param", sa.String(length=40), nullable=True))
    op.create_table(
        "sent_email",
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        _fk("sent_email", "variant_id", "variant"),
        _fk("sent_email", "recipient_id", "recipient"),
        _fk("sent_email", "campaign_id", "campaign"),
        sa.PrimaryKeyConstraint("variant_id", "recipient_id", name=op.f("pk_sent_email")),
    )
    op.create_index(op.f("ix_sent_email_campaign_id"), "sent_email", ["campaign_id"])
    op.create_table(
        "email_open",
        sa.Column("id", BigId, nullable=False),
        sa.Column("open_id", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.String(length=64), nullable=False),
        sa.Column("certainty", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_open")),
        sa.UniqueConstraint("open_id", name=op.f("uq_email_open_open_id")),
    )
    op.create_index("ix_email_open_campaign_opened_at", "email_open", ["campaign_id", "opened_at"])
    op.create_index("ix_email_open_variant_recipient", "email_open", ["variant_id", "recipient_id"])
    op.create_table(
        "open_recipient",
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("viewer", sa.Boolean(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=False),
        _fk("open_recipient", "variant_id", "variant"),
        _fk("open_recipient", "recipient_id", "recipient"),
        _fk("open_recipient", "campaign_id", "campaign"),
        sa.PrimaryKeyConstraint(
            "variant_id", "recipient_id", "viewer", name=op.f("pk_open_recipient")
        ),
    )
    op.create_table(
        "open_stats",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in ("total", "human", "proxy", "machine", "openers", "viewers")
        ),
        _fk("open_stats", "campaign_id", "campaign"),
        _fk("open_stats", "variant_id", "variant"),
        sa.PrimaryKeyConstraint("campaign_id", "variant_id", name=op.f("pk_open_stats")),
    )
    op.create_table(
        "conversion",
        sa.Column("id", BigId, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("click_id", sa.String(length=32), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("placement_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversion", "campaign_id", "campaign"),
        _fk("conversion", "placement_id", "placement"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion")),
        sa.UniqueConstraint(
            "campaign_id", "order_id", name=op.f("uq_conversion_campaign_id_order_id")
        ),
    )
    op.create_index(
        "ix_conversion_variant", "conversion", ["campaign_id", "variant_id", "recipient_id"]
    )
    op.create_table(
        "conversion_stats",
        sa.Column("placement_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=False),
        _fk("conversion_stats", "placement_id", "placement"),
        _fk("conversion_stats", "campaign_id", "campaign"),
        sa.PrimaryKeyConstraint("placement_id", "currency", name=op.f("pk_conversion_stats")),
    )
    op.create_index(op.f("ix_conversion_stats_campaign_id"), "conversion_stats", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_conversion_stats_campaign_id"), table_name="conversion_stats")
    op.drop_table("conversion_stats")
    op.drop_index("ix_conversion_variant", table_name="conversion")
    op.drop_table("conversion")
    op.drop_table("open_stats")
    op.drop_table("open_recipient")
    op.drop_index("ix_email_open_variant_recipient", table_name="email_open")
    op.drop_index("ix_email_open_campaign_opened_at", table_name="email_open")
    op.drop_table("email_open")
    op.drop_index(op.f("ix_sent_email_campaign_id"), table_name="sent_email")
    op.drop_table("sent_email")
    # SQLite 3.35 and later drop a column in place (no copy, so no cascades; see upgrade).
    op.drop_column("campaign", "click_param")
    op.drop_column("campaign", "track_opens")
