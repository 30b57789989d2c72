"""Storing clicks: the click as the redirector saw it, and the batch insert that keeps it once.

``ClickEvent`` is a click before anything about it is derived; its spool form is a plain
list whose fields follow ``RECORD_FIELDS`` (the one definition of that order: the redirect
path, ``app.clicks.tracking.record``, builds the list directly in it, and the writer decodes
it with ``ClickEvent.from_record``).

``record_clicks`` labels a batch of clicks human or machine (``app.clicks.labelling``),
inserts them and, in the same transaction, adds only the clicks it actually inserted to the
aggregates (``app.clicks.aggregates``), with the human figures of any click relabelled.
``click_id`` is minted before the redirect is answered, so a click replayed after a crash
or an outage conflicts with its first copy and counts nowhere twice.

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
from app.clicks.devices import classify, country
from app.clicks.labelling import store_labelled
from app.clicks.machines import DEFAULT_THRESHOLDS, Thresholds
from app.clicks.statements import dialect_insert, insert_ignoring_conflicts
from app.models import Click, Placement, Recipient

USER_AGENT_LIMIT = 512
PURPOSE_LIMIT = 64


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
    # The request's ``Sec-Purpose`` (or legacy ``Purpose``) header, when it had one.
    purpose: str | None = None

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
        click); the round-trip test holds it to ``to_record``. A record spooled by a version
        without ``purpose`` (ten fields) still reads, as a click without that header.
        """
        if len(record) == len(RECORD_FIELDS) - 1:
            record = [*record, None]
        (
            click_id,
            ts,
            campaign,
            variant,
            part,
            placement,
            recipient,
            method,
            agent,
            ip,
            purpose,
        ) = record
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
            None if purpose is None else str(purpose)[:PURPOSE_LIMIT],
        )


# The spool record's fields, in order: the one definition, shared by every builder.
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ClickEvent))
CLICKED_AT = RECORD_FIELDS.index("clicked_at")


def record_clicks(
    session: Session, events: Sequence[ClickEvent], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> int:
    """Store ``events``, labelled by the machine-click rules with ``thresholds``, and update
    the aggregates; returns how many clicks were new.

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
                "country": country(e.ip_prefix),
                "purpose": e.purpose,
            }
        )
    # Core statements on the session's connection: the ORM's bulk path would add per-row
    # bookkeeping that costs more than the insert itself.
    connection = session.connection()

    def insert_new(labelled: list[dict[str, Any]]) -> set[str]:
        return {row[0] for row in insert_ignoring_conflicts(connection, insert, Click, labelled)}

    stored, human = store_labelled(connection, rows, insert_new, thresholds)
    new = sorted(stored, key=lambda r: r["clicked_at"])
    if new or human:
        add_clicks(connection, insert, new, human)
    return len(new)


def judge_again(
    session: Session,
    keys: Sequence[tuple[int, int]],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> None:
    """Judge the stored clicks of these (campaign, recipient) pairs again and keep the
    aggregates exact: for evidence that arrives without a click, such as a delivery
    recorded after its recipient's clicks were judged. The caller owns the transaction."""
    connection = session.connection()
    _none, human = store_labelled(connection, [], lambda _rows: set(), thresholds, also=keys)
    if human:
        add_clicks(connection, dialect_insert(session), [], human)


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
