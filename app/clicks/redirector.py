"""The redirector: ``GET``/``HEAD`` ``/c/<token>`` -> 302 to the link's destination, and
``/o/<token>`` -> the open pixel (docs/opens.md).

The hot path: verify the token, look the placement up (cached: placements never change),
spool the click, answer. Nothing here renders templates, loads relationships or waits for
the database (see ``app.clicks.tracking``). ``/healthz`` tells a load balancer that this
instance is up, and a monitor holding an API token how it is doing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import Headers
from werkzeug.routing import BaseConverter

from app.clicks import tracking
from app.tokens import InvalidToken, open_codec, token_codec

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

bp = Blueprint("redirector", __name__)


class _AnyText(BaseConverter):
    """Everything after ``/c/``, slashes and newlines included, so that any mangled token
    still gets the friendly page rather than the framework's bare 404."""

    regex = r"[\s\S]+"
    part_isolating = False


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("anytext", _AnyText)


_PAGE = "<!doctype html><meta charset=utf-8><title>{}</title><p>{}</p>"
NOT_FOUND_PAGE = _PAGE.format(
    "Link not found", "This link is not valid. It may have been mistyped or cut short."
)
GONE_PAGE = _PAGE.format("Link expired", "This link belonged to a campaign that has been removed.")
UNAVAILABLE_PAGE = _PAGE.format(
    "Try again shortly", "This link cannot be followed right now. Please try again in a minute."
)


class _Redirect(Response):
    """The 302 of a click. Its ``Location`` is the URL parser's serialization, computed at
    ingest (``Placement.location``): an ASCII absolute URI, sent byte for byte. So werkzeug's
    conversion of it to a URI and its Content-Length bookkeeping, redone for every response,
    are skipped: they cost as much as the rest of the view."""

    def __init__(self, location: str) -> None:
        super().__init__(
            status=302,
            headers={"Location": location, "Cache-Control": "no-store", "Content-Length": "0"},
        )

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        return self.headers


def _page(body: str, status: int, **headers: str) -> Response:
    return Response(
        body,
        status,
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", **headers},
    )


@bp.route("/c/<anytext:token>", methods=["GET", "HEAD"])
def click(token: str) -> Response:
    try:
        decoded = token_codec(current_app).decode(token)
        target = tracking.lookup(current_app, decoded)
    except InvalidToken:
        return _page(NOT_FOUND_PAGE, 404)
    except tracking.CampaignGone:
        return _page(GONE_PAGE, 410)
    except tracking.Unavailable:
        return _page(UNAVAILABLE_PAGE, 503, **{"Retry-After": "30"})
    click_id = tracking.record(current_app, decoded, target, request)
    return _Redirect(target.location_for(click_id))


# The smallest transparent GIF: 1x1, one color, 43 bytes.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


class _Pixel(Response):
    """The open pixel's answer, built like ``_Redirect``: fixed headers, sent as they are.
    ``no-store`` so every view of the email asks again (a cached pixel counts nothing)."""

    def __init__(self, status: int) -> None:
        super().__init__(
            PIXEL,
            status=status,
            headers={
                "Content-Type": "image/gif",
                "Cache-Control": "no-store, max-age=0",
                "Content-Length": str(len(PIXEL)),
            },
        )

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        return self.headers


@bp.route("/o/<anytext:token>", methods=["GET", "HEAD"])
def pixel(token: str) -> Response:
    """An email was opened: spool the open as a click is spooled, answer the pixel.

    A bad token or a deleted campaign still gets the pixel (a broken image helps nobody),
    with the status a link would get, and counts nothing."""
    try:
        decoded = open_codec(current_app).decode(token)
        tracking.lookup_open(current_app, decoded)
    except InvalidToken:
        return _Pixel(404)
    except tracking.CampaignGone:
        return _Pixel(410)
    except tracking.Unavailable:
        return _Pixel(503)
    tracking.record_open(current_app, decoded, request)
    return _Pixel(200)


# What anyone may learn: the process answers. Built once; nothing is looked up.
_UP = b'{"status":"up"}\n'


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process serves: with the database down, known links still work.

    Anonymous callers (load balancers) learn only that: no database query, no spool read.
    The counters (database, spool backlog, lost clicks...) describe the installation, so
    they go only to a caller whose API token the guard accepted (``app.web.auth`` reads the
    ``Authorization`` header and leaves its verdict in ``g.health_counters``).
    """
    if not g.get("health_counters", False):
        return Response(_UP, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"})
    counters = jsonify({"status": "up", **tracking.tracker(current_app).health()})
    counters.headers["Cache-Control"] = "no-store"
    return counters
