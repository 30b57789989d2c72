"""What the click writer's statements share: the dialect's INSERT, built statements kept
per shape, and batches sent to PostgreSQL as one JSON parameter.

Used by ``app.clicks.recording`` (the clicks) and ``app.clicks.aggregates`` (what they add up
to). Pure SQLAlchemy, for SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.models import Click

# What makes a click the same click. On PostgreSQL ``click`` is partitioned by month of
# ``clicked_at`` (migration 0011), and a partitioned table's unique keys must hold the
# partition key; a replay comes from the same spool record, so it carries the same time.
CLICK_KEY = {"postgresql": ("click_id", "clicked_at"), "sqlite": ("click_id",)}


def dialect_insert(session: Session) -> Callable[..., Any]:
    """The ``insert`` of the session's dialect (it has ``ON CONFLICT``)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"clicks are recorded on PostgreSQL or SQLite, not {dialect}")


# Statements built once per shape and reused: building SQLAlchemy constructs (and their
# cache keys) for every batch costs the writer more than some of the statements themselves.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def memo(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def table_of(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def insert_ignoring_conflicts(
    connection: Connection,
    insert: Callable[..., Any],
    model: type[Any],
    rows: list[dict[str, Any]],
    unique: str | None = None,
) -> Sequence[Any]:
    """Insert ``rows`` (in order), skipping those whose key exists; returns the keys of the
    rows inserted (``CLICK_KEY`` for clicks, click id first; the column ``unique`` names;
    the primary key otherwise)."""
    if not rows:
        return []
    table = table_of(model)
    if model is Click:
        key = list(CLICK_KEY[connection.dialect.name])
    elif unique:
        key = [unique]
    else:
        key = [c.name for c in table.primary_key.columns]
    shape = ("ignore", connection.dialect.name, table.name, tuple(rows[0]))
    if connection.dialect.name != "postgresql":
        stmt = memo(
            shape,
            lambda: (
                insert(table)
                .on_conflict_do_nothing(index_elements=key)
                .returning(*(table.c[k] for k in key))
            ),
        )
        return connection.execute(stmt, rows).all()
    # PostgreSQL: the whole batch as one JSON parameter, unpacked by the server. The
    # statement text is the same for every batch (a multi-row VALUES list would be new SQL
    # with thousands of parameters for the driver to rewrite), and encoding one JSON text is
    # far cheaper for the writer than adapting a parameter per value.
    columns = ", ".join(rows[0])
    stmt = memo(
        shape,
        lambda: text(
            f"INSERT INTO {table.name} ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table.name}, :rows) "
            f"ON CONFLICT ({', '.join(key)}) DO NOTHING RETURNING {', '.join(key)}"
        ),
    )
    return connection.execute(stmt, {"rows": as_json(rows)}).all()


def as_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):  # bytea's hex input form
        return "\\x" + value.hex()
    raise TypeError(f"cannot encode {type(value).__name__}")
