"""The marketer's own notes on a campaign's links: a name (``label``) and the CTA flag.

What was sent never changes; these two do, from the dashboard or the API, and every change
is recorded in ``placement_change`` with who made it and when, so a report whose links were
renamed can always be traced back to the email. Who is a dashboard user, or an API token
(tokens belong to no user: the change is recorded under the token's name, see ``author``).
Pure domain code: the caller passes the user or token and owns the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.models import ApiToken, Placement, PlacementChange, User
from app.vocabulary import HONEYPOT

MAX_LABEL_LENGTH = 200  # the column's size
# A change made through the API is recorded under this prefix and the token's name. The
# prefix holds a space, which no username may (accounts.USERNAME_PATTERN), so a token can
# never pass for a user.
TOKEN_AUTHOR = "API token "  # noqa: S105 - a label, not a secret

Author = User | ApiToken


def author(by: Author) -> tuple[int | None, str]:
    """The user id and the name a change is recorded under."""
    if isinstance(by, ApiToken):
        return None, TOKEN_AUTHOR + by.name
    return by.id, by.username


def get_placement(session: Session, campaign_id: int, placement_id: int) -> Placement:
    """A tracked link of the sender's in a live campaign; NotFound for anything else, since
    only those appear in a report where a name or a CTA flag would show."""
    campaign = get_campaign(session, campaign_id)
    placement = session.scalar(
        select(Placement).where(
            Placement.id == placement_id,
            Placement.campaign_id == campaign.id,
            Placement.kind != HONEYPOT,
            Placement.tracked.is_(True),
        )
    )
    if placement is None:
        raise NotFound("link_not_found", f"this campaign has no link {placement_id}")
    return placement


def clean_label(raw: str | None) -> str | None:
    """The label to store: runs of whitespace (line breaks included) become one space and
    the ends are trimmed, so a pasted name cannot break a table row; empty means "no label,
    show the link's text again". Control characters and over-long names are refused."""
    text = " ".join((raw or "").split())
    if not text:
        return None
    if len(text) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            "invalid_label", f"a link's name is at most {MAX_LABEL_LENGTH} characters"
        )
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text):
        raise InvalidInput("invalid_label", "a link's name cannot contain control characters")
    return text


def _record(
    session: Session, placement: Placement, by: Author, field: str,
    old: str | None, new: str | None, now: datetime | None,
) -> None:  # fmt: skip
    user_id, username = author(by)
    session.add(
        PlacementChange(
            campaign_id=placement.campaign_id,
            placement_id=placement.id,
            user_id=user_id,
            username=username,
            field=field,
            old_value=old,
            new_value=new,
            changed_at=now or datetime.now(UTC),
        )
    )


def rename_placement(
    session: Session,
    campaign_id: int,
    placement_id: int,
    label: str | None,
    by: Author,
    now: datetime | None = None,
) -> Placement:
    """Give a link the marketer's name (None or blank clears it). A change to the same name
    records nothing, so resubmitting a form leaves no noise in the history."""
    placement = get_placement(session, campaign_id, placement_id)
    new = clean_label(label)
    if new != placement.label:
        _record(session, placement, by, "label", placement.label, new, now)
        placement.label = new
    return placement


def mark_cta(
    session: Session,
    campaign_id: int,
    placement_id: int,
    cta: bool,
    by: Author,
    now: datetime | None = None,
) -> Placement:
    """Mark a link as a call to action, or not; recorded only when the flag changes."""
    placement = get_placement(session, campaign_id, placement_id)
    if cta != placement.cta:
        old, new = str(placement.cta).lower(), str(cta).lower()
        _record(session, placement, by, "cta", old, new, now)
        placement.cta = cta
    return placement


def placement_changes(
    session: Session, campaign_id: int, placement_id: int
) -> list[PlacementChange]:
    """A link's history, newest first."""
    get_placement(session, campaign_id, placement_id)
    return list(
        session.scalars(
            select(PlacementChange)
            .where(PlacementChange.placement_id == placement_id)
            .order_by(PlacementChange.changed_at.desc(), PlacementChange.id.desc())
        )
    )
