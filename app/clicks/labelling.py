"""Labelling clicks human or machine as the writer stores them, with the human figures of
the aggregates kept exact when a label changes.

A click's label can depend on the recipient's other clicks on the same email (a sweep, a
honeypot hit), and those may arrive in a later batch. So for every recipient a batch touches,
the writer reads all of that recipient's clicks on the campaign, judges them again together
with the new ones (``machines.classify_email``), stores the new clicks with their labels,
relabels stored clicks whose verdict changed, and gives the aggregates the difference between
the recipient's figures before and after (``human_figures``: the human ones, and each
recipient's first and last link, which are not sums either). After every batch the
stored labels are what judging all stored clicks would give, which is what a reclassify
(``rebuild.rebuild_campaign(relabel_clicks=True)``) computes from scratch, so running it
changes nothing unless a rule, its settings or its data changed. A delivery recorded after
its clicks were judged is taken into account at that recipient's next click, or by a
reclassify.

Concurrency: on PostgreSQL several writers may store one recipient's clicks at once. Each
takes a transaction-scoped advisory lock per (campaign, recipient), in one global order,
before it reads, so the "before" it subtracts is never stale; a campaign's rebuild or
reclassify takes the campaign's lock exclusively and writers take it shared. On SQLite one
writer holds the database at a time. Pure SQLAlchemy: no Flask.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    bindparam,
    case,
    cast,
    func,
    select,
    text,
    true,
)
from sqlalchemy.engine import Connection

from app.clicks.clicker_sets import segment_value
from app.clicks.machines import (
    DEFAULT_THRESHOLDS,
    ClickFacts,
    Thresholds,
    Verdict,
    classify_email,
    stored_reasons,
)
from app.clicks.statements import memo, table_of
from app.models import Click, Delivery, Placement
from app.vocabulary import HONEYPOT

# The click columns judging and the figures need, as dict keys of a click row.
COLUMNS = (
    Click.id,
    Click.click_id,
    Click.clicked_at,
    Click.campaign_id,
    Click.variant_id,
    Click.part,
    Click.placement_id,
    Click.recipient_id,
    Click.method,
    Click.user_agent,
    Click.device,
    Click.client,
    Click.country,
    Click.ip_prefix,
    Click.purpose,
    Click.label,
    Click.reasons,
    Click.certainty,
)

_CHUNK = 900  # ids per IN list: below every SQLite build's bound-parameter limit

Figures = Counter[tuple[Any, ...]]


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def human_figures(clicks: Iterable[dict[str, Any]]) -> Figures:
    """What ``clicks`` (all of their recipients' clicks on their campaigns, labelled) add to
    the figures the writer keeps by difference, keyed by table and key: the human figures of
    every aggregate, the machine reasons, which link each recipient clicked first and
    last in each email part (of all clicks, and of human clicks), and which cells' human
    clicker sets each recipient belongs to.

    Uniques and first and last links are per recipient, so the clicks of one recipient
    must all be given at once; the writer and the rebuild pass whole recipients.
    """
    figures: Figures = Counter()
    pairs: set[tuple[int, int, int]] = set()
    parts: set[tuple[int, int, str, int]] = set()
    campaigns: set[tuple[int, int]] = set()
    # Per (campaign, variant, part, recipient): the (time, placement) of the first and last
    # click, of any click and of human ones. Ties in time go to the lower placement id.
    ends: dict[tuple[str, int, int, str, int], tuple[Any, Any]] = {}
    for c in clicks:
        campaign, variant, part = c["campaign_id"], c["variant_id"], c["part"]
        placement, recipient = c["placement_id"], c["recipient_id"]
        moment = (c["clicked_at"], placement)
        human = c["label"] == "human"
        for scope in ("all", "human") if human else ("all",):
            key = (scope, campaign, variant, part, recipient)
            first, last = ends.get(key, (moment, moment))
            ends[key] = (min(first, moment), max(last, moment))
        hour = _hour(c["clicked_at"])
        cell = (
            campaign,
            variant,
            part,
            hour,
            c["device"],
            segment_value(c["client"]),
            segment_value(c["country"]),
        )
        if not human:
            for reason in stored_reasons(c["reasons"]):
                figures["reason", campaign, variant, part, reason] += 1
                figures["cell_reason", *cell, reason] += 1
            continue
        figures["part_cell", *cell] += 1
        figures["pair", campaign, placement, recipient] += 1
        # Human membership of the cells' clicker sets (``app.clicks.clicker_sets``): one
        # per cell and recipient however many clicks, so the difference is +1 or -1.
        figures["hour_member", campaign, placement, hour, c["device"], recipient] = 1
        day = hour.replace(hour=0)
        figures["daily", campaign, placement, day, c["device"]] += 1
        figures["day_member", campaign, placement, day, c["device"], recipient] = 1
        segment = (c["device"], segment_value(c["client"]), segment_value(c["country"]))
        figures["segment", campaign, placement, *segment] += 1
        figures["segment_member", campaign, placement, *segment, recipient] = 1
        figures["segment_daily", campaign, placement, day, *segment] += 1
        figures["segment_day_member", campaign, placement, day, *segment, recipient] = 1
        figures["part_member", campaign, variant, part, recipient] = 1
        figures["placement_total", campaign, placement] += 1
        figures["hourly", campaign, placement, hour, c["device"]] += 1
        figures["part_hourly", campaign, variant, part, hour, c["device"]] += 1
        figures["part_total", campaign, variant, part] += 1
        figures["campaign_total", campaign] += 1
        pairs.add((campaign, placement, recipient))
        parts.add((campaign, variant, part, recipient))
        campaigns.add((campaign, recipient))
    for campaign, placement, _recipient in pairs:
        figures["placement_unique", campaign, placement] += 1
    for campaign, variant, part, _recipient in parts:
        figures["part_unique", campaign, variant, part] += 1
    for campaign, _recipient in campaigns:
        figures["campaign_unique", campaign] += 1
    for (scope, campaign, *_part), ((_at, first), (_at2, last)) in ends.items():
        figures[f"{scope}_first", campaign, first] += 1
        figures[f"{scope}_last", campaign, last] += 1
    return figures


def difference(after: Figures, before: Figures) -> dict[tuple[Any, ...], int]:
    """``after - before`` per key, negative values kept, zeros dropped."""
    keys = after.keys() | before.keys()
    return {k: d for k in keys if (d := after.get(k, 0) - before.get(k, 0))}


def thresholds_from(settings: Mapping[str, Any]) -> Thresholds:
    """The rules' thresholds: the defaults, with the ``MACHINE_THRESHOLDS`` setting's
    overrides. ``ValueError`` names an unknown threshold or a value that is not a number."""
    overrides = dict(settings.get("MACHINE_THRESHOLDS") or {})
    fields = {f.name: f.type for f in dataclasses.fields(Thresholds)}
    values: dict[str, Any] = {}
    for name, raw in overrides.items():
        if name not in fields:
            raise ValueError(f"unknown machine threshold {name!r}; known: {', '.join(fields)}")
        number = float(raw)
        values[name] = int(number) if fields[name] in (int, "int") else number
    return dataclasses.replace(DEFAULT_THRESHOLDS, **values)


# --- reading what judging needs -----------------------------------------------------------


def _chunks(values: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i : i + _CHUNK])


def lock_recipients(connection: Connection, keys: Sequence[tuple[int, int]]) -> None:
    """Hold (campaign, recipient) for this transaction; ``keys`` sorted.

    On PostgreSQL: the campaign's shared lock first (a rebuild holds it exclusively), then
    each recipient's, in key order, so two writers never wait on each other in a cycle. On
    SQLite: the database's write lock, taken before anything is read. Python's driver starts
    a transaction only at the first write, so the reads would otherwise see the database as
    it was before another writer's commit, and the "before" would be stale."""
    if not keys:
        return
    if connection.dialect.name == "sqlite":
        take_write_lock(connection)
        return
    campaigns = sorted({c for c, _r in keys})
    connection.execute(
        text(
            "SELECT count(pg_advisory_xact_lock_shared(c)) FROM "
            "(SELECT c FROM unnest(CAST(:cs AS bigint[])) AS k(c) ORDER BY c) AS s"
        ),
        {"cs": campaigns},
    )
    connection.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(c, r)) FROM "
            "(SELECT c, r FROM unnest(CAST(:cs AS int[]), CAST(:rs AS int[])) AS k(c, r) "
            "ORDER BY c, r) AS s"
        ),
        {"cs": [c for c, _r in keys], "rs": [r for _c, r in keys]},
    )


