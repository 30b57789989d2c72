"""The dashboard's lists: campaigns with their headline figures, and the clicks behind a link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.clicks.recording import record_clicks
from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import ensure_recipients, record_deliveries
from app.models import Campaign
from app.reports import listings
from tests.factories import AGENTS, T0, click_event, make_campaign, placement


def test_campaign_list_newest_first_without_deleted(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    record_deliveries(
        session, campaign, "A", ["ann", "bob", "cid", "dan"], delivered_at=T0 - timedelta(hours=1)
    )
    older = make_campaign(session, "Winter 100% off_promo")
    older.created_at = T0 - timedelta(days=30)
    gone = make_campaign(session, "Deleted sale")
    gone.deleted_at = T0
    session.flush()
    rows, count = listings.campaign_list(session)
    assert count == 2
    assert [r.name for r in rows] == ["Spring sale", "Winter 100% off_promo"]
    first = rows[0]
    assert (first.delivered, first.total, first.unique, first.rate) == (4, 5, 3, 75.0)
    assert (rows[1].delivered, rows[1].total, rows[1].unique, rows[1].rate) == (0, 0, 0, None)


@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("SALE", ["Spring sale"]),
        ("  spring ", ["Spring sale"]),
        ("100%", ["Winter 100% off_promo"]),
        ("%", ["Winter 100% off_promo"]),
        ("_", ["Winter 100% off_promo"]),
        ("deleted", []),
        ("nothing like it", []),
    ],
)
def test_campaign_list_search(session: Session, search: str, names: list[str]) -> None:
    make_campaign(session, "Spring sale")
    make_campaign(session, "Winter 100% off_promo")
    gone = make_campaign(session, "Deleted sale")
    gone.deleted_at = T0
    session.flush()
    rows, count = listings.campaign_list(session, search)
    assert [r.name for r in rows] == names
    assert count == len(names)


def test_campaign_list_pages(session: Session) -> None:
    for n in range(5):
        make_campaign(session, f"Campaign {n}").created_at = T0 + timedelta(days=n)
    session.flush()
    rows, count = listings.campaign_list(session, page=2, per_page=2)
    assert count == 5
    assert [r.name for r in rows] == ["Campaign 2", "Campaign 1"]
    assert listings.campaign_list(session, page=4, per_page=2) == ([], 5)
    with pytest.raises(InvalidInput):
        listings.campaign_list(session, page=0)
    with pytest.raises(InvalidInput):
        listings.campaign_list(session, per_page=0)


def test_placement_clicks_newest_first_with_recipient_ids(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    target = placement(campaign, 0)
    rows, count = listings.placement_clicks(session, campaign.id, target.id, page=1, per_page=2)
    assert count == 3
    assert [(r.recipient, r.device) for r in rows] == [("bob", "mobile"), ("ann", "desktop")]
    assert rows[0].clicked_at == T0 + timedelta(hours=5)
    assert rows[0].method == "GET"
    assert rows[0].user_agent == AGENTS["mobile"]
    rest, _ = listings.placement_clicks(session, campaign.id, target.id, page=2, per_page=2)
    assert [(r.recipient, r.clicked_at) for r in rest] == [("ann", T0 + timedelta(minutes=5))]
    streamed = list(listings.iter_placement_clicks(session, campaign.id, target.id))
    assert streamed == rows + rest


def test_placement_clicks_refuses_a_link_of_another_campaign(
    session: Session, sale: tuple[Campaign, dict[str, int]]
) -> None:
    campaign, _ = sale
    other = make_campaign(session, "Other")
    foreign = placement(other, 0)
    with pytest.raises(NotFound):
        listings.placement_clicks(session, campaign.id, foreign.id)
    # Refused before streaming starts, so a web view can still answer 404.
    with pytest.raises(NotFound):
        listings.iter_placement_clicks(session, campaign.id, foreign.id)
    with pytest.raises(NotFound):
        listings.placement_clicks(session, 999_999, foreign.id)


def test_breakdown_says_who_clicks_a_link_and_leaves_machines_out(session: Session) -> None:
    """Per device, client and country: the link's human clicks and distinct clickers; a
    HEAD probe from another country is left out, as every default figure leaves it."""
    campaign = make_campaign(session, "Who")
    link = placement(campaign, 0)
    who = ensure_recipients(session, ["ann", "bob", "cid"])
    outlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)"
    us, japan, netherlands, hour = "8.8.8.0/24", "1.0.16.0/24", "193.0.0.0/24", timedelta(hours=1)
    events = [
        click_event(link, who["ann"], T0, user_agent=outlook, ip_prefix=us),
        click_event(link, who["ann"], T0 + hour, "mobile", ip_prefix=japan),
        click_event(link, who["bob"], T0 + 2 * hour, "mobile", ip_prefix=japan),
        click_event(link, who["cid"], T0 + 3 * hour, method="HEAD", ip_prefix=netherlands),
    ]
    for event in events:
        record_clicks(session, [event])
    found = listings.placement_breakdown(session, campaign.id, link.id)
    assert (found.clicks, found.unique) == (3, 2)
    shares = lambda items: [(s.value, s.clicks, s.unique) for s in items]  # noqa: E731
    assert shares(found.devices) == [("mobile", 2, 2), ("desktop", 1, 1)]
    assert shares(found.clients) == [("Safari", 2, 2), ("Outlook", 1, 1)]
    assert shares(found.countries) == [("JP", 2, 2), ("US", 1, 1)]
    with pytest.raises(NotFound):
        listings.placement_breakdown(session, campaign.id, 999_999)


def test_placement_changes_newest_first_a_page_at_a_time(session: Session) -> None:
    from app.accounts import create_user
    from app.ingest.placements import mark_cta, rename_placement

    campaign = make_campaign(session, variants=("A", "B"))
    other = make_campaign(session, "Other")
    ana = create_user(session, "ana", "correct horse battery")
    sale, blog = placement(campaign, 0), placement(campaign, 1, variant=1)
    rename_placement(session, other.id, placement(other, 0).id, "Elsewhere", ana, now=T0)
    # Three changes at one instant: the row id breaks the tie, on every page.
    for n in range(3):
        rename_placement(session, campaign.id, sale.id, f"Sale {n}", ana, now=T0)
    mark_cta(session, campaign.id, blog.id, True, ana, now=T0 + timedelta(minutes=1))
    session.flush()
    first = listings.placement_change_page(session, campaign.id, limit=2)
    assert [(r.field, r.new_value, r.variant) for r in first.rows] == [
        ("cta", "true", "B"),
        ("label", "Sale 2", "A"),
    ]
    assert first.next_cursor is not None
    rest = listings.placement_change_page(session, campaign.id, after=first.next_cursor, limit=2)
    assert [(r.old_value, r.new_value) for r in rest.rows] == [
        ("Sale 0", "Sale 1"),
        (None, "Sale 0"),
    ]
    assert rest.next_cursor is None
    row = rest.rows[0]
    assert (row.username, row.changed_at, row.placement_id, row.part) == (
        "ana",
        T0,
        sale.id,
        "html",
    )
    assert (row.position, row.text, row.label) == (sale.position, sale.text, "Sale 2")
    with pytest.raises(InvalidInput):
        listings.placement_change_page(session, campaign.id, after="not-a-cursor")
    for limit in (0, listings.MAX_CHANGES + 1):
        with pytest.raises(InvalidInput):
            listings.placement_change_page(session, campaign.id, limit=limit)
    with pytest.raises(NotFound):
        listings.placement_change_page(session, 10**9)
