"""The redirector: ``GET``/``HEAD`` ``/c/<token>`` -> 302 to the link's destination.

The hot path: verify the token, look the placement up (cached: placements never change),
record the click, answer. Nothing here renders templates or loads relationships.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, request

from app import tracking
from app.services import token_codec
from app.tokens import InvalidToken

bp = Blueprint("redirector", __name__)

NOT_FOUND_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Link not found</title>"
    "<p>This link is not valid. It may have been mistyped or cut short.</p>"
)
GONE_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Link expired</title>"
    "<p>This link belonged to a campaign that has been removed.</p>"
)


def _page(body: str, status: int) -> Response:
    return Response(body, status, {"Content-Type": "text/html; charset=utf-8",
                                   "Cache-Control": "no-store"})


@bp.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str) -> Response:
    try:
        decoded = token_codec(current_app).decode(token)
        target = tracking.lookup(current_app, decoded)
    except InvalidToken:
        return _page(NOT_FOUND_PAGE, 404)
    except tracking.CampaignGone:
        return _page(GONE_PAGE, 410)
    tracking.record(current_app, decoded, target, request)
    response = redirect(target.location, 302)
    response.headers["Cache-Control"] = "no-store"
    return response
