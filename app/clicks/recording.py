"""Storing clicks and keeping the report aggregates exactly in step with them.

``record_clicks`` inserts a batch of clicks and, in the same transaction, adds only the
clicks it actually inserted to the aggregates: per link (``placement_recipient``,
``click_hourly``, ``placement_stats``), per variant part (``part_clicker``, ``part_hourly``,
``part_stats``) and per campaign (``campaign_clicker``, ``campaign_stats``). ``click_id`` is
minted before the redirect is answered, so a click replayed after a crash or an outage
conflicts with its first copy and counts nowhere twice.

Distinct clickers of a part or a campaign are counted the way distinct clickers of a link
are: a row per recipient, and the counter grows by the rows an insert actually created.
Only a (link, recipient) pair created by this batch can bring a new clicker, so a batch of
repeat clicks adds no clicker work at all.

Concurrency: several writers (one per server process, on many hosts) may record at once.
Every statement is an insert that resolves conflicts in the database (ON CONFLICT), rows are
touched in one global order (table by table, key by key) so writers never deadlock, and a
first click by a recipient is decided by the insert that won the row, never by a read.
Pure SQLAlchemy: no Flask, works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.clicks.devices import classify
from app.models import (
    CampaignClicker,
    CampaignStats,
    Click,
    ClickHourly,
    PartClicker,
    PartHourly,
    PartStats,
    Placement,
    PlacementRecipient,
    PlacementStats,
    Recipient,
)

USER_AGENT_LIMIT = 512


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One click as the redirector saw it, before anything about it is derived."""

    click_id: str
    clicked_at: datetime  # aware, UTC
    campaign_id: int
    variant_id: int
    part: str
    placement_id: int
    recipient_id: int
    method: str
    user_agent: str
    ip_prefix: str | None

    def to_record(self) -> list[Any]:
        """A compact JSON-able form for the spool (``app.clicks.tracking.record`` builds the same
        list directly on the redirect path)."""
        return [
            self.click_id,
            self.clicked_at.timestamp(),
            self.campaign_id,
            self.variant_id,
            self.part,
            self.placement_id,
            self.recipient_id,
            self.method,
            self.user_agent,
            self.ip_prefix,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> ClickEvent:
        (click_id, ts, campaign, variant, part, placement, recipient, method, agent, ip) = record
        return cls(
            str(click_id),
            datetime.fromtimestamp(float(ts), UTC),
            int(campaign),
            int(variant),
            str(part),
            int(placement),
            int(recipient),
            str(method),
            str(agent),
            None if ip is None else str(ip),
        )


def _insert(session: Session) -> Callable[..., Any]:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"clicks are recorded on PostgreSQL or SQLite, not {dialect}")


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record_clicks(session: Session, events: Sequence[ClickEvent]) -> int:
    """Store ``events`` and update the aggregates; returns how many clicks were new.

    The caller owns the transaction (commit after, roll back on error). Replayed events
    (a ``click_id`` already stored) are ignored entirely.
    """
    unique_events = list({e.click_id: e for e in events}.values())
    if not unique_events:
        return 0
    insert = _insert(session)
    rows: list[dict[str, Any]] = []
    for e in unique_events:
        device, client = classify(e.user_agent)
        rows.append(
            {
                "click_id": e.click_id,
                "clicked_at": e.clicked_at,
                "campaign_id": e.campaign_id,
                "variant_id": e.variant_id,
                "part": e.part,
                "placement_id": e.placement_id,
                "recipient_id": e.recipient_id,
                "method": e.method,
                "user_agent": e.user_agent[:USER_AGENT_LIMIT],
                "device": device,
                "client": client,
                "ip_prefix": e.ip_prefix,
            }
        )
    # Core statements on the session's connection: the ORM's bulk path would add per-row
    # bookkeeping that costs more than the insert itself.
    connection = session.connection()
    inserted = {row[0] for row in _insert_ignoring_conflicts(connection, insert, Click, rows)}
    new = sorted(
        (row for row in rows if row["click_id"] in inserted), key=lambda r: r["clicked_at"]
    )
    if new:
        _add_to_aggregates(connection, insert, new)
    return len(new)


