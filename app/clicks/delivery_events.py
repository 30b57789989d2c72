"""What an ESP's delivery events change: deliveries recorded, recipients who left "delivered".

``apply_events`` takes the events of a verified webhook (``app.ingest.esp``) and, for each one
whose Clickmap id (``app.tokens.MessageIdCodec``) names an email Clickmap personalized:

- stores it once in ``delivery_event`` (its ``idempotency_key`` is a digest of its fields, so
  an event posted again conflicts with its first copy and changes nothing);
- ``delivered``: records the delivery as the deliveries API does
  (``app.ingest.campaigns.record_deliveries``, at the event's time);
- a permanent ``bounced``, ``complained`` or ``dropped``: sets the delivery's status, writing
  the row if the sender never recorded the delivery. Those recipients leave "delivered": the
  click rate's denominator (``app.reports.stats.delivered_count``) counts ``delivered`` rows
  only. A complaint after delivery takes the recipient out too: a recipient who reported the
  email as spam is not one the campaign reached. The first status that is not ``delivered``
  stays, whatever arrives after it (ESPs do not post events in order). Transient bounces and
  bounces of unknown kind are stored but change nothing: the ESP retries those.

Clicks of the recipients whose delivery row appeared are judged again
(``app.clicks.recording.judge_again``), as for the deliveries API. An event without an id,
with an id that does not verify, or naming a campaign, variant or recipient that is gone is
counted and left out. Pure SQLAlchemy; the caller owns the transaction.

``remember_token`` is the Mailgun replay store: one insert per token, shared by every process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.clicks.machines import DEFAULT_THRESHOLDS, Thresholds
from app.clicks.recording import judge_again
from app.clicks.statements import dialect_insert
from app.ingest.campaigns import record_deliveries
from app.ingest.esp import DeliveryEvent
from app.models import (
    BOUNCED,
    COMPLAINED,
    DELIVERED,
    DROPPED,
    Campaign,
    Delivery,
    Recipient,
    Variant,
    WebhookToken,
    utcnow,
)
from app.models import DeliveryEvent as StoredEvent
from app.tokens import InvalidToken, MessageId, MessageIdCodec

MESSAGE_ID_LIMIT = 128


@dataclass
class Outcome:
    """What a webhook's events did, for its answer and the logs."""

    received: int = 0
    recorded: int = 0  # new events that were stored
    duplicates: int = 0  # events stored before: nothing changed
    ignored: int = 0  # events for mail that is not Clickmap's (no id)
    refused: int = 0  # ids that do not verify, or name what no longer exists
    by_event: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "received": self.received,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "refused": self.refused,
        }


def idempotency_key(event: DeliveryEvent) -> str:
    """A digest of everything the event says: the same event posted twice has the same key."""
    fields = [
        event.esp,
        event.event,
        event.raw_type,
        event.message_id,
        event.recipient,
        event.occurred_at.isoformat() if event.occurred_at else None,
        event.permanent,
    ]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _text(value: str, limit: int) -> str:
    """``value`` as text every database stores: no NUL, no lone surrogate, cut to ``limit``."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:limit]


def _status(event: DeliveryEvent) -> str | None:
    """The delivery status the event sets, or None when it sets none."""
    if event.event == "bounced":
        return BOUNCED if event.permanent is True else None
    return {"complained": COMPLAINED, "dropped": DROPPED}.get(event.event)


def _email(session: Session, found: MessageId) -> tuple[Campaign, Variant, Recipient] | None:
    campaign = session.get(Campaign, found.campaign_id)
    variant = session.get(Variant, found.variant_id)
    recipient = session.get(Recipient, found.recipient_id)
    if campaign is None or variant is None or recipient is None:
        return None
    if variant.campaign_id != campaign.id:
        return None
    return campaign, variant, recipient


def _set_status(
    session: Session, email: tuple[Campaign, Variant, Recipient], status: str, at: datetime
) -> None:
    campaign, variant, recipient = email
    insert = dialect_insert(session)
    statement = insert(Delivery).values(
        campaign_id=campaign.id,
        variant_id=variant.id,
        recipient_id=recipient.id,
        delivered_at=at,
        status=status,
        status_at=at,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["variant_id", "recipient_id"],
            set_={"status": status, "status_at": at},
            # The first status that is not "delivered" stays.
            where=Delivery.status == DELIVERED,
        )
    )


def apply_events(
    session: Session,
    events: Sequence[DeliveryEvent],
    message_ids: MessageIdCodec,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
) -> Outcome:
    """Store ``events`` and apply what they say (see the module's docstring)."""
    outcome = Outcome(received=len(events))
    received_at = now or utcnow()
    insert = dialect_insert(session)
    touched: set[tuple[int, int]] = set()
    for event in events:
        if event.message_id is None:
            outcome.ignored += 1
            continue
        try:
            if len(event.message_id) > MESSAGE_ID_LIMIT:
                raise InvalidToken("too long")
            found = message_ids.decode(event.message_id)
        except InvalidToken:
            outcome.refused += 1
            continue
        email = _email(session, found)
        if email is None:
            outcome.refused += 1
            continue
        campaign, variant, recipient = email
        stored = session.execute(
            insert(StoredEvent)
            .values(
                idempotency_key=idempotency_key(event),
                esp=event.esp,
                event=event.event,
                raw_type=_text(event.raw_type, 64),
                permanent=event.permanent,
                message_id=event.message_id,
                campaign_id=campaign.id,
                variant_id=variant.id,
                recipient_id=recipient.id,
                occurred_at=event.occurred_at,
                received_at=received_at,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(StoredEvent.id)
        )
        # RETURNING, not rowcount: it names the row inserted, on both databases alike.
        if stored.first() is None:
            outcome.duplicates += 1
            continue
        outcome.recorded += 1
        outcome.by_event[event.event] = outcome.by_event.get(event.event, 0) + 1
        at = event.occurred_at or received_at
        if event.event == "delivered":
            record_deliveries(session, campaign, variant.name, [recipient.external_id], at)
            touched.add((campaign.id, recipient.id))
            continue
        status = _status(event)
        if status is not None:
            _set_status(session, email, status, at)
            touched.add((campaign.id, recipient.id))
    if touched:
        # Clicks judged before their delivery was known are judged again against it.
        judge_again(session, sorted(touched), thresholds)
    return outcome


def remember_token(
    session: Session, esp: str, token: str, window_seconds: float, now: datetime | None = None
) -> bool:
    """Record ``token`` as used; True when it was used before (a replay).

    One insert that reports whether the row existed, so two workers given the same token at
    once cannot both accept it (the second waits on the first's row, then conflicts). Tokens
    older than the window are pruned here: past it the signature's timestamp refuses a
    replay anyway. The caller commits with the events, so a failed request forgets its token
    and the ESP's retry is accepted.
    """
    current = now or datetime.now(UTC)
    session.execute(
        delete(WebhookToken).where(
            WebhookToken.seen_at < current - timedelta(seconds=window_seconds)
        )
    )
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    result = session.execute(
        dialect_insert(session)(WebhookToken)
        .values(token_hash=digest, esp=esp, seen_at=current)
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(WebhookToken.token_hash)
    )
    return result.first() is None
