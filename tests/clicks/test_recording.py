"""``record_clicks``: clicks stored once, aggregates exactly in step, on each database."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clicks.recording import RECORD_FIELDS, ClickEvent, known_only, record_clicks
from app.models import (
    Campaign,
    Click,
    ClickHourly,
    PartHourly,
    Placement,
    PlacementRecipient,
    PlacementStats,
    Recipient,
    Variant,
)
from tests.factories import (
    AGENTS,
    DESKTOP,
    clicker_sets_exact,
    part_and_campaign_aggregates,
    race_writers,
)

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
NOON = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)


class World:
    """One campaign. Placements 0 and 1: variant A's HTML part; 2: variant A's AMP part;
    3: variant B's HTML part."""

    def __init__(self, session: Session) -> None:
        campaign = Campaign(name="c")
        session.add(campaign)
        session.flush()
        variant = Variant(campaign_id=campaign.id, name="A", html="<a>", amp="<a>")
        other = Variant(campaign_id=campaign.id, name="B", html="<a>")
        session.add_all([variant, other])
        session.flush()
        self.placements = []
        for variant_id, part, position in [
            (variant.id, "html", 0),
            (variant.id, "html", 1),
            (variant.id, "amp", 0),
            (other.id, "html", 0),
        ]:
            placement = Placement(
                campaign_id=campaign.id,
                variant_id=variant_id,
                part=part,
                position=position,
                kind="a",
                href="h",
                destination="https://e",
                tracked=True,
            )
            session.add(placement)
            self.placements.append(placement)
        self.recipients = [Recipient(external_id=f"r{i}") for i in range(3)]
        session.add_all(self.recipients)
        session.commit()
        self.campaign_id, self.variant_id = campaign.id, variant.id
        self.other_variant_id = other.id

    def click(
        self,
        placement: int = 0,
        recipient: int = 0,
        at: datetime = NOON,
        agent: str = DESKTOP,
        method: str = "GET",
    ) -> ClickEvent:
        target = self.placements[placement]
        return ClickEvent(
            secrets.token_hex(16),
            at,
            self.campaign_id,
            target.variant_id,
            target.part,
            target.id,
            self.recipients[recipient].id,
            method,
            agent,
            "192.0.2.0/24",
        )


@pytest.fixture
def world(session: Session) -> World:
    return World(session)


def aggregates(session: Session) -> dict[str, Any]:
    """The aggregate tables, and what they must equal when computed from raw clicks."""
    session.expire_all()
    raw_total = {
        p: n
        for p, n in session.execute(
            select(Click.placement_id, func.count()).group_by(Click.placement_id)
        )
    }
    raw_unique = {
        p: n
        for p, n in session.execute(
            select(Click.placement_id, func.count(func.distinct(Click.recipient_id))).group_by(
                Click.placement_id
            )
        )
    }
    stats = {s.placement_id: (s.total, s.unique) for s in session.scalars(select(PlacementStats))}
    assert stats == {p: (raw_total[p], raw_unique[p]) for p in raw_total}
    pairs = {
        (p.placement_id, p.recipient_id): p for p in session.scalars(select(PlacementRecipient))
    }
    raw_pairs = session.execute(
        select(
            Click.placement_id,
            Click.recipient_id,
            func.count(),
            func.min(Click.clicked_at),
            func.max(Click.clicked_at),
        ).group_by(Click.placement_id, Click.recipient_id)
    ).all()
    assert {(p, r): n for p, r, n, _, _ in raw_pairs} == {k: v.clicks for k, v in pairs.items()}
    hourly: dict[tuple[int, str], int] = {}
    for h in session.scalars(select(ClickHourly)):
        hourly[(h.placement_id, h.device)] = hourly.get((h.placement_id, h.device), 0) + h.total
    raw_devices = dict(
        ((p, d), n)
        for p, d, n in session.execute(
            select(Click.placement_id, Click.device, func.count()).group_by(
                Click.placement_id, Click.device
            )
        )
    )
    assert hourly == raw_devices
    found = part_and_campaign_aggregates(session)
    return {"stats": stats, "pairs": pairs, **found}


