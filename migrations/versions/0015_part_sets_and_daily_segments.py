"""part sets and daily segments: every filtered figure from sets, none from raw clicks

Adds to ``part_stats`` the two sets of recipient ids of the part (everyone who clicked any
of its links, and those who clicked as a human), so a scope of several parts (a variant's
HTML and AMP, as the funnel counts it) unions two sets instead of counting its clickers row
by row. Adds ``click_segment_daily``: ``click_segment`` (clicks and sets per link, device,
email client and country) by UTC day, so a segment within a period reads cells too
(``app.clicks.clicker_sets``).

The upgrade fills both from the stored clicks and their labels, a campaign at a time, reading
its clicks as a stream so that memory holds only the sets. The downgrade drops them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 15:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from pyroaring import BitMap

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    # Plain ADD COLUMN, never a batch copy: two nullable columns need no rewrite.
    op.add_column("part_stats", sa.Column("clickers", sa.LargeBinary(), nullable=True))
    op.add_column("part_stats", sa.Column("human_clickers", sa.LargeBinary(), nullable=True))
    op.create_table(
        "click_segment_daily",
        sa.Column(
            "placement_id",
            sa.Integer(),
            sa.ForeignKey("placement.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("country", sa.String(2), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaign.id", ondelete="CASCADE")),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("human_total", sa.BigInteger(), nullable=False),
        sa.Column("clickers", sa.LargeBinary(), nullable=True),
        sa.Column("human_clickers", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_click_segment_daily_campaign_id", "click_segment_daily", ["campaign_id"])
    for (campaign,) in bind.execute(sa.text("SELECT id FROM campaign ORDER BY id")):
        _fill(bind, int(campaign))


def _blob(members: BitMap) -> bytes | None:
    if not members:
        return None
    members.run_optimize()
    return bytes(members.serialize())


def _fill(bind: sa.Connection, campaign: int) -> None:
    parts: dict[tuple[int, str], tuple[BitMap, BitMap]] = {}
    days: dict[tuple[Any, ...], list[Any]] = {}
    clicks = bind.execute(
        sa.text(
            "SELECT placement_id, clicked_at, device, client, country, recipient_id, label, "
            "variant_id, part FROM click WHERE campaign_id = :c"
        ).execution_options(stream_results=True),  # on the statement: not the connection's
        {"c": campaign},
    )
    for placement, clicked_at, device, client, country, recipient, label, variant, part in clicks:
        human = label == "human"
        moment = datetime.fromisoformat(clicked_at) if isinstance(clicked_at, str) else clicked_at
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        everyone, humans = parts.setdefault((variant, part), (BitMap(), BitMap()))
        everyone.add(recipient)
        key = (
            placement,
            moment.replace(hour=0, minute=0, second=0, microsecond=0),
            device,
            client or "",
            country or "",
        )
        cell = days.setdefault(key, [0, 0, BitMap(), BitMap()])
        cell[0] += 1
        cell[2].add(recipient)
        if human:
            humans.add(recipient)
            cell[1] += 1
            cell[3].add(recipient)
    if parts:
        bind.execute(
            sa.text(
                "UPDATE part_stats SET clickers = :a, human_clickers = :m "
                "WHERE campaign_id = :c AND variant_id = :v AND part = :p"
            ),
            [
                {"c": campaign, "v": v, "p": p, "a": _blob(a), "m": _blob(m)}
                for (v, p), (a, m) in sorted(parts.items())
            ],
        )
    if days:
        sqlite = bind.dialect.name == "sqlite"  # times as the application stores them there
        bind.execute(
            sa.text(
                "INSERT INTO click_segment_daily (placement_id, day, device, client, country, "
                "campaign_id, total, human_total, clickers, human_clickers) "
                "VALUES (:p, :day, :d, :cl, :co, :c, :t, :ht, :a, :m)"
            ),
            [
                {
                    "p": placement,
                    "day": day.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else day,
                    "d": device,
                    "cl": client,
                    "co": country,
                    "c": campaign,
                    "t": total,
                    "ht": human_total,
                    "a": _blob(everyone),
                    "m": _blob(humans),
                }
                for (placement, day, device, client, country), (
                    total,
                    human_total,
                    everyone,
                    humans,
                ) in sorted(days.items())
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_click_segment_daily_campaign_id", table_name="click_segment_daily")
    op.drop_table("click_segment_daily")
    with op.batch_alter_table("part_stats") as batch:
        batch.drop_column("human_clickers")
        batch.drop_column("clickers")
