"""placement location

Adds ``placement.location``: the redirect's ``Location`` (UTM included), computed once at
ingest from the WHATWG URL parser's serialization (``app.urls``), so the redirector answers
exactly what the browser would have requested from the original link and never has to refuse
a tracked link.

Existing placements are brought to the same definition: each destination is parsed again and
stored as its serialization, and each tracked placement gets its location. A tracked placement
whose destination the parser refuses becomes skipped (``invalid_url``); the redirector refused
it before this revision too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-22 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.urls import UnsafeDestination, parse_web_address, with_utm

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("placement", sa.Column("location", sa.Text(), nullable=True))
    bind = op.get_bind()
    placement = sa.table(
        "placement",
        sa.column("id", sa.Integer),
        sa.column("campaign_id", sa.Integer),
        sa.column("destination", sa.Text),
        sa.column("location", sa.Text),
        sa.column("tracked", sa.Boolean),
        sa.column("skip_reason", sa.String),
    )
    campaign = sa.table("campaign", sa.column("id", sa.Integer), sa.column("utm", sa.JSON))
    utm = dict(bind.execute(sa.select(campaign.c.id, campaign.c.utm)).all())
    last = 0
    while True:
        rows = bind.execute(
            sa.select(
                placement.c.id,
                placement.c.campaign_id,
                placement.c.destination,
                placement.c.tracked,
            )
            .where(placement.c.id > last, placement.c.destination.is_not(None))
            .order_by(placement.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        for row in rows:
            values: dict[str, object]
            try:
                href = parse_web_address(row.destination).href
            except UnsafeDestination:
                values = {"tracked": False, "skip_reason": "invalid_url"} if row.tracked else {}
            else:
                values = {"destination": href}
                if row.tracked:
                    values["location"] = with_utm(href, utm.get(row.campaign_id))
            if values:
                bind.execute(placement.update().where(placement.c.id == row.id).values(values))


def downgrade() -> None:
    with op.batch_alter_table("placement", schema=None) as batch_op:
        batch_op.drop_column("location")