def test_clicks_and_aggregates(session: Session, world: World) -> None:
    events = [
        world.click(0, 0, NOON),
        world.click(0, 0, NOON + timedelta(minutes=40), PHONE),
        world.click(0, 1, NOON, PHONE, "HEAD"),
        world.click(1, 2, NOON),
    ]
    assert record_clicks(session, events) == 4
    session.commit()
    found = aggregates(session)
    assert found["stats"] == {world.placements[0].id: (3, 2), world.placements[1].id: (1, 1)}
    hours = {
        (h.placement_id, h.hour.replace(tzinfo=UTC), h.device): h.total
        for h in session.scalars(select(ClickHourly))
    }
    p0, p1 = world.placements[0].id, world.placements[1].id
    assert hours == {
        (p0, NOON.replace(minute=0), "desktop"): 1,
        (p0, NOON.replace(minute=0), "mobile"): 1,
        (p0, NOON.replace(hour=13, minute=0), "mobile"): 1,
        (p1, NOON.replace(minute=0), "desktop"): 1,
    }
    assert [c.method for c in session.scalars(select(Click).order_by(Click.id))] == [
        "GET",
        "GET",
        "HEAD",
        "GET",
    ]


def test_replays_count_once(session: Session, world: World) -> None:
    events = [world.click(0, 0), world.click(0, 1)]
    assert record_clicks(session, events) == 2
    session.commit()
    assert record_clicks(session, events) == 0  # the whole batch again
    assert record_clicks(session, [*events[:1], world.click(0, 0), *events]) == 1  # mixed
    session.commit()
    found = aggregates(session)
    assert found["stats"] == {world.placements[0].id: (3, 2)}
    assert found["parts"] == {(world.campaign_id, world.variant_id, "html"): (3, 2)}
    assert found["campaigns"] == {world.campaign_id: (3, 2)}
    assert record_clicks(session, []) == 0


def test_each_click_keeps_its_client_and_the_country_of_its_network(
    session: Session, world: World
) -> None:
    """The writer files a click under the email client its agent names and the country its
    stored network is registered to; a documentation range or no address has none."""
    outlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)"
    events = [
        dataclasses.replace(world.click(0, 0, agent=outlook), ip_prefix="8.8.8.0/24"),
        dataclasses.replace(world.click(0, 1, agent=PHONE), ip_prefix="2001:67c:2e8::/48"),
        world.click(1, 0, agent=AGENTS["desktop"]),  # 192.0.2.0/24
        dataclasses.replace(world.click(1, 1, agent=AGENTS["desktop"]), ip_prefix=None),
    ]
    assert record_clicks(session, events) == 4
    stored = {
        click_id: (client, country)
        for click_id, client, country in session.execute(
            select(Click.click_id, Click.client, Click.country)
        )
    }
    assert [stored[e.click_id] for e in events] == [
        ("Outlook", "US"),
        ("In-app browser", "NL"),  # an iPhone web view without Safari's tokens
        ("Chrome", None),
        ("Chrome", None),
    ]


def test_first_click_wins_even_when_it_arrives_late(session: Session, world: World) -> None:
    # A click spooled by a process that died is replayed after newer clicks were stored.
    record_clicks(session, [world.click(0, 0, NOON, PHONE)])
    session.commit()
    record_clicks(session, [world.click(0, 0, NOON - timedelta(hours=3), DESKTOP)])
    session.commit()
    pair = session.scalars(select(PlacementRecipient)).one()
    assert (pair.clicks, pair.device) == (2, "desktop")
    assert pair.first_clicked_at.replace(tzinfo=UTC) == NOON - timedelta(hours=3)
    assert pair.last_clicked_at.replace(tzinfo=UTC) == NOON
    assert session.scalars(select(PlacementStats)).one().unique == 1


def test_known_only_drops_clicks_of_removed_placements(session: Session, world: World) -> None:
    kept = world.click(0, 0)
    session.delete(world.placements[1])
    session.commit()
    gone = world.click(0, 0)
    gone = ClickEvent(
        **{**{f: getattr(gone, f) for f in gone.__dataclass_fields__}, "placement_id": 999_999}
    )
    assert known_only(session, [kept, gone]) == [kept]


def test_spool_record_round_trip(world: World) -> None:
    event = world.click(agent='Mozilla ☃ "quoted"')
    record = event.to_record()
    assert ClickEvent.from_record(record) == event
    assert tuple(ClickEvent.__dataclass_fields__) == RECORD_FIELDS
    assert record[RECORD_FIELDS.index("clicked_at")] == event.clicked_at.timestamp()
    assert record[RECORD_FIELDS.index("ip_prefix")] == event.ip_prefix


