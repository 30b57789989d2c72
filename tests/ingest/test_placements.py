"""Renaming a link and marking it as a CTA: what is stored, what is refused, and the history
of who changed what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import create_user
from app.errors import InvalidInput, NotFound
from app.ingest.placements import mark_cta, placement_changes, rename_placement
from app.models import Campaign, Placement, PlacementChange, User
from app.vocabulary import HONEYPOT
from tests.factories import T0, make_campaign, placement


@pytest.fixture
def campaign(session: Session) -> Campaign:
    return make_campaign(session)


@pytest.fixture
def ana(session: Session) -> User:
    return create_user(session, "ana", "correct horse battery")


def test_rename_stores_the_name_and_who_gave_it(
    session: Session, campaign: Campaign, ana: User
) -> None:
    link = placement(campaign, 0)
    renamed = rename_placement(session, campaign.id, link.id, "  Hero\n button ", ana, now=T0)
    assert renamed.label == "Hero button"
    session.flush()
    [change] = placement_changes(session, campaign.id, link.id)
    assert (change.username, change.user_id, change.field) == ("ana", ana.id, "label")
    assert (change.old_value, change.new_value, change.changed_at) == (None, "Hero button", T0)


def test_a_blank_name_clears_it_and_an_unchanged_one_records_nothing(
    session: Session, campaign: Campaign, ana: User
) -> None:
    link = placement(campaign, 0)
    rename_placement(session, campaign.id, link.id, "Hero", ana, now=T0)
    rename_placement(session, campaign.id, link.id, "Hero", ana, now=T0 + timedelta(minutes=1))
    rename_placement(session, campaign.id, link.id, "   ", ana, now=T0 + timedelta(minutes=2))
    session.flush()
    assert link.label is None
    history = placement_changes(session, campaign.id, link.id)
    assert [(c.old_value, c.new_value) for c in history] == [("Hero", None), (None, "Hero")]


def test_marking_a_cta_is_recorded_once_per_change(
    session: Session, campaign: Campaign, ana: User
) -> None:
    link = placement(campaign, 1)
    assert link.cta is False
    mark_cta(session, campaign.id, link.id, True, ana, now=T0)
    mark_cta(session, campaign.id, link.id, True, ana, now=T0 + timedelta(minutes=1))
    mark_cta(session, campaign.id, link.id, False, ana, now=T0 + timedelta(minutes=2))
    session.flush()
    history = placement_changes(session, campaign.id, link.id)
    assert [(c.field, c.old_value, c.new_value) for c in history] == [
        ("cta", "true", "false"),
        ("cta", "false", "true"),
    ]
    assert link.cta is False


@pytest.mark.parametrize(
    "label",
    ["x" * 201, "Buy\x00now", "Buy\x1bnow", "Buy\x9bnow"],
    ids=["too-long", "nul", "escape", "c1-control"],
)
def test_unusable_names_are_refused(
    session: Session, campaign: Campaign, ana: User, label: str
) -> None:
    link = placement(campaign, 0)
    with pytest.raises(InvalidInput) as refused:
        rename_placement(session, campaign.id, link.id, label, ana)
    assert refused.value.code == "invalid_label"
    session.flush()
    assert link.label is None
    assert session.scalars(select(PlacementChange)).all() == []


def test_markup_is_kept_as_text(session: Session, campaign: Campaign, ana: User) -> None:
    """Escaping is the templates' job: the name is stored exactly as typed."""
    link = placement(campaign, 0)
    rename_placement(session, campaign.id, link.id, "<b>Shop</b> & save", ana)
    assert link.label == "<b>Shop</b> & save"
    assert len(rename_placement(session, campaign.id, link.id, "é" * 200, ana).label or "") == 200


def test_unknown_or_foreign_links_are_not_found(
    session: Session, campaign: Campaign, ana: User
) -> None:
    other = make_campaign(session, "Other")
    theirs = placement(other, 0)
    skipped = placement(campaign, 3)  # mailto: not tracked
    honeypot = session.scalar(
        select(Placement).where(Placement.campaign_id == campaign.id, Placement.kind == HONEYPOT)
    )
    assert honeypot is not None
    for campaign_id, placement_id in [
        (campaign.id, theirs.id),
        (campaign.id, skipped.id),
        (campaign.id, honeypot.id),
        (campaign.id, 10**9),
        (10**9, placement(campaign, 0).id),
    ]:
        with pytest.raises(NotFound):
            rename_placement(session, campaign_id, placement_id, "x", ana)
        with pytest.raises(NotFound):
            mark_cta(session, campaign_id, placement_id, True, ana)


def test_a_change_through_the_api_is_recorded_under_the_tokens_name(
    session: Session, campaign: Campaign
) -> None:
    from app.accounts import USERNAME_PATTERN, check_api_token, create_api_token

    token = check_api_token(session, create_api_token(session, "my-esp"))
    assert token is not None
    link = placement(campaign, 0)
    mark_cta(session, campaign.id, link.id, True, token, now=T0)
    session.flush()
    [change] = placement_changes(session, campaign.id, link.id)
    assert (change.user_id, change.username) == (None, "API token my-esp")
    # No user can be called that: a token never passes for a user.
    assert not USERNAME_PATTERN.fullmatch(change.username)
