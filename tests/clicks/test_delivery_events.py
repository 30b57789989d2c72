"""What the ESPs' events change, on each database: deliveries recorded and clicks judged again,
recipients leaving "delivered" for good, every event stored once, and Mailgun's tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clicks.delivery_events import apply_events, idempotency_key, remember_token
from app.clicks.recording import record_clicks
from app.ingest import campaigns
from app.ingest.esp import DeliveryEvent
from app.models import Campaign, Click, Delivery, WebhookToken
from app.models import DeliveryEvent as StoredEvent
from app.reports.listings import campaign_list
from app.reports.stats import delivered_count, delivery_outcomes
from app.tokens import MessageIdCodec
from tests.factories import SENT, TEST_SECRET, click_event, email_with_links, recipients

IDS = MessageIdCodec([TEST_SECRET])


def two_variants(session: Session) -> Campaign:
    created = campaigns.create_campaign(
        session,
        "Two",
        [
            campaigns.VariantInput("A", email_with_links(2)),
            campaigns.VariantInput("B", email_with_links(2)),
        ],
        rules=campaigns.LinkRules(),
        max_part_bytes=1_000_000,
    )
    session.flush()
    return created.campaign


def happened(
    campaign: Campaign,
    recipient: int,
    event: str,
    at: datetime = SENT,
    *,
    variant: int = 0,
    permanent: bool | None = None,
    raw_type: str = "test",
) -> DeliveryEvent:
    cid = IDS.encode(campaign.id, campaign.variants[variant].id, recipient)
    return DeliveryEvent("sendgrid", event, cid, "a@x.example", at, permanent, raw_type)


def statuses(session: Session) -> list[tuple[int, str]]:
    session.expire_all()
    rows = session.execute(select(Delivery.recipient_id, Delivery.status))
    return sorted((int(recipient), str(status)) for recipient, status in rows)


def test_delivered_bounced_and_complained_recipients(session: Session) -> None:
    campaign = two_variants(session)
    ids = recipients(session, "ann", "bob", "cy", "dee")
    ann, bob, cy, dee = (ids[name] for name in ("ann", "bob", "cy", "dee"))
    outcome = apply_events(
        session,
        [
            happened(campaign, ann, "delivered"),
            happened(campaign, bob, "delivered"),
            happened(campaign, cy, "delivered"),
            happened(campaign, bob, "bounced", permanent=True),
            happened(campaign, cy, "complained", SENT + timedelta(days=1)),
            happened(campaign, dee, "dropped"),
        ],
        IDS,
    )
    assert (outcome.recorded, outcome.duplicates) == (6, 0)
    assert statuses(session) == sorted(
        [(ann, "delivered"), (bob, "bounced"), (cy, "complained"), (dee, "dropped")]
    )
    # Only ann is still delivered: the complaint after delivery takes cy out too.
    assert delivered_count(session, campaign.id, None) == 1
    assert delivery_outcomes(session, campaign.id, campaign.variants[0].id) == (
        delivery_outcomes(session, campaign.id, None)
    )
    found = delivery_outcomes(session, campaign.id, None)
    assert (found.delivered, found.bounced, found.complained, found.dropped) == (1, 1, 1, 1)
    rows, _count = campaign_list(session)
    assert [row.delivered for row in rows] == [1]


def test_the_first_status_stays_whatever_comes_after(session: Session) -> None:
    campaign = two_variants(session)
    (ann,) = recipients(session, "ann").values()
    later = SENT + timedelta(minutes=5)
    apply_events(session, [happened(campaign, ann, "bounced", later, permanent=True)], IDS)
    apply_events(session, [happened(campaign, ann, "delivered", SENT)], IDS)
    apply_events(session, [happened(campaign, ann, "complained", later)], IDS)
    assert statuses(session) == [(ann, "bounced")]
    session.expire_all()
    row = session.scalars(select(Delivery)).one()
    assert (row.delivered_at, row.status_at) == (later, later)


def test_a_transient_or_unknown_bounce_changes_no_status(session: Session) -> None:
    campaign = two_variants(session)
    (ann,) = recipients(session, "ann").values()
    apply_events(
        session,
        [
            happened(campaign, ann, "delivered"),
            happened(campaign, ann, "bounced", permanent=False, raw_type="blocked"),
            happened(campaign, ann, "bounced", permanent=None, raw_type="unknown"),
        ],
        IDS,
    )
    assert statuses(session) == [(ann, "delivered")]
    assert session.scalar(select(func.count()).select_from(StoredEvent)) == 3


def test_each_event_is_stored_once(session: Session) -> None:
    campaign = two_variants(session)
    (ann,) = recipients(session, "ann").values()
    events = [happened(campaign, ann, "delivered"), happened(campaign, ann, "delivered")]
    first = apply_events(session, events, IDS)
    again = apply_events(session, events, IDS)
    assert (first.recorded, first.duplicates, again.recorded, again.duplicates) == (1, 1, 0, 2)
    assert session.scalar(select(func.count()).select_from(StoredEvent)) == 1
    assert idempotency_key(events[0]) == idempotency_key(events[1])
    other = happened(campaign, ann, "delivered", SENT + timedelta(seconds=1))
    assert idempotency_key(other) != idempotency_key(events[0])


def test_ids_that_are_not_clickmaps_are_left_out(session: Session) -> None:
    campaign = two_variants(session)
    (ann,) = recipients(session, "ann").values()
    a, b = campaign.variants[0].id, campaign.variants[1].id
    mixed = MessageIdCodec([TEST_SECRET]).encode(campaign.id + 1, a, ann)  # no such campaign
    events = [
        DeliveryEvent("ses", "delivered", None, None, SENT, None, "Delivery"),
        DeliveryEvent("ses", "delivered", "cm_nonsense", None, SENT, None, "Delivery"),
        DeliveryEvent("ses", "delivered", mixed, None, SENT, None, "Delivery"),
        DeliveryEvent(
            "ses", "delivered", IDS.encode(campaign.id, b, ann + 99), None, SENT, None, "Delivery"
        ),
    ]
    outcome = apply_events(session, events, IDS)
    assert (outcome.ignored, outcome.refused, outcome.recorded) == (1, 3, 0)
    assert statuses(session) == []


def test_a_delivery_after_its_clicks_judges_them_again(session: Session) -> None:
    """A click stored before its delivery was known is a person's; the ESP then reports the
    delivery two minutes later, and the click becomes a machine's (it came before)."""
    campaign = two_variants(session)
    (ann,) = recipients(session, "ann").values()
    link = next(p for p in campaign.variants[0].placements if p.tracked)
    record_clicks(session, [click_event(link, ann, SENT, ip_prefix="198.51.100.0/24")])
    assert session.scalars(select(Click.label)).one() == "human"
    apply_events(session, [happened(campaign, ann, "delivered", SENT + timedelta(minutes=2))], IDS)
    session.expire_all()
    assert session.scalars(select(Click.label)).one() == "machine"


def test_a_token_is_used_once_and_forgotten_after_its_window(session: Session) -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert remember_token(session, "mailgun", "t" * 50, 660, now) is False
    assert remember_token(session, "mailgun", "t" * 50, 660, now) is True
    assert remember_token(session, "mailgun", "\ud800", 660, now) is False  # any text at all
    later = now + timedelta(seconds=661)
    assert remember_token(session, "mailgun", "u" * 50, 660, later) is False
    assert session.scalar(select(func.count()).select_from(WebhookToken)) == 1
