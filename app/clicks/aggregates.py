"""Keeping the report aggregates exactly in step with the clicks ``record_clicks`` stores.

``add_clicks`` adds the clicks an insert actually stored (never a replay) to every
aggregate, in the transaction that stored them: per link (``placement_recipient``,
``click_hourly``, ``placement_stats``), per variant part (``part_clicker``, ``part_hourly``,
``part_stats``) and per campaign (``campaign_clicker``, ``campaign_stats``).

Distinct clickers of a part or a campaign are counted the way distinct clickers of a link
are: a row per recipient, and the counter grows by the rows an insert actually created.
Only a (link, recipient) pair created by this batch can bring a new clicker, so a batch of
repeat clicks adds no clicker work at all. Rows are touched in one global order (table by
table, key by key) so concurrent writers never deadlock. docs/heatmap.md has the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import bindparam, case, text, update
from sqlalchemy.engine import Connection

from app.clicks import clicker_sets
from app.clicks.clicker_sets import Changes, segment_value
from app.clicks.statements import as_json, insert_ignoring_conflicts, memo, table_of
from app.models import (
    CampaignClicker,
    CampaignStats,
    CellReasons,
    ClickDaily,
    ClickHourly,
    ClickSegment,
    ClickSegmentDaily,
    MachineReasons,
    PartCell,
    PartClicker,
    PartHourly,
    PartStats,
    PlacementRecipient,
    PlacementStats,
)

# Every aggregate table, in the one global order writers touch them (see ``add_clicks``).
TABLES = (
    PlacementRecipient,
    PartClicker,
    CampaignClicker,
    ClickHourly,
    ClickDaily,
    ClickSegment,
    ClickSegmentDaily,
    PartHourly,
    PartCell,
    PlacementStats,
    PartStats,
    MachineReasons,
    CellReasons,
    CampaignStats,
)


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def add_clicks(
    connection: Connection,
    insert: Callable[..., Any],
    clicks: list[dict[str, Any]],
    human: Mapping[tuple[Any, ...], int],
    later: Later | None = None,
) -> None:
    """Add newly stored ``clicks`` (in time order) to every aggregate, and ``human`` (the
    difference of the human figures, ``app.clicks.labelling.human_figures``, which a
    relabelled older click also changes) to the human columns and ``machine_reasons``.

    Tables are written in one global order, each batch's rows sorted by key:
    placement_recipient, part_clicker, campaign_clicker, click_hourly, part_hourly,
    placement_stats, part_stats, machine_reasons, campaign_stats. The one-row-per-campaign
    counters come last so their (hot) row locks are held for the shortest time before the
    commit.

    The clicker sets of ``click_hourly`` and ``click_segment`` (``app.clicks.clicker_sets``)
    are written right after their counters. A rebuild, which adds a campaign's recipients
    page by page to emptied tables, passes ``later`` to collect every row instead, and
    writes each table once at the end (``Later.write``).
    """
    add: Callable[[type[Any], list[dict[str, Any]]], None]
    if later is None:
        add = partial(_add_up, connection, insert)

        def sets(model: type[Any]) -> None:
            clicker_sets.write(connection, model, changes[model])
    else:
        add = later.add

        def sets(model: type[Any]) -> None:
            later.sets.setdefault(model, Changes()).merge(changes[model])

    by_table: dict[str, dict[tuple[Any, ...], int]] = {}
    for key, delta in human.items():
        by_table.setdefault(key[0], {})[key[1:]] = delta
    human_pairs = by_table.get("pair", {})
    # Per (placement, recipient): campaign, clicks, first, last, device of the first click.
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    # Where each placement lives: (campaign, variant, part).
    parts_of: dict[int, tuple[int, int, str]] = {}
    hourly: dict[tuple[int, datetime, str], int] = {}
    daily: dict[tuple[int, datetime, str], int] = {}
    segments: dict[tuple[int, str, str, str], int] = {}
    segment_days: dict[tuple[int, datetime, str, str, str], int] = {}
    changes = {model: Changes() for model in clicker_sets.KEYS}
    part_hourly: dict[tuple[int, int, str, datetime, str], int] = {}
    part_cells: dict[tuple[Any, ...], int] = {}
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
                "human_clicks": human_pairs.get((c["campaign_id"], *key), 0),
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
        changes[ClickHourly].clicked(hour_key, c["recipient_id"])
        day_key = (placement_id, hour.replace(hour=0), c["device"])
        daily[day_key] = daily.get(day_key, 0) + 1
        changes[ClickDaily].clicked(day_key, c["recipient_id"])
        segment_key = (
            placement_id,
            c["device"],
            segment_value(c["client"]),
            segment_value(c["country"]),
        )
        segments[segment_key] = segments.get(segment_key, 0) + 1
        changes[ClickSegment].clicked(segment_key, c["recipient_id"])
        segment_day_key = (placement_id, day_key[1], *segment_key[1:])
        segment_days[segment_day_key] = segment_days.get(segment_day_key, 0) + 1
        changes[ClickSegmentDaily].clicked(segment_day_key, c["recipient_id"])
        changes[PartStats].clicked(part, c["recipient_id"])
        part_hour_key = (*part, hour, c["device"])
        part_hourly[part_hour_key] = part_hourly.get(part_hour_key, 0) + 1
        cell_key = (*part, hour, *segment_key[1:])
        part_cells[cell_key] = part_cells.get(cell_key, 0) + 1
        placement_totals[placement_id] = placement_totals.get(placement_id, 0) + 1
        part_totals[part] = part_totals.get(part, 0) + 1
        campaign_totals[part[0]] = campaign_totals.get(part[0], 0) + 1

    ordered = [pairs[key] for key in sorted(pairs)]
    if not ordered:  # only relabels: no click of this batch is new
        first_time = set()
    elif later is not None:  # a rebuild's page: its recipients are new to every table
        first_time = set(later.insert(PlacementRecipient, ordered))
    elif connection.dialect.name == "postgresql":
        first_time = _upsert_pairs_postgresql(connection, ordered)
    else:
        first_time = {
            (row[0], row[1])
            for row in insert_ignoring_conflicts(connection, insert, PlacementRecipient, ordered)
        }
        again = [p for p in ordered if (p["placement_id"], p["recipient_id"]) not in first_time]
        if again:
            _bump_pairs(connection, again)
    in_batch = {(p["campaign_id"], p["placement_id"], p["recipient_id"]) for p in ordered}
    _bump_human_pairs(
        connection,
        [(key, delta) for key, delta in sorted(human_pairs.items()) if key not in in_batch],
    )

    # Clickers. A recipient already counted for a part (or the campaign) clicked some link of
    # it before, so only a (placement, recipient) pair created just now can bring a new one:
    # the other clicks of the batch cost nothing here. Whether a clicker is new is decided by
    # the insert that won the row, as for the pairs.
    placement_unique: dict[int, int] = {}
    for placement_id, _recipient in first_time:
        placement_unique[placement_id] = placement_unique.get(placement_id, 0) + 1
    candidates = sorted({(*parts_of[p], r) for p, r in first_time})
    new_part_clickers = (later.insert if later else partial(_insert, connection, insert))(
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
    new_campaign_clickers = (later.insert if later else partial(_insert, connection, insert))(
        CampaignClicker,
        [{"campaign_id": c, "recipient_id": r} for c, r in campaign_candidates],
    )
    campaign_unique: dict[int, int] = {}
    for c, _r in new_campaign_clickers:
        campaign_unique[c] = campaign_unique.get(c, 0) + 1

    # The human columns: the same keys, plus those only a relabelled click touches.
    hourly_human = by_table.get("hourly", {})
    campaign_of = {p: part[0] for p, part in parts_of.items()}
    ends = {name: by_table.get(name, {}) for name in _ENDS}
    names = (
        "pair",
        "hourly",
        "daily",
        "placement_total",
        "placement_unique",
        "segment",
        "segment_daily",
        *_MEMBERS,
    )
    for name in (*names, *_ENDS):
        campaign_of.update((key[1], key[0]) for key in by_table.get(name, {}))
    changes[ClickHourly].human({key[1:]: d for key, d in by_table.get("hour_member", {}).items()})
    changes[ClickDaily].human({key[1:]: d for key, d in by_table.get("day_member", {}).items()})
    changes[ClickSegment].human(
        {key[1:]: d for key, d in by_table.get("segment_member", {}).items()}
    )
    changes[ClickSegmentDaily].human(
        {key[1:]: d for key, d in by_table.get("segment_day_member", {}).items()}
    )
    changes[PartStats].human(by_table.get("part_member", {}))
    hourly_keys = set(hourly) | {(p, h, d) for (_c, p, h, d) in hourly_human}
    hourly_keys |= changes[ClickHourly].keys()
    add(
        ClickHourly,
        [
            {
                "placement_id": p,
                "hour": hour,
                "device": device,
                "campaign_id": campaign_of[p],
                "total": hourly.get((p, hour, device), 0),
                "human_total": hourly_human.get((campaign_of[p], p, hour, device), 0),
            }
            for p, hour, device in sorted(hourly_keys)
        ],
    )
    sets(ClickHourly)
    daily_human = by_table.get("daily", {})
    add(
        ClickDaily,
        [
            {
                "placement_id": p,
                "day": day,
                "device": device,
                "campaign_id": campaign_of[p],
                "total": daily.get((p, day, device), 0),
                "human_total": daily_human.get((campaign_of[p], p, day, device), 0),
            }
            for p, day, device in sorted(
                set(daily) | {key[1:] for key in daily_human} | changes[ClickDaily].keys()
            )
        ],
    )
    sets(ClickDaily)
    segment_human = by_table.get("segment", {})
    add(
        ClickSegment,
        [
            {
                "placement_id": p,
                "device": device,
                "client": client,
                "country": country,
                "campaign_id": campaign_of[p],
                "total": segments.get((p, device, client, country), 0),
                "human_total": segment_human.get((campaign_of[p], p, device, client, country), 0),
            }
            for p, device, client, country in sorted(
                set(segments) | {key[1:] for key in segment_human} | changes[ClickSegment].keys()
            )
        ],
    )
    sets(ClickSegment)
    segment_day_human = by_table.get("segment_daily", {})
    add(
        ClickSegmentDaily,
        [
            {
                "placement_id": p,
                "day": day,
                "device": device,
                "client": client,
                "country": country,
                "campaign_id": campaign_of[p],
                "total": segment_days.get((p, day, device, client, country), 0),
                "human_total": segment_day_human.get(
                    (campaign_of[p], p, day, device, client, country), 0
                ),
            }
            for p, day, device, client, country in sorted(
                set(segment_days)
                | {key[1:] for key in segment_day_human}
                | changes[ClickSegmentDaily].keys()
            )
        ],
    )
    sets(ClickSegmentDaily)
    part_hourly_human = by_table.get("part_hourly", {})
    add(
        PartHourly,
        [
            {
                "campaign_id": c,
                "variant_id": v,
                "part": part,
                "hour": hour,
                "device": device,
                "total": part_hourly.get((c, v, part, hour, device), 0),
                "human_total": part_hourly_human.get((c, v, part, hour, device), 0),
            }
            for (c, v, part, hour, device) in sorted(set(part_hourly) | set(part_hourly_human))
        ],
    )
    cell_human = by_table.get("part_cell", {})
    add(
        PartCell,
        [
            {
                **dict(zip(_CELL, key, strict=True)),
                "total": part_cells.get(key, 0),
                "human_total": cell_human.get(key, 0),
            }
            for key in sorted(set(part_cells) | set(cell_human))
        ],
    )
    p_total, p_unique = by_table.get("placement_total", {}), by_table.get("placement_unique", {})
    placements = set(placement_totals) | {p for _c, p in p_total} | {p for _c, p in p_unique}
    placements |= {p for found in ends.values() for _c, p in found}
    add(
        PlacementStats,
        [
            {
                "placement_id": p,
                "campaign_id": campaign_of[p],
                "total": placement_totals.get(p, 0),
                "unique": placement_unique.get(p, 0),
                "human_total": p_total.get((campaign_of[p], p), 0),
                "human_unique": p_unique.get((campaign_of[p], p), 0),
                **{
                    column: ends[name].get((campaign_of[p], p), 0) for name, column in _ENDS.items()
                },
            }
            for p in sorted(placements)
        ],
    )
    part_human_total, part_human_unique = (
        by_table.get("part_total", {}),
        by_table.get("part_unique", {}),
    )
    add(
        PartStats,
        [
            {
                "campaign_id": c,
                "variant_id": v,
                "part": part,
                "total": part_totals.get((c, v, part), 0),
                "unique": part_unique.get((c, v, part), 0),
                "human_total": part_human_total.get((c, v, part), 0),
                "human_unique": part_human_unique.get((c, v, part), 0),
            }
            for (c, v, part) in sorted(
                set(part_totals)
                | set(part_human_total)
                | set(part_human_unique)
                | changes[PartStats].keys()
            )
        ],
    )
    sets(PartStats)
    add(
        MachineReasons,
        [
            {"campaign_id": c, "variant_id": v, "part": part, "reason": reason, "clicks": n}
            for (c, v, part, reason), n in sorted(by_table.get("reason", {}).items())
        ],
    )
    add(
        CellReasons,
        [
            {**dict(zip((*_CELL, "reason"), key, strict=True)), "clicks": n}
            for key, n in sorted(by_table.get("cell_reason", {}).items())
        ],
    )
    c_total, c_unique = by_table.get("campaign_total", {}), by_table.get("campaign_unique", {})
    add(
        CampaignStats,
        [
            {
                "campaign_id": c,
                "total": campaign_totals.get(c, 0),
                "unique": campaign_unique.get(c, 0),
                "human_total": c_total.get((c,), 0),
                "human_unique": c_unique.get((c,), 0),
            }
            for c in sorted(
                set(campaign_totals) | {k[0] for k in c_total} | {k[0] for k in c_unique}
            )
        ],
    )


# The key of a ``part_cell`` row, as the difference and this module spell it.
_CELL = ("campaign_id", "variant_id", "part", "hour", "device", "client", "country")

# The human membership of the cells' clicker sets, by their key in the difference.
_MEMBERS = ("hour_member", "day_member", "segment_member", "segment_day_member")


# The figures of each recipient's first and last link, by their key in the difference
# (``labelling.human_figures``) and their column of ``placement_stats``.
_ENDS = {
    "all_first": "first_clickers",
    "all_last": "last_clickers",
    "human_first": "human_first_clickers",
    "human_last": "human_last_clickers",
}
_COUNTERS = ("total", "unique", "human_total", "human_unique", "clicks", *_ENDS.values())


def _insert(
    connection: Connection, insert: Callable[..., Any], model: type[Any], rows: list[dict[str, Any]]
) -> Sequence[Any]:
    return insert_ignoring_conflicts(connection, insert, model, rows)


class Later:
    """Every row a rebuild's pages add, kept until ``write`` stores each table at once.

    A rebuild empties a campaign's aggregates and adds its clicks back a page of whole
    recipients at a time, so every clicker row is new, and counter rows of the same key
    from different pages just add up. Writing them per page would rewrite each (link,
    hour) cell once per page; here each row is written once.
    """

    def __init__(self) -> None:
        self.rows: dict[type[Any], dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.sets: dict[type[Any], Changes] = {}

    def insert(self, model: type[Any], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Keep clicker rows (new by construction); returns their keys, as an insert would."""
        return [self._keep(model, row) for row in rows]

    def add(self, model: type[Any], rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._keep(model, row)

    def _keep(self, model: type[Any], row: dict[str, Any]) -> tuple[Any, ...]:
        table = table_of(model)
        key = tuple(row[c.name] for c in table.primary_key.columns)
        kept = self.rows.setdefault(model, {})
        found = kept.get(key)
        if found is None:
            kept[key] = dict(row)
        else:
            for name in _COUNTERS:
                if name in row:
                    found[name] += row[name]
        return key

    def write(self, connection: Connection, insert: Callable[..., Any]) -> None:
        """Store every kept row, table by table in the writers' order, the cells with
        their clicker sets (nothing was there before, so nothing needs reading)."""
        for model, changes in self.sets.items():
            for key, row in self.rows.get(model, {}).items():
                row["clickers"], row["human_clickers"] = changes.applied(key)
        for model in TABLES:
            rows = [self.rows.get(model, {})[key] for key in sorted(self.rows.get(model, {}))]
            counted = bool(rows) and any(name in rows[0] for name in _COUNTERS)
            for i in range(0, len(rows), _PAGE):
                if counted:
                    _add_up(connection, insert, model, rows[i : i + _PAGE])
                else:  # a clicker table: rows and no counter
                    insert_ignoring_conflicts(connection, insert, model, rows[i : i + _PAGE])


_PAGE = 20_000  # rows per statement when a rebuild writes a table


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
    table = table_of(model)
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

        connection.execute(memo(shape, build_sqlite), rows)
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

    connection.execute(memo(shape, build_postgresql), {"rows": as_json(rows)})


def _upsert_pairs_postgresql(
    connection: Connection, pairs: list[dict[str, Any]]
) -> set[tuple[int, int]]:
    """One statement for every (placement, recipient) of the batch; returns the pairs that
    are new. ``xmax = 0`` holds exactly for a row this statement inserted (an updated row
    carries our transaction id), the usual PostgreSQL idiom for "inserted or updated"."""
    table = table_of(PlacementRecipient)
    columns = ", ".join(pairs[0])
    stmt = memo(
        ("pairs", "postgresql", tuple(pairs[0])),
        lambda: text(
            f"INSERT INTO {table.name} AS pr ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table.name}, :rows) "
            "ON CONFLICT (placement_id, recipient_id) DO UPDATE SET "
            "clicks = pr.clicks + excluded.clicks, "
            "human_clicks = pr.human_clicks + excluded.human_clicks, "
            "device = CASE WHEN excluded.first_clicked_at < pr.first_clicked_at "
            "THEN excluded.device ELSE pr.device END, "
            "first_clicked_at = LEAST(pr.first_clicked_at, excluded.first_clicked_at), "
            "last_clicked_at = GREATEST(pr.last_clicked_at, excluded.last_clicked_at) "
            "RETURNING placement_id, recipient_id, xmax = 0"
        ),
    )
    rows = connection.execute(stmt, {"rows": as_json(pairs)})
    return {(row[0], row[1]) for row in rows if row[2]}


def _bump_human_pairs(connection: Connection, deltas: list[tuple[tuple[Any, ...], int]]) -> None:
    """Add to ``human_clicks`` of (placement, recipient) rows this batch brought no click
    to: their recipient's older clicks were relabelled. Every such row exists, since the
    click it counts was stored before."""
    if not deltas:
        return
    table = table_of(PlacementRecipient)
    connection.execute(
        memo(
            ("human pairs", connection.dialect.name),
            lambda: (
                update(table)
                .where(
                    table.c.placement_id == bindparam("h_placement"),
                    table.c.recipient_id == bindparam("h_recipient"),
                )
                .values(human_clicks=table.c.human_clicks + bindparam("h_delta"))
            ),
        ),
        [
            {"h_placement": placement, "h_recipient": recipient, "h_delta": delta}
            for (_campaign, placement, recipient), delta in deltas
        ],
    )


def _bump_pairs(connection: Connection, pairs: list[dict[str, Any]]) -> None:
    """Add clicks to (placement, recipient) rows that existed before this batch (SQLite,
    where one writer at a time holds the database, so the two steps cannot interleave)."""
    connection.execute(
        memo(("bump", "sqlite"), _bump_statement),
        [
            {
                "b_placement": p["placement_id"],
                "b_recipient": p["recipient_id"],
                "b_clicks": p["clicks"],
                "b_first": p["first_clicked_at"],
                "b_last": p["last_clicked_at"],
                "b_device": p["device"],
                "b_human": p["human_clicks"],
            }
            for p in pairs
        ],
    )


def _bump_statement() -> Any:
    table = table_of(PlacementRecipient)
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
            human_clicks=table.c.human_clicks + bindparam("b_human"),
            first_clicked_at=case((earlier, first), else_=table.c.first_clicked_at),
            device=case((earlier, bindparam("b_device")), else_=table.c.device),
            last_clicked_at=case(
                (last > table.c.last_clicked_at, last), else_=table.c.last_clicked_at
            ),
        )
    )
    return stmt
