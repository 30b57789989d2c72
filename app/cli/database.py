"""``clickmap db``: create and upgrade the database schema."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import get_engine


@click.group("db")
def db_group() -> None:
    """Create and upgrade the database schema."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create the schema, or bring it up to date (safe to repeat)."""
    from app.ops.migrate import current, upgrade

    engine = get_engine(current_app)
    upgrade(engine)
    click.echo(f"database at revision {current(engine)}")
