"""click country: the country each click's network is registered to

Adds ``click.country`` (ISO 3166-1 alpha-2, nullable), which the writer now fills from the
stored network (``app.clicks.devices.country``), and fills it for the clicks stored before,
from the same ``ip_prefix`` and the same offline data (the ``iptocc`` package), so a
country segment covers a campaign's whole history. Clicks are read in pages by id and only
rows with a country are written, so the upgrade's memory stays flat whatever the number of
clicks. ``iptocc`` is a dependency, so it is importable on any working install; should it not
be, the old clicks are left without a country rather than the upgrade failing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 08:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 10_000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '10s'")
    with op.batch_alter_table("click") as batch:
        batch.add_column(sa.Column("country", sa.String(length=2), nullable=True))
    try:
        from iptocc import country_code
    except ImportError:  # the column stays empty for old clicks; new ones are filled
        return

    @lru_cache(maxsize=65536)
    def country(prefix: str) -> str | None:
        # A stored network's first address answers for all of it (registries allocate in
        # blocks of at least an IPv4 /24 or an IPv6 /48).
        found = country_code(prefix.partition("/")[0])
        return found if isinstance(found, str) and len(found) == 2 else None

    read = sa.text(
        "SELECT id, ip_prefix FROM click WHERE id > :after AND ip_prefix IS NOT NULL "
        "ORDER BY id LIMIT :page"
    )
    write = sa.text("UPDATE click SET country = :country WHERE id = :id")
    after = 0
    while True:
        rows = bind.execute(read, {"after": after, "page": PAGE}).all()
        if not rows:
            break
        found = [
            {"id": row_id, "country": code}
            for row_id, prefix in rows
            if (code := country(prefix)) is not None
        ]
        if found:
            bind.execute(write, found)
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("click") as batch:
        batch.drop_column("country")