def take_write_lock(connection: Connection) -> None:
    """SQLite: begin the write transaction now (a write statement that changes nothing),
    so that what the transaction reads next is what it will write on."""
    connection.execute(text("UPDATE campaign SET id = id WHERE id < 0"))


def lock_campaign(connection: Connection, campaign_id: int) -> None:
    """Hold a campaign alone for this transaction (a rebuild, a reclassify): writers wait
    for it, and it waits for the writers already storing the campaign's clicks."""
    if connection.dialect.name == "sqlite":
        take_write_lock(connection)
    elif connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:c AS bigint))"), {"c": campaign_id}
        )


def stored_clicks(
    connection: Connection,
    keys: Sequence[tuple[int, int]],
    where: ColumnElement[bool] | None = None,
) -> list[dict[str, Any]]:
    """Every stored click of these (campaign, recipient) pairs (and ``where``), as rows."""
    per_campaign: dict[int, list[int]] = {}
    for campaign, recipient in keys:
        per_campaign.setdefault(campaign, []).append(recipient)
    found: list[dict[str, Any]] = []
    postgresql = connection.dialect.name == "postgresql"
    for campaign, recipients in per_campaign.items():
        for chunk in _chunks(recipients):
            conditions = [Click.campaign_id == campaign, *([] if where is None else [where])]
            if postgresql:
                # One index lookup per recipient, whatever the statistics say: a month's new
                # partition has none until autovacuum analyzes it, and with an IN list the
                # planner then read every click of the campaign and filtered them, so each
                # batch cost more as the campaign grew.
                wanted = (
                    func.unnest(cast(chunk, ARRAY(Integer))).table_valued("id").render_derived()
                )
                clicks = (
                    select(*COLUMNS).where(*conditions, Click.recipient_id == wanted.c.id).lateral()
                )
                query = select(clicks).select_from(wanted).join(clicks, true())
            else:
                query = select(*COLUMNS).where(*conditions, Click.recipient_id.in_(chunk))
            rows = connection.execute(query)
            found.extend(dict(row._mapping) for row in rows)
    return found


