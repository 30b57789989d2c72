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

Nor does the frame load anything from wherever the sender pointed: its remote images and
fonts are rewritten to ``/campaigns/<id>/email/asset``, our proxy, which fetches them by the
PDF's rules (public addresses only, limited types and sizes, never our own tracked links)
and caches them; the CSP allows images and fonts from our origin only.
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
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app.accounts import LoginThrottle, authenticate, client_network
from app.db import get_session
from app.errors import ClickmapError, InvalidInput, NotFound
from app.ingest.campaigns import get_campaign
from app.ingest.placements import mark_cta, rename_placement
from app.models import Campaign, Placement, User
from app.reports.comparison import CompareParams, NothingToCompare, build_comparison, format_p
from app.reports.email_overlay import ResourceMap, view_document
from app.reports.fetcher import PLACEHOLDER, RemoteCache, fetch_policy
from app.reports.funnel import placement_conversions
from app.reports.heatmap import ViewParams, build_view
from app.reports.listings import (
    campaign_list,
    iter_placement_clicks,
    placement_breakdown,
    placement_change_page,
    placement_clicks,
)
from app.reports.stats import REPORTED, segments
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
# The annotated email: a sandbox with no scripts; images and fonts from our own proxy or
# data: URIs only, never from another origin; inline styles allowed (emails are made of
# them); and only our page may frame it.
EMAIL_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
# A proxied image or font, in case someone opens its address as a page: an SVG's script
# must not run on our origin.
ASSET_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
# The proxy's addresses are signed for one user's session (the frame sends no cookie): this
# salt keeps them apart from every other signature made with the secret keys.
ASSET_SALT = "clickmap.email-asset"
ASSET_MAX_AGE = 12 * 3600  # seconds a rendered frame's image addresses keep working
EMAIL_ASSETS = "clickmap.email_assets"


def init_app(app: Flask) -> None:
    """Register the dashboard, its login throttle and the templates' globals and filters."""
    app.extensions["clickmap.login_throttle"] = LoginThrottle.from_config(app.config)
    app.extensions[EMAIL_ASSETS] = RemoteCache(fetch_policy(app, "EMAIL_REMOTE_IMAGES"))
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
VIEW_KEYS = (
    "metric", "variant", "part", "period", "start", "end", "device", "sort", "machines",
    "client", "country",
)  # fmt: skip
# The link list's switches: only the CTAs, one row per destination.
LINK_LIST_KEYS = ("ctas", "group")


def _view_query(args: Mapping[str, str]) -> dict[str, str]:
    return {key: args[key] for key in (*VIEW_KEYS, *LINK_LIST_KEYS) if key in args}


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


@bp.get("/campaigns/<id:campaign_id>")
def heatmap(campaign_id: int) -> str:
    params = ViewParams.from_query(request.args)
    session = get_session()
    view = build_view(session, campaign_id, params, cta_min_rate=_cta_min_rate())
    # Only the page lists the choices: the API and the PDF take a segment, never list them.
    choices = segments(session, view.where)
    query = params.to_query()
    # The PDF route belongs to app.web.downloads; its URL is built here so this page does not
    # depend on that module being installed.
    pdf_url = url_for(".heatmap", campaign_id=campaign_id) + "/report.pdf"
    if query:
        pdf_url += "?" + urlencode(query)
    return render_template(
        "heatmap.html",
        view=view,
        query=query,
        pdf_url=pdf_url,
        for_print=False,
        segments=choices,
    )


@bp.get("/campaigns/<id:campaign_id>/compare")
def compare(campaign_id: int) -> str:
    """Two variants side by side; a campaign with nothing to compare gets the reason."""
    params = CompareParams.from_query(request.args)
    session = get_session()
    try:
        view = build_comparison(session, campaign_id, params)
    except NothingToCompare as exc:
        campaign = get_campaign(session, campaign_id)
        return render_template("compare.html", view=None, campaign=campaign, message=exc.message)
    # The PDF route belongs to app.web.downloads (see heatmap); the same switches, resolved.
    query = {"a": view.a, "b": view.b, "machines": params.machines}
    pdf_url = url_for(".compare", campaign_id=campaign_id) + ".pdf?" + urlencode(query)
    return render_template(
        "compare.html", view=view, message=None, format_p=format_p, pdf_url=pdf_url
    )


