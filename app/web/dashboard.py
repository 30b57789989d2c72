"""The marketer's dashboard: log in, list campaigns, read a campaign's heatmap, drill down.

Pages only: every figure comes from ``app.reports``; this module parses the request, calls
them and renders templates. Security is on by default rather than per view: one guard
(``app.web.auth.require_user_or_token``) sends every request without a user to the login
page, except the few public routes, so a view added later cannot be left open by
forgetting a decorator.

The email in the heatmap is hostile content as far as we are concerned (it came from a
sender, and links carry their text). It is served by its own route inside a sandboxed frame
with a CSP that forbids scripts, so even a script hidden in it runs nowhere; rows highlight a
link by navigating the frame to ``#cm-<position>``, which needs no script in the frame.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app.accounts import LoginThrottle, authenticate, client_network
from app.db import get_session
from app.errors import ClickmapError, InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.models import Campaign, Placement
from app.reports.email_overlay import view_document
from app.reports.heatmap import ViewParams, build_view
from app.reports.listings import campaign_list, iter_placement_clicks, placement_clicks
from app.web import csrf
from app.web.auth import (
    current_user,
    login_user,
    logout_user,
    safe_next,
)
from app.web.filters import csp_nonce, nonced_svg

bp = Blueprint("dashboard", __name__)
csrf.protect(bp)

CAMPAIGNS_PER_PAGE = 25
CLICKS_PER_PAGE = 50
MAX_PAGE = 1_000_000
MAX_SEARCH_LENGTH = 200

# The dashboard's own pages: nothing inline may run, nothing may frame them. Styles need a
# per-response nonce because the server-side charts are SVG with embedded <style> elements.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'{nonce}; script-src 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
# The annotated email: a sandbox with no scripts, remote images allowed (the email shows
# as sent), inline styles allowed (emails are made of them), and only our page may frame it.
EMAIL_CSP = (
    "sandbox; default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; frame-ancestors 'self'"
)


def init_app(app: Flask) -> None:
    """Register the dashboard, its login throttle and the templates' globals and filters."""
    app.extensions["clickmap.login_throttle"] = LoginThrottle.from_config(app.config)
    app.register_blueprint(bp)
    # The heatmap report's labels and figure filters are app.reports.labels' (create_app
    # installs them); the page's charts get the nonced filter instead of the PDF's.
    app.jinja_env.globals.update(
        csrf_token=csrf.token,
        csrf_field_name=csrf.FIELD_NAME,
        csp_nonce=csp_nonce,
        current_user=current_user,
    )
    app.jinja_env.filters.update(nonced=nonced_svg)


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidInput("invalid_page", "'page' must be a whole number from 1")
    return int(raw)


def _pages(count: int, per_page: int) -> int:
    return max(1, math.ceil(count / per_page))


# The heatmap's query arguments, carried from the heatmap to the drill-down and back. Only
# these pass through: anything else could collide with url_for's own (``_external``...).
VIEW_KEYS = ("metric", "variant", "part", "period", "start", "end", "device", "sort")


def _view_query(args: Mapping[str, str]) -> dict[str, str]:
    return {key: args[key] for key in VIEW_KEYS if key in args}


# -- security headers and errors ----------------------------------------------------------------


@bp.after_request
def _security_headers(response: Response) -> Response:
    nonce = g.get("csp_nonce")
    response.headers.setdefault(
        "Content-Security-Policy", PAGE_CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else "")
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Pages show customer data: keep them out of shared caches and the back-button cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(ClickmapError)
def _domain_error(exc: ClickmapError) -> tuple[str, int]:
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    return render_template("error.html", status=status, message=exc.description), status


# -- login ------------------------------------------------------------------------------------


def _throttle() -> LoginThrottle:
    throttle: LoginThrottle = current_app.extensions["clickmap.login_throttle"]
    return throttle


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str | tuple[str, int, dict[str, str]]:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url or url_for(".campaigns"))
        return render_template("login.html", next=next_url, username="", error=None)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    throttle = _throttle()
    # Counted before the password is checked, in the database (see LoginThrottle).
    network = client_network(request.remote_addr)
    session = get_session()
    wait = throttle.begin(session, username, network)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        error = f"Too many failed attempts. Try again in {minutes} minute(s)."
        page = render_template("login.html", next=next_url, username=username, error=error)
        return page, 429, {"Retry-After": str(math.ceil(wait))}
    user = authenticate(session, username, password)
    if user is None:
        error = "The username or password is not correct."
        page = render_template("login.html", next=next_url, username=username, error=error)
        return page, 401, {}
    throttle.succeeded(session, username, network)
    login_user(user)
    return redirect(next_url or url_for(".campaigns"))


