"""Storing clicks: the click as the redirector saw it, and the batch insert that keeps it once.

``ClickEvent`` is a click before anything about it is derived; its spool form is a plain
list whose fields follow ``RECORD_FIELDS`` (the one definition of that order: the redirect
path, ``app.clicks.tracking.record``, builds the list directly in it, and the writer decodes
it with ``ClickEvent.from_record``).

``record_clicks`` inserts a batch of clicks and, in the same transaction, adds only the
clicks it actually inserted to the aggregates (``app.clicks.aggregates``). ``click_id`` is
minted before the redirect is answered, so a click replayed after a crash or an outage
conflicts with its first copy and counts nowhere twice.

Concurrency: several writers (one per server process, on many hosts) may record at once.
Every statement is an insert that resolves conflicts in the database (ON CONFLICT), rows are
touched in one global order (table by table, key by key) so writers never deadlock, and a
first click by a recipient is decided by the insert that won the row, never by a read.
Pure SQLAlchemy: no Flask, works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clicks.aggregates import add_clicks
from app.clicks.devices import classify
from app.clicks.statements import dialect_insert, insert_ignoring_conflicts
from app.models import Click, Placement, Recipient

USER_AGENT_LIMIT = 512


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One click as the redirector saw it, before anything about it is derived.

    The order of these fields is the order of the spool record (``RECORD_FIELDS``).
    """

    click_id: str
    clicked_at: datetime  # aware, UTC; a Unix timestamp in the record
    campaign_id: int
    variant_id: int
    part: str
    placement_id: int
    recipient_id: int
    method: str
    user_agent: str
    ip_prefix: str | None

    def to_record(self) -> list[Any]:
        """The compact JSON-able form the spool keeps: the fields in ``RECORD_FIELDS``
        order, the time as a Unix timestamp."""
        record = [getattr(self, name) for name in RECORD_FIELDS]
        record[CLICKED_AT] = self.clicked_at.timestamp()
        return record

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> ClickEvent:
        """The event of a spool record; ``ValueError`` or ``TypeError`` if it is not one.

        Unpacked by position, in ``RECORD_FIELDS`` order, for speed (the writer decodes every
        click); the round-trip test holds it to ``to_record``.
        """
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


# The spool record's fields, in order: the one definition, shared by every builder.
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ClickEvent))
CLICKED_AT = RECORD_FIELDS.index("clicked_at")


def record_clicks(session: Session, events: Sequence[ClickEvent]) -> int:
    """Store ``events`` and update the aggregates; returns how many clicks were new.

    The caller owns the transaction (commit after, roll back on error). Replayed events
    (a ``click_id`` already stored) are ignored entirely.
    """
    unique_events = list({e.click_id: e for e in events}.values())
    if not unique_events:
        return 0
    insert = dialect_insert(session)
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
    inserted = {row[0] for row in insert_ignoring_conflicts(connection, insert, Click, rows)}
    new = sorted(
        (row for row in rows if row["click_id"] in inserted), key=lambda r: r["clicked_at"]
    )
    if new:
        add_clicks(connection, insert, new)
    return len(new)


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
