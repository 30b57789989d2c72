"""Exact sets of clickers per aggregate cell, so that a filtered view counts unique clickers
without reading raw clicks.

"Unique clickers of a link in the last 7 days on mobile" is the number of recipients with at
least one matching click. Counters cannot answer that (a recipient who clicked in two hours
would count twice), so each cell of ``click_hourly`` (link, hour, device), ``click_daily``
(link, day, device), ``click_segment`` (link, device, email client, country),
``click_segment_daily`` (the same by day) and ``part_stats`` (a variant's part) keeps two
sets of recipient ids, as roaring bitmaps (``pyroaring``, the compressed integer sets many
analytics engines use): who clicked in the cell, and who clicked there as a human. A view
unions the sets of the cells its filter covers and takes the size: exact, and its cost grows
with the number of cells (hours x devices x links; segments x links), not with the clicks.

The writer keeps the sets in the same transaction as the counters (``add_clicks``). A new
click adds its recipient to its cell's set of clickers; a recipient's human membership comes
from the difference of their figures before and after the batch
(``app.clicks.labelling.human_figures``), so a click relabelled machine removes its
recipient from the cell's human set when no other human click of theirs is left there.
Pure SQLAlchemy and pyroaring: no Flask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.clicks.statements import as_json, table_of
from app.models import ClickDaily, ClickHourly, ClickSegment, ClickSegmentDaily, PartStats

# The cell tables and the columns (after the campaign) that key a cell in each.
KEYS: dict[type[Any], tuple[str, ...]] = {
    ClickHourly: ("placement_id", "hour", "device"),
    ClickDaily: ("placement_id", "day", "device"),
    ClickSegment: ("placement_id", "device", "client", "country"),
    ClickSegmentDaily: ("placement_id", "day", "device", "client", "country"),
    PartStats: ("campaign_id", "variant_id", "part"),
}
_EMPTY = BitMap()
_CHUNK = 150  # keys per IN list: 5 columns each stays below SQLite's parameter limit


def decode(blob: bytes | None) -> BitMap:
    """The set a stored cell holds (an empty one for a cell without clickers)."""
    return BitMap.deserialize(blob) if blob else BitMap()


def encode(members: BitMap) -> bytes | None:
    """What a cell stores: the portable roaring format, or None for an empty set."""
    if not members:
        return None
    members.run_optimize()
    return bytes(members.serialize())


def union(blobs: Iterable[bytes | None]) -> BitMap:
    """The recipients in any of the given cells."""
    sets = [BitMap.deserialize(b) for b in blobs if b]
    return BitMap.union(*sets) if sets else BitMap()


def segment_value(value: str | None) -> str:
    """A click's client or country as a ``click_segment`` key: '' where it has none."""
    return value or ""