@bp.post("/logout")
def logout() -> BaseResponse:
    logout_user()
    flash("You have been logged out.")
    return redirect(url_for(".login"))


# -- campaigns --------------------------------------------------------------------------------


@bp.get("/")
@bp.get("/campaigns")
def campaigns() -> str:
    search = request.args.get("q", "").strip()[:MAX_SEARCH_LENGTH]
    page = _page_arg()
    rows, count = campaign_list(get_session(), search, page, CAMPAIGNS_PER_PAGE)
    return render_template(
        "campaigns.html",
        rows=rows,
        count=count,
        search=search,
        page=page,
        pages=_pages(count, CAMPAIGNS_PER_PAGE),
    )


@bp.get("/campaigns/<int:campaign_id>")
def heatmap(campaign_id: int) -> str:
    params = ViewParams.from_query(request.args)
    view = build_view(get_session(), campaign_id, params)
    query = params.to_query()
    # The PDF route belongs to app.web.downloads; its URL is built here so this page does not
    # depend on that module being installed.
    pdf_url = url_for(".heatmap", campaign_id=campaign_id) + "/report.pdf"
    if query:
        pdf_url += "?" + urlencode(query)
    return render_template("heatmap.html", view=view, query=query, pdf_url=pdf_url, for_print=False)


@bp.get("/campaigns/<int:campaign_id>/email")
def email(campaign_id: int) -> Response:
    """The email as sent, annotated with the heatmap, for the sandboxed frame only."""
    params = ViewParams.from_query(request.args)
    session = get_session()
    view = build_view(session, campaign_id, params)
    document = view_document(session, view)
    response = Response(document, mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


# -- drill-down -------------------------------------------------------------------------------


def _placement(session: Session, campaign_id: int, placement_id: int) -> tuple[Campaign, Placement]:
    campaign = get_campaign(session, campaign_id)
    placement = session.get(Placement, placement_id)
    if placement is None or placement.campaign_id != campaign.id:
        raise NotFound("link_not_found", f"this campaign has no link {placement_id}")
    return campaign, placement


@bp.get("/campaigns/<int:campaign_id>/links/<int:placement_id>")
def clicks(campaign_id: int, placement_id: int) -> str:
    session = get_session()
    campaign, placement = _placement(session, campaign_id, placement_id)
    page = _page_arg()
    rows, count = placement_clicks(session, campaign_id, placement_id, page, CLICKS_PER_PAGE)
    return render_template(
        "clicks.html",
        campaign=campaign,
        placement=placement,
        rows=rows,
        count=count,
        page=page,
        pages=_pages(count, CLICKS_PER_PAGE),
        # The heatmap's view settings travel along, so "back" returns to the same view.
        view_query=_view_query(request.args),
    )


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet will show as text, never run as a formula.

    Recipient ids and user agents come from outside; ``=HYPERLINK(...)`` in either would
    otherwise become a live formula when the export is opened in Excel or Sheets.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9]+")


def _export_filename(campaign: Campaign, placement: Placement) -> str:
    slug = _UNSAFE_FILENAME.sub("-", campaign.name).strip("-").lower()[:40] or "campaign"
    return f"clickmap-{campaign.id}-{slug}-link-{placement.part}-{placement.position}-clicks.csv"


CSV_COLUMNS = ("recipient", "clicked_at", "device", "client", "method", "user_agent")


@bp.get("/campaigns/<int:campaign_id>/links/<int:placement_id>/clicks.csv")
def clicks_csv(campaign_id: int, placement_id: int) -> Response:
    """Every click behind one link, streamed: exports can be large, memory stays flat."""
    campaign, placement = _placement(get_session(), campaign_id, placement_id)
    # The body is produced after this view returns and the request's session is closed, so
    # the stream opens (and always closes, even if the client goes away) a session of its own.
    factory: sessionmaker[Session] = current_app.extensions["clickmap.sessionmaker"]

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with factory() as session:
            clicks = iter_placement_clicks(session, campaign_id, placement_id)
            for number, row in enumerate(clicks, start=1):
                writer.writerow(
                    [
                        csv_cell(row.recipient),
                        row.clicked_at.isoformat(),
                        csv_cell(row.device),
                        csv_cell(row.client),
                        csv_cell(row.method),
                        csv_cell(row.user_agent),
                    ]
                )
                if number % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    response = Response(lines(), mimetype="text/csv")
    filename = _export_filename(campaign, placement)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