class EmailFacts:
    """What the rules know of the emails a batch's clicks came from: each variant part's
    tracked links (honeypot aside) and honeypot placements, and each delivery's time."""

    def __init__(self, connection: Connection, clicks: Sequence[dict[str, Any]]) -> None:
        variants = sorted({c["variant_id"] for c in clicks})
        self.link_count: dict[tuple[int, str], int] = {}
        self.honeypots: set[int] = set()
        self.delivered_at: dict[tuple[int, int], datetime] = {}
        for chunk in _chunks(variants):
            honeypot = Placement.kind == HONEYPOT
            for variant, part, links in connection.execute(
                select(
                    Placement.variant_id,
                    Placement.part,
                    func.sum(case((honeypot, 0), else_=1)),
                )
                .where(Placement.variant_id.in_(chunk), Placement.tracked.is_(True))
                .group_by(Placement.variant_id, Placement.part)
            ):
                self.link_count[variant, part] = int(links or 0)
            self.honeypots.update(
                connection.scalars(
                    select(Placement.id).where(Placement.variant_id.in_(chunk), honeypot)
                )
            )
        per_variant: dict[int, set[int]] = {}
        for c in clicks:
            per_variant.setdefault(c["variant_id"], set()).add(c["recipient_id"])
        for variant, recipients in per_variant.items():
            for chunk in _chunks(sorted(recipients)):
                for recipient, moment in connection.execute(
                    select(Delivery.recipient_id, Delivery.delivered_at).where(
                        Delivery.variant_id == variant, Delivery.recipient_id.in_(chunk)
                    )
                ):
                    self.delivered_at[variant, recipient] = moment

    def facts(self, c: dict[str, Any]) -> ClickFacts:
        return ClickFacts(
            clicked_at=c["clicked_at"],
            method=c["method"],
            user_agent=c["user_agent"],
            ip_prefix=c["ip_prefix"],
            purpose=c["purpose"],
            recipient_id=c["recipient_id"],
            placement_id=c["placement_id"],
            delivered_at=self.delivered_at.get((c["variant_id"], c["recipient_id"])),
            honeypot=c["placement_id"] in self.honeypots,
        )


