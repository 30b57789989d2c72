"""Alembic environment: the URL comes from Clickmap's own configuration.

``clickmap db upgrade`` passes the app's engine in ``config.attributes["connection"]`` so the
migration runs on exactly the database the app uses (tests pass a per-run PostgreSQL schema).

On PostgreSQL every migration runs with a ``lock_timeout`` (``LOCK_TIMEOUT``, or
``config.attributes["lock_timeout"]``): a migration that needs a table a long query holds fails
after that long, and can be run again, instead of waiting forever. Waiting is what hurts: a
queued ``ACCESS EXCLUSIVE`` request makes every later reader and writer of the table queue
behind it, the click writers included. There is no ``statement_timeout`` here, since a
migration that moves rows takes as long as the rows; the partition maintenance the app does
while serving sets both (``app.clicks.partitions``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text
from sqlalchemy.engine import Connection

from app import models  # noqa: F401  (registers the tables)
from app.db import Base

target_metadata = Base.metadata
LOCK_TIMEOUT = "5s"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Never wait behind a long query for a lock: fail fast and retry the deploy.
            timeout = str(context.config.attributes.get("lock_timeout", LOCK_TIMEOUT))
            connection.execute(
                text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": timeout}
            )
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