# Statements built once per shape and reused: building SQLAlchemy constructs (and their
# cache keys) for every batch costs the writer more than some of the statements themselves.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _memo(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert_ignoring_conflicts(
    connection: Connection,
    insert: Callable[..., Any],
    model: type[Any],
    rows: list[dict[str, Any]],
) -> Sequence[Any]:
    """Insert ``rows`` (in order), skipping those whose key exists; returns the keys of the
    rows inserted (the unique key for clicks, the primary key otherwise)."""
    if not rows:
        return []
    table = _table(model)
    key = ["click_id"] if model is Click else [c.name for c in table.primary_key.columns]
    shape = ("ignore", connection.dialect.name, table.name, tuple(rows[0]))
    if connection.dialect.name != "postgresql":
        stmt = _memo(
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
    stmt = _memo(
        shape,
        lambda: text(
            f"INSERT INTO {table.name} ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table.name}, :rows) "
            f"ON CONFLICT ({', '.join(key)}) DO NOTHING RETURNING {', '.join(key)}"
        ),
    )
    return connection.execute(stmt, {"rows": _json(rows)}).all()


def _add_to_aggregates(
    connection: Connection, insert: Callable[..., Any], clicks: list[dict[str, Any]]
) -> None:
    """Add newly stored ``clicks`` (in time order) to every aggregate.

    Tables are written in one global order, each batch's rows sorted by key:
    placement_recipient, part_clicker, campaign_clicker, click_hourly, part_hourly,
    placement_stats, part_stats, campaign_stats. The one-row-per-campaign counters come last
    so their (hot) row locks are held for the shortest time before the commit.
    """
    # Per (placement, recipient): campaign, clicks, first, last, device of the first click.
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    # Where each placement lives: (campaign, variant, part).
    parts_of: dict[int, tuple[int, int, str]] = {}
    hourly: dict[tuple[int, datetime, str], int] = {}
    part_hourly: dict[tuple[int, int, str, datetime, str], int] = {}
    placement_totals: dict[int, int] = {}
    part_totals: dict[tuple[int, int, str], int] = {}
    campaign_totals: dict[int, int] = {}
    for c in clicks:  # in time order, so the first seen is the first click
        placement_id = c["placement_id"]
        key = (placement_id, c["recipient_id"])
        pair = pairs.get(key)
        if pair is None:
            pairs[key] = {
                "placement_id": key[0],
                "recipient_id": key[1],
                "campaign_id": c["campaign_id"],
                "first_clicked_at": c["clicked_at"],
                "last_clicked_at": c["clicked_at"],
                "clicks": 1,
                "device": c["device"],
            }
        else:
            pair["clicks"] += 1
            pair["last_clicked_at"] = c["clicked_at"]
        part = (c["campaign_id"], c["variant_id"], c["part"])
        parts_of[placement_id] = part
        hour = _hour(c["clicked_at"])
        hour_key = (placement_id, hour, c["device"])
        hourly[hour_key] = hourly.get(hour_key, 0) + 1
        part_hour_key = (*part, hour, c["device"])
        part_hourly[part_hour_key] = part_hourly.get(part_hour_key, 0) + 1
        placement_totals[placement_id] = placement_totals.get(placement_id, 0) + 1
        part_totals[part] = part_totals.get(part, 0) + 1
        campaign_totals[part[0]] = campaign_totals.get(part[0], 0) + 1

    ordered = [pairs[key] for key in sorted(pairs)]
    if connection.dialect.name == "postgresql":
        first_time = _upsert_pairs_postgresql(connection, ordered)
    else:
        first_time = {
            (row[0], row[1])
            for row in _insert_ignoring_conflicts(connection, insert, PlacementRecipient, ordered)
        }
        again = [p for p in ordered if (p["placement_id"], p["recipient_id"]) not in first_time]
        if again:
            _bump_pairs(connection, again)

    # Clickers. A recipient already counted for a part (or the campaign) clicked some link of
    # it before, so only a (placement, recipient) pair created just now can bring a new one:
    # the other clicks of the batch cost nothing here. Whether a clicker is new is decided by
    # the insert that won the row, as for the pairs.
    placement_unique: dict[int, int] = {}
    for placement_id, _recipient in first_time:
        placement_unique[placement_id] = placement_unique.get(placement_id, 0) + 1
    candidates = sorted({(*parts_of[p], r) for p, r in first_time})
    new_part_clickers = _insert_ignoring_conflicts(
        connection,
        insert,
        PartClicker,
        [
            {"campaign_id": c, "variant_id": v, "part": part, "recipient_id": r}
            for c, v, part, r in candidates
        ],
    )
    part_unique: dict[tuple[int, int, str], int] = {}
    for c, v, part, _r in new_part_clickers:
        part_unique[(c, v, part)] = part_unique.get((c, v, part), 0) + 1
    campaign_candidates = sorted({(c, r) for c, _v, _part, r in new_part_clickers})
    new_campaign_clickers = _insert_ignoring_conflicts(
        connection,
        insert,
        CampaignClicker,
        [{"campaign_id": c, "recipient_id": r} for c, r in campaign_candidates],
    )
    campaign_unique: dict[int, int] = {}
    for c, _r in new_campaign_clickers:
        campaign_unique[c] = campaign_unique.get(c, 0) + 1

    _add_up(
        connection,
        insert,
        ClickHourly,
        [
            {
                "placement_id": p,
                "hour": hour,
                "device": device,
                "campaign_id": parts_of[p][0],
                "total": hourly[(p, hour, device)],
            }
            for p, hour, device in sorted(hourly)
        ],
    )
    _add_up(
        connection,
        insert,
        PartHourly,
        [
            {
                "campaign_id": c,
                "variant_id": v,
                "part": part,
                "hour": hour,
                "device": device,
                "total": total,
            }
            for (c, v, part, hour, device), total in sorted(part_hourly.items())
        ],
    )
    _add_up(
        connection,
        insert,
        PlacementStats,
        [
            {
                "placement_id": p,
                "campaign_id": parts_of[p][0],
                "total": total,
                "unique": placement_unique.get(p, 0),
            }
            for p, total in sorted(placement_totals.items())
        ],
    )
    _add_up(
        connection,
        insert,
        PartStats,
        [
            {
                "campaign_id": c,
                "variant_id": v,
                "part": part,
                "total": total,
                "unique": part_unique.get((c, v, part), 0),
            }
            for (c, v, part), total in sorted(part_totals.items())
        ],
    )
    _add_up(
        connection,
        insert,
        CampaignStats,
        [
            {"campaign_id": c, "total": total, "unique": campaign_unique.get(c, 0)}
            for c, total in sorted(campaign_totals.items())
        ],
    )


_COUNTERS = ("total", "unique")


def _add_up(
    connection: Connection,
    insert: Callable[..., Any],
    model: type[Any],
    rows: list[dict[str, Any]],
) -> None:
    """Insert counter rows, or add their ``total``/``unique`` to the rows already there.

    ``rows`` come sorted by primary key, so every writer locks them in the same order. On
    PostgreSQL the batch is one statement with one JSON parameter, as for the clicks.
    """
    if not rows:
        return
    table = _table(model)
    key = [c.name for c in table.primary_key.columns]
    counters = [name for name in _COUNTERS if name in rows[0]]
    shape = ("add", connection.dialect.name, table.name, tuple(rows[0]))
    if connection.dialect.name != "postgresql":

        def build_sqlite() -> Any:
            stmt = insert(table)
            return stmt.on_conflict_do_update(
                index_elements=key,
                set_={name: table.c[name] + stmt.excluded[name] for name in counters},
            )

        connection.execute(_memo(shape, build_sqlite), rows)
        return
    quote = connection.dialect.identifier_preparer.quote

    def build_postgresql() -> Any:
        columns = ", ".join(quote(name) for name in rows[0])
        updates = ", ".join(
            f"{quote(name)} = t.{quote(name)} + excluded.{quote(name)}" for name in counters
        )
        return text(
            f"INSERT INTO {table.name} AS t ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table.name}, :rows) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    connection.execute(_memo(shape, build_postgresql), {"rows": _json(rows)})


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _upsert_pairs_postgresql(
    connection: Connection, pairs: list[dict[str, Any]]
) -> set[tuple[int, int]]:
    """One statement for every (placement, recipient) of the batch; returns the pairs that
    are new. ``xmax = 0`` holds exactly for a row this statement inserted (an updated row
    carries our transaction id), the usual PostgreSQL idiom for "inserted or updated"."""
    table = _table(PlacementRecipient)
    columns = ", ".join(pairs[0])
    stmt = _memo(
        ("pairs", "postgresql", tuple(pairs[0])),
        lambda: text(
            f"INSERT INTO {table.name} AS pr ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table.name}, :rows) "
            "ON CONFLICT (placement_id, recipient_id) DO UPDATE SET "
            "clicks = pr.clicks + excluded.clicks, "
            "device = CASE WHEN excluded.first_clicked_at < pr.first_clicked_at "
            "THEN excluded.device ELSE pr.device END, "
            "first_clicked_at = LEAST(pr.first_clicked_at, excluded.first_clicked_at), "
            "last_clicked_at = GREATEST(pr.last_clicked_at, excluded.last_clicked_at) "
            "RETURNING placement_id, recipient_id, xmax = 0"
        ),
    )
    rows = connection.execute(stmt, {"rows": _json(pairs)})
    return {(row[0], row[1]) for row in rows if row[2]}


def _bump_pairs(connection: Connection, pairs: list[dict[str, Any]]) -> None:
    """Add clicks to (placement, recipient) rows that existed before this batch (SQLite,
    where one writer at a time holds the database, so the two steps cannot interleave)."""
    connection.execute(
        _memo(("bump", "sqlite"), _bump_statement),
        [
            {
                "b_placement": p["placement_id"],
                "b_recipient": p["recipient_id"],
                "b_clicks": p["clicks"],
                "b_first": p["first_clicked_at"],
                "b_last": p["last_clicked_at"],
                "b_device": p["device"],
            }
            for p in pairs
        ],
    )


def _bump_statement() -> Any:
    table = _table(PlacementRecipient)
    when = PlacementRecipient.first_clicked_at.type
    first = bindparam("b_first", type_=when)
    last = bindparam("b_last", type_=when)
    earlier = first < table.c.first_clicked_at
    # Every SET expression sees the row as it was, so ``earlier`` is judged on the old value:
    # a replayed older click (from another process's spool) moves "first" back correctly.
    stmt = (
        update(table)
        .where(
            table.c.placement_id == bindparam("b_placement"),
            table.c.recipient_id == bindparam("b_recipient"),
        )
        .values(
            clicks=table.c.clicks + bindparam("b_clicks"),
            first_clicked_at=case((earlier, first), else_=table.c.first_clicked_at),
            device=case((earlier, bindparam("b_device")), else_=table.c.device),
            last_clicked_at=case(
                (last > table.c.last_clicked_at, last), else_=table.c.last_clicked_at
            ),
        )
    )
    return stmt


def known_only(session: Session, events: Sequence[ClickEvent]) -> list[ClickEvent]:
    """The events whose placement and recipient still exist.

    A campaign or recipient removed for good (not just marked deleted) between the click and
    its write would make the whole batch fail on a foreign key; those clicks have nothing
    left to count against, so the writer drops them (and says so) instead of retrying forever.
    """
    placements = {e.placement_id for e in events}
    recipients = {e.recipient_id for e in events}
    found_p = set(session.scalars(select(Placement.id).where(Placement.id.in_(placements))))
    found_r = set(session.scalars(select(Recipient.id).where(Recipient.id.in_(recipients))))
    return [e for e in events if e.placement_id in found_p and e.recipient_id in found_r]
