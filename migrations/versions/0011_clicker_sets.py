"""clicker sets: exact unique clickers for filtered and segment views

Adds to ``click_hourly`` two compressed sets of recipient ids per (link, hour, device) cell:
everyone who clicked there, and those who clicked as a human (``app.clicks.clicker_sets``).
Adds the tables ``click_daily`` (the same per link, UTC day and device) and
``click_segment`` (clicks and the two sets per link, device, email client and country), and
``part_cell`` and ``cell_reasons`` (clicks, and machine clicks per reason, per variant part,
hour, device, client and country). Filtered views then union sets and add counters instead
of reading raw clicks.

The upgrade fills them all from the stored clicks, a campaign at a time, reading its clicks
as a stream so that memory holds only the sets. The downgrade drops them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from pyroaring import BitMap

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    # Plain ADD COLUMN (no table copy): click_hourly has no dependants, but a copy would
    # cost a rewrite of every row for two nullable columns.
    op.add_column("click_hourly", sa.Column("clickers", sa.LargeBinary(), nullable=True))
    op.add_column("click_hourly", sa.Column("human_clickers", sa.LargeBinary(), nullable=True))
    op.create_table(
        "click_segment",
        sa.Column(
            "placement_id",
            sa.Integer(),
            sa.ForeignKey("placement.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("country", sa.String(2), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaign.id", ondelete="CASCADE")),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("human_total", sa.BigInteger(), nullable=False),
        sa.Column("clickers", sa.LargeBinary(), nullable=True),
        sa.Column("human_clickers", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_click_segment_campaign_id", "click_segment", ["campaign_id"])
    op.create_table(
        "click_daily",
        sa.Column(
            "placement_id",
            sa.Integer(),
            sa.ForeignKey("placement.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaign.id", ondelete="CASCADE")),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("human_total", sa.BigInteger(), nullable=False),
        sa.Column("clickers", sa.LargeBinary(), nullable=True),
        sa.Column("human_clickers", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_click_daily_campaign_id", "click_daily", ["campaign_id"])
    for name, extra in (
        (
            "part_cell",
            [sa.Column("total", sa.BigInteger()), sa.Column("human_total", sa.BigInteger())],
        ),
        (
            "cell_reasons",
            [
                sa.Column("reason", sa.String(32), primary_key=True),
                sa.Column("clicks", sa.BigInteger()),
            ],
        ),
    ):
        op.create_table(
            name,
            sa.Column(
                "campaign_id",
                sa.Integer(),
                sa.ForeignKey("campaign.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column(
                "variant_id",
                sa.Integer(),
                sa.ForeignKey("variant.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("part", sa.String(8), primary_key=True),
            sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
            sa.Column("device", sa.String(16), primary_key=True),
            sa.Column("client", sa.String(64), primary_key=True),
            sa.Column("country", sa.String(2), primary_key=True),
            *extra,
        )
    for (campaign,) in bind.execute(sa.text("SELECT id FROM campaign ORDER BY id")):
        _fill(bind, int(campaign))


def _utc(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _blob(members: BitMap) -> bytes | None:
    if not members:
        return None
    members.run_optimize()
    return bytes(members.serialize())


def _fill(bind: sa.Connection, campaign: int) -> None:
    hourly: dict[tuple[Any, ...], tuple[BitMap, BitMap]] = {}
    segments: dict[tuple[Any, ...], list[Any]] = {}
    days: dict[tuple[Any, ...], list[Any]] = {}
    clicks = bind.execute(
        sa.text(
            "SELECT placement_id, clicked_at, device, client, country, recipient_id, label, "
            "variant_id, part, reasons FROM click WHERE campaign_id = :c"
        ).execution_options(stream_results=True),  # on the statement: not the connection's
        {"c": campaign},
    )
    cells: dict[tuple[Any, ...], list[int]] = {}
    reasons: dict[tuple[Any, ...], int] = {}
    for row in clicks:
        placement, clicked_at, device, client, country, recipient, label = row[:7]
        human = label == "human"
        hour = _utc(clicked_at).replace(minute=0, second=0, microsecond=0)
        cell_key = (row.variant_id, row.part, hour, device, client or "", country or "")
        counts = cells.setdefault(cell_key, [0, 0])
        counts[0] += 1
        counts[1] += human
        for reason in () if human else filter(None, (row.reasons or "").split(",")):
            reasons[(*cell_key, reason)] = reasons.get((*cell_key, reason), 0) + 1
        everyone, humans = hourly.setdefault((placement, hour, device), (BitMap(), BitMap()))
        everyone.add(recipient)
        day = days.setdefault((placement, hour.replace(hour=0), device), [0, 0, BitMap(), BitMap()])
        day[0] += 1
        day[2].add(recipient)
        if human:
            day[1] += 1
            day[3].add(recipient)
        cell = segments.setdefault(
            (placement, device, client or "", country or ""), [0, 0, BitMap(), BitMap()]
        )
        cell[0] += 1
        cell[2].add(recipient)
        if human:
            humans.add(recipient)
            cell[1] += 1
            cell[3].add(recipient)

    # Times as the application stores them: text on SQLite (``UTCDateTime``).
    def at(hour: datetime) -> Any:
        if bind.dialect.name == "sqlite":
            return hour.strftime("%Y-%m-%d %H:%M:%S.%f")
        return hour

    names = "campaign_id, variant_id, part, hour, device, client, country"
    values = ":c, :v, :p, :h, :d, :cl, :co"
    if cells:
        bind.execute(
            sa.text(
                f"INSERT INTO part_cell ({names}, total, human_total) VALUES ({values}, :t, :ht)"  # noqa: S608 (constants)
            ),
            [
                {
                    "c": campaign,
                    "v": v,
                    "p": p,
                    "h": at(h),
                    "d": d,
                    "cl": cl,
                    "co": co,
                    "t": t,
                    "ht": ht,
                }
                for (v, p, h, d, cl, co), (t, ht) in sorted(cells.items())
            ],
        )
    if reasons:
        bind.execute(
            sa.text(
                f"INSERT INTO cell_reasons ({names}, reason, clicks) VALUES ({values}, :r, :n)"  # noqa: S608 (constants)
            ),
            [
                {
                    "c": campaign,
                    "v": v,
                    "p": p,
                    "h": at(h),
                    "d": d,
                    "cl": cl,
                    "co": co,
                    "r": r,
                    "n": n,
                }
                for (v, p, h, d, cl, co, r), n in sorted(reasons.items())
            ],
        )
    # Update the hourly rows by the key as stored (SQLite keeps times as text).
    stored = bind.execute(
        sa.text("SELECT placement_id, hour, device FROM click_hourly WHERE campaign_id = :c"),
        {"c": campaign},
    ).all()
    updates = []
    for placement, raw_hour, device in stored:
        sets = hourly.get((placement, _utc(raw_hour), device))
        if sets is not None:
            updates.append(
                {
                    "p": placement,
                    "h": raw_hour,
                    "d": device,
                    "a": _blob(sets[0]),
                    "m": _blob(sets[1]),
                }
            )
    if updates:
        bind.execute(
            sa.text(
                "UPDATE click_hourly SET clickers = :a, human_clickers = :m "
                "WHERE placement_id = :p AND hour = :h AND device = :d"
            ),
            updates,
        )
    if days:
        bind.execute(
            sa.text(
                "INSERT INTO click_daily (placement_id, day, device, campaign_id, total, "
                "human_total, clickers, human_clickers) VALUES (:p, :day, :d, :c, :t, :ht, :a, :m)"
            ),
            [
                {
                    "p": placement,
                    "day": at(day),
                    "d": device,
                    "c": campaign,
                    "t": total,
                    "ht": human_total,
                    "a": _blob(everyone),
                    "m": _blob(humans),
                }
                for (placement, day, device), (total, human_total, everyone, humans) in sorted(
                    days.items()
                )
            ],
        )
    if segments:
        bind.execute(
            sa.text(
                "INSERT INTO click_segment (placement_id, device, client, country, campaign_id, "
                "total, human_total, clickers, human_clickers) "
                "VALUES (:p, :d, :cl, :co, :c, :t, :ht, :a, :m)"
            ),
            [
                {
                    "p": placement,
                    "d": device,
                    "cl": client,
                    "co": country,
                    "c": campaign,
                    "t": total,
                    "ht": human_total,
                    "a": _blob(everyone),
                    "m": _blob(humans),
                }
                for (placement, device, client, country), (
                    total,
                    human_total,
                    everyone,
                    humans,
                ) in sorted(segments.items())
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_click_daily_campaign_id", table_name="click_daily")
    op.drop_table("click_daily")
    op.drop_table("cell_reasons")
    op.drop_table("part_cell")
    op.drop_index("ix_click_segment_campaign_id", table_name="click_segment")
    op.drop_table("click_segment")
    with op.batch_alter_table("click_hourly") as batch:
        batch.drop_column("human_clickers")
        batch.drop_column("clickers")
