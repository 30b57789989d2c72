"""The marketer's dashboard: log in, list campaigns, read a campaign's heatmap, drill down.

Pages only: every figure comes from ``app.reports``; this module parses the request, calls
them and renders templates. Security is on by default rather than per view:
``init_app`` installs one guard that sends every request without a user to the login page,
except the few public routes listed here, so a view added later cannot be left open by
forgetting a decorator. The JSON API keeps its own Bearer-token check.

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
import secrets
import sys
from collections.abc import Iterator, Mapping
from urllib.parse import urlencode

import click
from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import with_appcontext
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app.db import get_session
from app.errors import ClickmapError, InvalidInput, NotFound, cli_error, error_response
from app.ingest.campaigns import get_campaign
from app.models import Campaign, Placement, User
from app.reports.email_overlay import view_document
from app.reports.heatmap import ViewParams, build_view
from app.reports.labels import format_when, printable_svg
from app.reports.listings import campaign_list, iter_placement_clicks, placement_clicks
from app.web import csrf
from app.web.auth import (
    LoginThrottle,
    authenticate,
    bearer_token,
    create_user,
    current_user,
    login_user,
    logout_user,
    refuse_anonymous,
    safe_next,
    set_password,
)

bp = Blueprint("dashboard", __name__)
csrf.protect(bp)

CAMPAIGNS_PER_PAGE = 25
CLICKS_PER_PAGE = 50
MAX_PAGE = 1_000_000
MAX_SEARCH_LENGTH = 200

# Endpoints anyone may call: the redirector (recipients are not users), the health check
# (load balancers), the login page itself, and static files (the login page's stylesheet).
PUBLIC_ENDPOINTS = frozenset(
    {"redirector.click", "redirector.healthz", "dashboard.login", "static"}
)

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


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with ``Secure`` set whenever the request is https.

    Setting ``SESSION_COOKIE_SECURE`` (behind a TLS-terminating proxy without ProxyFix, say)
    still forces it on.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Recipients following tracked links carry no cookie at all: hand them an empty
        # session without parsing cookies or building the serializer (every redirect pays).
        if "HTTP_COOKIE" not in request.environ or (
            self.get_cookie_name(app) not in request.cookies
        ):
            return None if not app.secret_key else self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # An empty session nobody changed sets and deletes nothing (as in Flask), so skip
        # working out the cookie's attributes first.
        if not session and not session.modified:
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def init_app(app: Flask) -> None:
    """Register the dashboard, its guard, its cookie settings and the ``user`` commands."""
    app.config.update(
        SESSION_COOKIE_NAME="clickmap_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.setdefault("LOGIN_ATTEMPTS", 5)
    app.config.setdefault("LOGIN_WINDOW_SECONDS", 900)
    app.session_interface = _SessionInterface()
    app.extensions["clickmap.login_throttle"] = LoginThrottle(
        app.config["LOGIN_ATTEMPTS"], app.config["LOGIN_WINDOW_SECONDS"]
    )
    app.before_request(_require_user)
    app.register_blueprint(bp)
    app.cli.add_command(user_group)
    # The heatmap report's labels and figure filters are app.reports.labels' (create_app
    # installs them); the page's charts get this module's nonced filter instead of the PDF's.
    app.jinja_env.globals.update(
        csrf_token=csrf.token,
        csrf_field_name=csrf.FIELD_NAME,
        csp_nonce=csp_nonce,
        current_user=current_user,
    )
    app.jinja_env.filters.update(nonced=nonced_svg)


def _require_user() -> BaseResponse | None:
    """Refuse anonymous requests to anything that is not explicitly public."""
    if request.url_rule is None:  # no route matched: let the 404 or 405 happen
        return None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.path.startswith("/api/"):
        # The API authenticates with Bearer tokens only, never with the session cookie (so
        # it needs no CSRF token). The API blueprint checks its tokens itself; routes other
        # modules add under /api/ are checked here too.
        if request.blueprint == "api" or bearer_token(
            get_session(), request.headers.get("Authorization", "")
        ):
            return None
        return error_response(
            "unauthorized", "send an API token as 'Authorization: Bearer <token>'", 401
        )
    if current_user() is None:
        return refuse_anonymous()
    return None


# -- presentation helpers ---------------------------------------------------------------------


def csp_nonce() -> str:
    """This response's style nonce ('' outside a request, e.g. when rendering a PDF)."""
    if not has_request_context():
        return ""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    nonce: str = g.csp_nonce
    return nonce


_SVG_STYLE = re.compile(r"<style\b", re.IGNORECASE)


def nonced_svg(svg: str) -> Markup:
    """A server-made chart ready to inline: its scripts dropped, its styles allowed by nonce.

    The SVG comes from pygal, not from users; the script is pygal's tooltip loader, which
    the page's CSP would block anyway.
    """
    cleaned = str(printable_svg(svg))
    nonce = csp_nonce()
    if nonce:
        cleaned = _SVG_STYLE.sub(f'<style nonce="{nonce}"', cleaned)
    return Markup(cleaned)  # noqa: S704 (trusted: generated by app.reports.heatmap from numbers)


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
    wait = throttle.retry_after(username)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        error = f"Too many failed attempts. Try again in {minutes} minute(s)."
        page = render_template("login.html", next=next_url, username=username, error=error)
        return page, 429, {"Retry-After": str(math.ceil(wait))}
    user = authenticate(get_session(), username, password)
    if user is None:
        throttle.failed(username)
        error = "The username or password is not correct."
        page = render_template("login.html", next=next_url, username=username, error=error)
        return page, 401, {}
    throttle.succeeded(username)
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


# -- the ``clickmap user`` commands -----------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Dashboard users."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_group.command("create")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@with_appcontext
def user_create(username: str, password_stdin: bool) -> None:
    """Create a dashboard user; the password is asked for twice (hidden)."""
    password = _read_password(password_stdin)
    session = get_session()
    try:
        create_user(session, username, password)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    click.echo(f"user {username} created")


@user_group.command("set-password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@with_appcontext
def user_set_password(username: str, password_stdin: bool) -> None:
    """Replace a user's password; the user's open sessions end."""
    password = _read_password(password_stdin)
    session = get_session()
    try:
        set_password(session, username, password)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    click.echo(f"password of {username} changed")


@user_group.command("list")
@with_appcontext
def user_list() -> None:
    """Print every user and when it was created."""
    for user in get_session().scalars(select(User).order_by(User.username)):
        click.echo(f"{user.username}\t{format_when(user.created_at)}")