@dataclass
class Changes:
    """What a batch does to the sets of one table's cells, by cell key: recipients to add
    to the clickers, to add to the human clickers, and to remove from the human clickers
    (as sets of the same kind, which a rebuild collecting a whole campaign needs)."""

    added: dict[tuple[Any, ...], BitMap] = field(default_factory=dict)
    human_added: dict[tuple[Any, ...], BitMap] = field(default_factory=dict)
    human_removed: dict[tuple[Any, ...], BitMap] = field(default_factory=dict)

    def keys(self) -> set[tuple[Any, ...]]:
        return set(self.added) | set(self.human_added) | set(self.human_removed)

    def clicked(self, key: tuple[Any, ...], recipient: int) -> None:
        found = self.added.get(key)
        if found is None:
            found = self.added[key] = BitMap()
        found.add(recipient)

    def human(self, members: Mapping[tuple[Any, ...], int]) -> None:
        """Take the human membership difference: ``(cell key..., recipient) -> +1 / -1``."""
        for (*key, recipient), delta in members.items():
            target = self.human_added if delta > 0 else self.human_removed
            target.setdefault(tuple(key), BitMap()).add(recipient)

    def applied(
        self, key: tuple[Any, ...], clickers: bytes | None = None, human: bytes | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """A cell's stored sets (none for a new cell) with this batch's changes made: what
        the cell stores next."""
        members = decode(clickers)
        members |= self.added.get(key, _EMPTY)
        humans = decode(human)
        humans |= self.human_added.get(key, _EMPTY)
        humans -= self.human_removed.get(key, _EMPTY)
        return encode(members), encode(humans)

    def merge(self, other: Changes) -> None:
        for mine, theirs in (
            (self.added, other.added),
            (self.human_added, other.human_added),
            (self.human_removed, other.human_removed),
        ):
            for key, recipients in theirs.items():
                found = mine.get(key)
                if found is None:
                    mine[key] = recipients
                else:
                    found |= recipients


def write(connection: Connection, model: type[Any], changes: Changes) -> None:
    """Apply ``changes`` to the cells of ``model``, whose rows exist already (the counters
    were added first, in the same transaction, which also holds their row locks on
    PostgreSQL, so no other writer can interleave between this read and this write).

    One read and one batched write per table, in plain driver SQL: for a batch of live
    clicks these touch hundreds of cells, and building each row's parameters through the
    ORM's type machinery cost the writer more than the statements themselves.
    """
    keys = sorted(changes.keys())
    if not keys:
        return
    table = table_of(model)
    names = KEYS[model]
    if connection.dialect.name == "postgresql":
        _write_postgresql(connection, table.name, names, keys, changes)
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    as_stored = _stored_form(connection.dialect.name)
    stored = [tuple(as_stored(value) for value in key) for key in keys]
    row = "(" + ", ".join([mark] * len(names)) + ")"
    found: dict[tuple[Any, ...], tuple[bytes | None, bytes | None]] = {}
    for i in range(0, len(stored), _CHUNK):
        chunk = stored[i : i + _CHUNK]
        for got in connection.exec_driver_sql(
            f"SELECT {', '.join(names)}, clickers, human_clickers FROM {table.name} "  # noqa: S608
            f"WHERE ({', '.join(names)}) IN (VALUES {', '.join([row] * len(chunk))})",
            tuple(value for key in chunk for value in key),
        ):
            found[tuple(got[: len(names)])] = (got[-2], got[-1])
    updates = []
    for key, key_stored in zip(keys, stored, strict=True):
        clickers, human = found.get(key_stored, (None, None))
        updates.append((*changes.applied(key, clickers, human), *key_stored))
    where = " AND ".join(f"{name} = {mark}" for name in names)
    connection.exec_driver_sql(
        f"UPDATE {table.name} SET clickers = {mark}, human_clickers = {mark} WHERE {where}",  # noqa: S608
        updates,
    )


def _write_postgresql(
    connection: Connection,
    table: str,
    names: tuple[str, ...],
    keys: list[tuple[Any, ...]],
    changes: Changes,
) -> None:
    """PostgreSQL: the read and the write are one statement each, whatever the number of
    cells, the keys and sets travelling as one JSON parameter (as the writer's other
    batches do): a statement per cell cost the server more than the sets themselves."""
    keyed = [dict(zip(names, key, strict=True)) for key in keys]
    columns = ", ".join(names)
    found = {
        tuple(row[: len(names)]): (row[-2], row[-1])
        for row in connection.execute(
            text(
                f"SELECT {', '.join(f't.{n}' for n in names)}, t.clickers, t.human_clickers "  # noqa: S608
                f"FROM {table} AS t JOIN json_populate_recordset(NULL::{table}, :rows) AS j "
                f"USING ({columns})"
            ),
            {"rows": as_json(keyed)},
        )
    }
    rows = []
    for key, row in zip(keys, keyed, strict=True):
        clickers, human = found.get(key, (None, None))
        members, humans = changes.applied(key, clickers, human)
        rows.append({**row, "clickers": members, "human_clickers": humans})
    match = " AND ".join(f"t.{name} = j.{name}" for name in names)
    connection.execute(
        text(
            f"UPDATE {table} AS t SET clickers = j.clickers, human_clickers = j.human_clickers "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table}, :rows) AS j WHERE {match}"
        ),
        {"rows": as_json(rows)},
    )


def _stored_form(dialect: str) -> Any:
    """How a key's values go to the driver, and come back from it, unchanged: SQLite keeps
    times as UTC text (``app.models.UTCDateTime``); PostgreSQL hands back aware times, which
    compare and hash by the instant they name."""
    if dialect != "sqlite":
        return lambda value: value

    def sqlite(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    return sqlite
