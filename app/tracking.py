"""Click handling for the redirector: where a token leads, and recording the click.

Placements never change once stored, so their destinations are cached per process.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, Request
from sqlalchemy import select

from app.db import session_scope
from app.models import Campaign, Click, Placement
from app.tokens import ClickToken, InvalidToken
from app.urls import to_location


def init_app(app: Flask) -> None:
    """Nothing to start yet: clicks are written synchronously."""


class CampaignGone(Exception):
    """The campaign behind a valid token was deleted."""


@dataclass(frozen=True, slots=True)
class Target:
    placement_id: int
    location: str


def lookup(app: Flask, token: ClickToken) -> Target:
    cache: dict[tuple[int, int, str, int], Target] = app.extensions.setdefault(
        "clickmap.targets", {}
    )
    key = (token.campaign_id, token.variant_id, token.part, token.position)
    target = cache.get(key)
    if target is not None:
        return target
    with session_scope(app) as session:
        row = session.execute(
            select(Placement.id, Placement.destination, Placement.tracked, Campaign.deleted_at)
            .join(Campaign, Campaign.id == Placement.campaign_id)
            .where(
                Placement.campaign_id == token.campaign_id,
                Placement.variant_id == token.variant_id,
                Placement.part == token.part,
                Placement.position == token.position,
            )
        ).first()
    if row is None or not row.tracked or row.destination is None:
        raise InvalidToken("unknown placement")
    if row.deleted_at is not None:
        raise CampaignGone()
    target = Target(row.id, to_location(row.destination))
    cache[key] = target
    return target


def record(app: Flask, token: ClickToken, target: Target, request: Request) -> None:
    with session_scope(app) as session:
        session.add(
            Click(
                click_id=secrets.token_hex(16),
                clicked_at=datetime.now(UTC),
                campaign_id=token.campaign_id,
                variant_id=token.variant_id,
                part=token.part,
                placement_id=target.placement_id,
                recipient_id=token.recipient_id,
                method=request.method,
                user_agent=(request.user_agent.string or "")[:512],
            )
        )