@bp.get("/campaigns/<id:campaign_id>/email")
def email(campaign_id: int) -> Response:
    """The email as sent, annotated with the heatmap, for the sandboxed frame only."""
    params = ViewParams.from_query(request.args)
    session = get_session()
    view = build_view(session, campaign_id, params, cta_min_rate=_cta_min_rate())
    document = view_document(session, view, resources=_asset_addresses(campaign_id))
    response = Response(document, mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-DNS-Prefetch-Control"] = "off"
    return response


def _cta_min_rate() -> float:
    rate: float = current_app.config["CTA_MIN_CLICK_RATE"]
    return rate


@bp.post("/campaigns/<id:campaign_id>/links/<id:placement_id>/settings")
def link_settings(campaign_id: int, placement_id: int) -> BaseResponse:
    """Rename a link and mark it as a CTA or not (the link pane's edit form), then return
    to the same heatmap view, at the link's row. Each change is recorded with its user."""
    user = current_user()
    assert user is not None  # the guard lets no request without a user this far
    session = get_session()
    placement = rename_placement(
        session, campaign_id, placement_id, request.form.get("label", ""), user
    )
    mark_cta(session, campaign_id, placement_id, request.form.get("cta") == "on", user)
    session.commit()
    flash(f"Saved link #{placement.position}.")
    target = url_for(".heatmap", campaign_id=campaign_id)
    query = _view_query(request.args)
    if query:
        target += "?" + urlencode(query)
    return redirect(f"{target}#row-{placement.position}")


def _asset_signer() -> URLSafeTimedSerializer:
    # Newest key last: it signs, and every key verifies (as for the click tokens).
    return URLSafeTimedSerializer(list(current_app.config["SECRET_KEYS"]), salt=ASSET_SALT)


def _asset_addresses(campaign_id: int) -> ResourceMap:
    """Where the frame finds each remote image: the proxy, under an address signed for this
    campaign, this address and this user's current session. So the proxy fetches only what
    occurs in an email a logged-in user was shown, and the addresses die with the session
    (logging out) or after ``ASSET_MAX_AGE``. With ``EMAIL_REMOTE_IMAGES`` off, nothing."""
    user = current_user()
    if user is None or not current_app.config["EMAIL_REMOTE_IMAGES"]:
        return lambda _url: None
    signer = _asset_signer()
    identity = [campaign_id, user.id, user.session_version]

    def address(url: str) -> str:
        signed = signer.dumps([*identity, url])
        return url_for(".email_asset", campaign_id=campaign_id, u=signed)

    return address


@bp.get("/campaigns/<id:campaign_id>/email/asset")
def email_asset(campaign_id: int) -> Response:
    """One remote image or font of a campaign's email, through our own origin.

    The sandboxed frame asking for it sends no cookie, so the address itself is the
    credential: signed by ``_asset_addresses`` for one campaign, one URL and one user's
    session, which must still be current. The URL is fetched by the PDF's rules
    (``app.reports.fetcher``) and cached; a refused fetch answers the same invisible
    placeholder the PDF gets.
    """
    gone = NotFound("asset_not_found", "this image address is not valid, or no longer")
    try:
        signed = _asset_signer().loads(request.args.get("u", ""), max_age=ASSET_MAX_AGE)
    except BadData as exc:
        raise gone from exc
    if not (
        isinstance(signed, list)
        and len(signed) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in signed[:3])
        and isinstance(signed[3], str)
        and signed[0] == campaign_id
    ):
        raise gone
    user = get_session().get(User, signed[1])
    if user is None or user.session_version != signed[2]:
        raise gone
    if current_app.config["EMAIL_REMOTE_IMAGES"]:
        cache: RemoteCache = current_app.extensions[EMAIL_ASSETS]
        fetched = cache.get(signed[3])
        body, content_type = fetched.body, fetched.content_type
    else:
        body, content_type = PLACEHOLDER, None
    # The placeholder is an empty SVG image (and, to a stylesheet, empty CSS).
    response = Response(body, mimetype=content_type or "image/svg+xml")
    response.headers["Content-Security-Policy"] = ASSET_CSP
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


# -- drill-down -------------------------------------------------------------------------------


@bp.get("/campaigns/<id:campaign_id>/changes")
def changes(campaign_id: int) -> str:
    """Who renamed which link or marked it as a CTA, and when, newest first."""
    session = get_session()
    campaign = get_campaign(session, campaign_id)
    cursor = request.args.get("cursor") or None
    page = placement_change_page(session, campaign_id, after=cursor)
    return render_template("changes.html", campaign=campaign, page=page, cursor=cursor)


def _placement(session: Session, campaign_id: int, placement_id: int) -> tuple[Campaign, Placement]:
    campaign = get_campaign(session, campaign_id)
    placement = session.scalar(
        select(Placement).where(
            Placement.id == placement_id, Placement.campaign_id == campaign.id, REPORTED
        )
    )
    if placement is None:
        raise NotFound("link_not_found", f"this campaign has no link {placement_id}")
    return campaign, placement


@bp.get("/campaigns/<id:campaign_id>/links/<id:placement_id>")
def clicks(campaign_id: int, placement_id: int) -> str:
    session = get_session()
    campaign, placement = _placement(session, campaign_id, placement_id)
    page = _page_arg()
    rows, count = placement_clicks(session, campaign_id, placement_id, page, CLICKS_PER_PAGE)
    return render_template(
        "clicks.html",
        campaign=campaign,
        placement=placement,
        breakdown=placement_breakdown(session, campaign_id, placement_id),
        sales=placement_conversions(session, placement_id),
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


CSV_COLUMNS = (
    "recipient",
    "clicked_at",
    "device",
    "client",
    "method",
    "user_agent",
    "label",
    "reasons",
    "country",  # last, so the columns before it keep their places
)


@bp.get("/campaigns/<id:campaign_id>/links/<id:placement_id>/clicks.csv")
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
                        row.label,
                        " ".join(row.reasons),
                        row.country or "",
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