@pytest.mark.parametrize("record", [[], ["id", 1.0], [None] * 11, "not a record", 42])
def test_a_malformed_record_is_refused(record: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        ClickEvent.from_record(record)


def test_concurrent_writers_and_replays_stay_consistent(app: Flask, world: World) -> None:
    """Eight writers at once, each with its own connection, some replaying the others'
    clicks: totals, uniques and per-recipient rows come out exact."""
    factory = app.extensions["clickmap.sessionmaker"]
    batches = [[world.click(p % 2, r % 3) for p in range(5) for r in range(5)] for _ in range(8)]
    race_writers(
        factory,
        [
            [mine[:12], replayed, mine[12:], mine]
            for mine, replayed in ((batches[i], batches[(i + 1) % 8]) for i in range(8))
        ],
    )
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Click)) == 8 * 25
        found = aggregates(s)
        p0, p1 = world.placements[0].id, world.placements[1].id
        assert found["stats"] == {p0: (8 * 15, 3), p1: (8 * 10, 3)}


def test_a_clicker_counts_once_per_part_and_per_campaign(session: Session, world: World) -> None:
    """Two links of one part, the AMP part, and another variant: each part counts its own
    clickers, and the campaign counts a person once whatever they clicked."""
    c, a, b = world.campaign_id, world.variant_id, world.other_variant_id
    assert record_clicks(session, [world.click(0, 0), world.click(1, 0), world.click(0, 1)]) == 3
    session.commit()
    found = aggregates(session)
    assert found["parts"] == {(c, a, "html"): (3, 2)}
    assert found["campaigns"] == {c: (3, 2)}
    # The same people, later, in the AMP part and in variant B: new part clickers, not new
    # campaign clickers. Recipient 2 is new everywhere.
    later = NOON + timedelta(hours=1)
    batch = [world.click(2, 0, later), world.click(3, 0, later), world.click(3, 1, later)]
    assert record_clicks(session, [*batch, world.click(2, 2, later, PHONE)]) == 4
    session.commit()
    found = aggregates(session)
    assert found["parts"] == {(c, a, "html"): (3, 2), (c, a, "amp"): (2, 2), (c, b, "html"): (2, 2)}
    assert found["campaigns"] == {c: (7, 3)}
    # Replaying the batch changes nothing; one more click by a known clicker adds a total.
    assert record_clicks(session, [*batch, world.click(1, 1, later)]) == 1
    session.commit()
    found = aggregates(session)
    assert found["parts"][(c, a, "html")] == (4, 2)
    assert found["campaigns"] == {c: (8, 3)}
    hours = {
        (h.part, h.variant_id, h.hour.astimezone(UTC), h.device): h.total
        for h in session.scalars(select(PartHourly))
    }
    assert hours == {
        ("html", a, NOON.replace(minute=0), "desktop"): 3,
        ("html", a, later.replace(minute=0), "desktop"): 1,
        ("amp", a, later.replace(minute=0), "desktop"): 1,
        ("amp", a, later.replace(minute=0), "mobile"): 1,
        ("html", b, later.replace(minute=0), "desktop"): 2,
    }


def test_one_batch_with_the_same_clicker_in_many_places(session: Session, world: World) -> None:
    # Within one batch the recipient is new to the part through two links at once.
    events = [world.click(p, 0, NOON + timedelta(minutes=p)) for p in range(4)] * 2
    assert record_clicks(session, events) == 4
    session.commit()
    found = aggregates(session)
    assert found["campaigns"] == {world.campaign_id: (4, 1)}
    assert sorted(found["parts"].values()) == [(1, 1), (1, 1), (2, 1)]


def test_concurrent_writers_keep_part_and_campaign_aggregates_exact(
    app: Flask, world: World
) -> None:
    """Writers with their own sessions record overlapping clicks of the same recipients on
    every part at once, replaying each other's batches: the clickers and counters equal a
    recomputation over the stored clicks."""
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        extra = [Recipient(external_id=f"many{i}") for i in range(12)]
        s.add_all(extra)
        s.commit()
        world.recipients.extend(extra)
    writers = 6
    batches = [
        [
            world.click(p, (w + r) % len(world.recipients), NOON + timedelta(minutes=7 * r))
            for r in range(10)
            for p in range(4)
        ]
        for w in range(writers)
    ]
    race_writers(
        factory,
        [
            [mine[:20], replayed[::2], mine[20:], replayed, mine]
            for mine, replayed in ((batches[i], batches[(i + 1) % writers]) for i in range(writers))
        ],
    )
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Click)) == writers * 40
        found = aggregates(s)
        assert found["campaigns"] == {world.campaign_id: (writers * 40, 15)}
        clicker_sets_exact(s)  # the sets, written read-modify-write, lost no recipient