def judge(
    clicks: Sequence[dict[str, Any]],
    emails: EmailFacts,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Verdict]:
    """The verdict for each of ``clicks`` (whole recipients), email part by email part."""
    verdicts: list[Verdict | None] = [None] * len(clicks)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, c in enumerate(clicks):
        groups.setdefault((c["variant_id"], c["part"]), []).append(i)
    for (variant, part), members in groups.items():
        found = classify_email(
            [emails.facts(clicks[i]) for i in members],
            emails.link_count.get((variant, part), 0),
            thresholds,
        )
        for i, verdict in zip(members, found, strict=True):
            verdicts[i] = verdict
    return [v for v in verdicts if v is not None]


def apply_verdicts(
    clicks: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]
) -> list[dict[str, Any]]:
    """Give each click its verdict's label, reasons and certainty; returns the stored ones
    (rows with an ``id``) whose label changed, for ``relabel`` to write."""
    changed = []
    for c, verdict in zip(clicks, verdicts, strict=True):
        new = (verdict.label, ",".join(verdict.reasons), verdict.certainty)
        if "id" in c and (c["label"], c["reasons"], c["certainty"]) != new:
            changed.append(c)
        c["label"], c["reasons"], c["certainty"] = new
    return changed


# --- the writer's step ----------------------------------------------------------------------


def store_labelled(
    connection: Connection,
    rows: list[dict[str, Any]],
    insert_new: Callable[[list[dict[str, Any]]], set[str]],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    also: Iterable[tuple[int, int]] = (),
) -> tuple[list[dict[str, Any]], dict[tuple[Any, ...], int]]:
    """Label ``rows`` (new clicks, without labels), store them with ``insert_new`` (which
    returns the click ids it inserted), relabel the stored clicks of the same recipients,
    and of the (campaign, recipient) pairs in ``also``, whose verdict changed; returns the
    clicks inserted and the human figures' difference.
    """
    keys = sorted({(r["campaign_id"], r["recipient_id"]) for r in rows} | set(also))
    lock_recipients(connection, keys)
    history = stored_clicks(connection, keys)
    known = {h["click_id"] for h in history}
    fresh = [r for r in rows if r["click_id"] not in known]  # a replay changes nothing
    before = human_figures(history)
    everything = history + fresh
    verdicts = judge(everything, EmailFacts(connection, everything), thresholds)
    relabelled = apply_verdicts(everything, verdicts)
    inserted = insert_new(fresh)
    stored = [r for r in fresh if r["click_id"] in inserted]
    relabel(connection, relabelled)
    after = human_figures(history + stored)
    return stored, difference(after, before)


def relabel(connection: Connection, clicks: Sequence[dict[str, Any]]) -> None:
    """Write the (new) labels of stored ``clicks`` (rows with their ``id``)."""
    if not clicks:
        return
    table = table_of(Click)
    # On PostgreSQL the click's time names its month's partition: one index is probed, not
    # one per month.
    where = table.c.id == bindparam("b_id")
    if connection.dialect.name == "postgresql":
        where &= table.c.clicked_at == bindparam("b_clicked_at")
    connection.execute(
        memo(
            ("relabel", connection.dialect.name),
            lambda: (
                table.update()
                .where(where)
                .values(
                    label=bindparam("b_label"),
                    reasons=bindparam("b_reasons"),
                    certainty=bindparam("b_certainty"),
                )
            ),
        ),
        [
            {
                "b_id": c["id"],
                "b_clicked_at": c["clicked_at"],
                "b_label": c["label"],
                "b_reasons": c["reasons"],
                "b_certainty": c["certainty"],
            }
            for c in clicks
        ],
    )
