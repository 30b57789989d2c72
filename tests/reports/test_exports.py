"""Raw clicks for export: keyset pages in time order, and cursors nobody can misuse."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Campaign, Click
from app.reports.exports import MAX_LIMIT, click_page, encode_cursor
from app.reports.stats import ClickFilter
from app.vocabulary import HONEYPOT
from tests.factories import AGENTS, T0, click, make_campaign, placement, recipients

# Times with ties (three clicks at T0) and microseconds that must survive both databases.
OFFSETS = [0, 0, 0, 0.000001, 0.000002, 1, 59.5, 60, 3600, 3600, 7200.25, 86400]


@pytest.fixture
def campaign(session: Session) -> Campaign:
    """Two variants; clicks by ann and bob on several links, some at the same instant."""
    campaign = make_campaign(session, variants=("A", "B"))
    who = recipients(session, "ann@example.com", "bob@example.com")
    people = ["ann@example.com", "bob@example.com"]
    for n, offset in enumerate(OFFSETS):
        target = placement(campaign, n % 3, variant=n % 2)
        device = "mobile" if n % 4 == 0 else "desktop"
        click(session, target, who[people[n % 2]], T0 + timedelta(seconds=offset), device)
    session.flush()
    return campaign


def walk(session: Session, where: ClickFilter, limit: int) -> list[list[str]]:
    """Every page's click ids, following the cursors to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = click_page(session, where, after=cursor, limit=limit)
        pages.append([row.click_id for row in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def stored_order(session: Session, campaign_id: int) -> list[str]:
    query = (
        select(Click.click_id)
        .where(Click.campaign_id == campaign_id)
        .order_by(Click.clicked_at, Click.id)
    )
    return list(session.scalars(query))


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 12, MAX_LIMIT])
def test_paging_returns_every_click_once_in_time_order(
    session: Session, campaign: Campaign, limit: int
) -> None:
    pages = walk(session, ClickFilter(campaign.id), limit)
    assert [click_id for page in pages for click_id in page] == stored_order(session, campaign.id)
    assert all(len(page) == limit for page in pages[:-1])
    # The last page says it is the last: no empty page after a full one.
    assert 1 <= len(pages[-1]) <= limit
    assert len(pages) == -(-len(OFFSETS) // limit)


def test_a_row_shows_the_click_as_the_sender_knows_it(session: Session, campaign: Campaign) -> None:
    page = click_page(session, ClickFilter(campaign.id), limit=4)
    first, fourth = page.rows[0], page.rows[3]
    assert first.clicked_at == "2025-03-01T08:00:00.000000Z"
    assert fourth.clicked_at == "2025-03-01T08:00:00.000001Z"
    assert (first.variant, first.part, first.position) == ("A", "html", 0)
    assert first.placement_id == placement(campaign, 0).id
    assert first.recipient == "ann@example.com"
    assert (first.method, first.device, first.user_agent) == ("GET", "mobile", AGENTS["mobile"])
    assert first.ip_prefix is None
    assert {row.variant for row in page.rows} == {"A", "B"}


def test_the_filter_narrows_the_export(session: Session, campaign: Campaign) -> None:
    variant_b = campaign.variants[1].id
    rows = click_page(session, ClickFilter(campaign.id, variant_b), limit=MAX_LIMIT).rows
    assert {row.variant for row in rows} == {"B"}
    assert len(rows) == len(OFFSETS) // 2
    mobile = click_page(session, ClickFilter(campaign.id, device="mobile"), limit=MAX_LIMIT).rows
    assert len(mobile) == 3
    assert {row.device for row in mobile} == {"mobile"}
    later = ClickFilter(campaign.id, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert [row.clicked_at[11:19] for row in click_page(session, later).rows] == ["09:00:00"] * 2
    other = make_campaign(session, "Other")
    assert click_page(session, ClickFilter(other.id)) == click_page(session, ClickFilter(-1))
    assert click_page(session, ClickFilter(other.id)).next_cursor is None


def test_newer_clicks_recorded_during_the_walk_come_once_at_the_end(
    session: Session, campaign: Campaign
) -> None:
    where = ClickFilter(campaign.id)
    before = stored_order(session, campaign.id)
    first = click_page(session, where, limit=5)
    ann = recipients(session, "ann@example.com")["ann@example.com"]
    for n in range(3):
        click(session, placement(campaign, 1), ann, T0 + timedelta(days=2, seconds=n))
    session.flush()
    seen = [row.click_id for row in first.rows]
    cursor = first.next_cursor
    while cursor is not None:
        page = click_page(session, where, after=cursor, limit=5)
        seen += [row.click_id for row in page.rows]
        cursor = page.next_cursor
    assert seen == stored_order(session, campaign.id)
    assert seen[: len(before)] == before
    assert len(seen) == len(set(seen)) == len(before) + 3


def test_the_cursor_holds_only_a_time_and_a_row_number(
    session: Session, campaign: Campaign
) -> None:
    page = click_page(session, ClickFilter(campaign.id), limit=1)
    cursor = page.next_cursor
    assert cursor is not None
    assert len(cursor) == 23
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    row_id = session.scalar(select(Click.id).where(Click.click_id == page.rows[0].click_id))
    micros = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert struct.unpack(">BQQ", base64.urlsafe_b64decode(cursor + "=")) == (1, micros, row_id)


def raw(version: int, micros: int, row_id: int) -> str:
    packed = struct.pack(">BQQ", version, micros, row_id)
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


GOOD = raw(1, 1_740_816_000_000_000, 7)
BAD_CURSORS = [
    "",
    "garbage",
    "not a cursor at all, not at all",
    "!" * 23,
    " " + GOOD[1:],
    GOOD + "=",
    GOOD + "A",
    GOOD[:-1],
    GOOD[:-1] + "B",  # spare bits set: decodes to the same bytes, but was never written
    GOOD[:10] + "+" + GOOD[11:],  # standard base64, not URL-safe
    GOOD[:10] + "é" + GOOD[11:],
    GOOD[:10] + "\x00" + GOOD[11:],
    base64.urlsafe_b64encode(b"hello world, hello!!").decode(),
    raw(0, 1_740_816_000_000_000, 7),
    raw(2, 1_740_816_000_000_000, 7),
    raw(255, 1_740_816_000_000_000, 7),
    raw(1, 1_740_816_000_000_000, 0),
    raw(1, 1_740_816_000_000_000, 2**63),
    raw(1, 1_740_816_000_000_000, 2**64 - 1),  # -1 as a signed number
    raw(1, 2**63, 7),
    raw(1, 2**64 - 1, 7),  # a negative time, read signed
    raw(1, 253_402_300_800_000_000, 7),  # year 10000
    "-1",
    "99999999999999999999999",
    "v1:1740816000000000:7",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_cursor_not_written_here_is_a_clean_input_error(session: Session, cursor: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        click_page(session, ClickFilter(1), after=cursor)
    assert raised.value.code == "invalid_cursor"
    assert raised.value.status == 400


def test_a_well_formed_cursor_only_names_a_position(session: Session, campaign: Campaign) -> None:
    everything = stored_order(session, campaign.id)
    early = encode_cursor(datetime(2000, 1, 1, tzinfo=UTC), 1)
    rows = click_page(session, ClickFilter(campaign.id), after=early, limit=MAX_LIMIT).rows
    assert [row.click_id for row in rows] == everything
    late = encode_cursor(datetime(9999, 12, 31, tzinfo=UTC), 2**63 - 1)
    assert click_page(session, ClickFilter(campaign.id), after=late).rows == ()


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 2**63, True])
def test_limit_out_of_range_is_refused(session: Session, limit: Any) -> None:
    with pytest.raises(InvalidInput) as raised:
        click_page(session, ClickFilter(1), limit=limit)
    assert raised.value.code == "invalid_limit"


def test_honeypot_clicks_are_not_exported(session: Session, campaign: Campaign) -> None:
    before = walk(session, ClickFilter(campaign.id), MAX_LIMIT)
    [honeypot] = [p for p in campaign.variants[0].placements if p.kind == HONEYPOT]
    who = recipients(session, "scanner@example.com")
    click(session, honeypot, who["scanner@example.com"], T0 + timedelta(seconds=30))
    session.flush()
    assert walk(session, ClickFilter(campaign.id), MAX_LIMIT) == before
