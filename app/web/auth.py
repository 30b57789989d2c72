"""Who is asking: the request side of accounts (``app.accounts`` holds the domain side).

The dashboard's login session and its cookie, the guard every request passes, and the
API's Bearer-token check.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Request, current_app, g, has_request_context, redirect, request, url_for
from flask import Response as FlaskResponse
from flask import session as web_session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from app.accounts import LoginThrottle, check_api_token, client_network
from app.db import get_session
from app.errors import (
    WEBHOOK_PREFIX,
    TooManyRequests,
    Unauthorized,
    error_response,
    is_api_request,
)
from app.models import ApiToken, User
from app.urls import UnsafeDestination, parse_web_address

# The login lives in a Flask-signed cookie holding the user's id and their session version
# (``User.session_version``) at login. The version is compared with the user's row, which
# every dashboard request loads anyway, so a cookie stops working the moment the version
# moves on: at logout (from any browser) and with a new password. The cookie alone never
# proves a login, however long it is kept or wherever it was copied to.

_USER_ID_KEY = "user_id"
_VERSION_KEY = "user_sv"

# Paths that never read or write the login cookie: recipients following tracked links and
# loading the open pixel (they are not users, and a marketer clicking a test email must not
# get the dashboard's cookie refreshed by the redirect), the health check (load balancers,
# monitors) and the ESPs' webhooks (machines, authenticated by their own signatures).
_REDIRECT_PREFIX = ("/c/", "/o/")
_HEALTH_PATH = "/healthz"
_COOKIELESS_PREFIXES = (*_REDIRECT_PREFIX, WEBHOOK_PREFIX)


# Endpoints anyone may call: the redirector (recipients are not users), the health check
# (load balancers; its counters need an API token, see ``_check_health_caller``), the
# login page itself, and static files (the login page's stylesheet). The email frame's
# images are requested by a sandboxed frame, which sends no cookie: each of their addresses
# is signed for one user's session instead, and checked by the view (``email_asset``).
HEALTH_ENDPOINT = "redirector.healthz"
PUBLIC_ENDPOINTS = frozenset(
    {
        "redirector.click",
        "redirector.pixel",
        HEALTH_ENDPOINT,
        "dashboard.login",
        "dashboard.email_asset",
        "static",
    }
    # The API's contract and its reference page: documentation, no data.
    | {"api.openapi", "api.reference", "api.reference_asset"}
    # The ESPs' delivery webhooks: each checks its ESP's signature or credentials itself.
    | {"webhooks.receive"}
)

# How long a token this process found valid still opens the health counters while the
# database cannot check it (a monitor polls every few seconds; an outage is what it watches).
HEALTH_TOKEN_MEMORY_SECONDS = 3600.0
_RECENT_TOKENS = "clickmap.health_tokens"


def init_app(app: Flask) -> None:
    """Install the login cookie's settings and the one guard every request passes."""
    app.config.update(
        SESSION_COOKIE_NAME="clickmap_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.session_interface = SessionInterface()
    app.extensions[_RECENT_TOKENS] = _RecentTokens(HEALTH_TOKEN_MEMORY_SECONDS)
    app.before_request(require_user_or_token)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with ``Secure`` set whenever the request is https.

    Behind TLS-terminating proxies counted in ``TRUSTED_PROXY_COUNT``, ProxyFix makes the
    request https from their ``X-Forwarded-Proto``; ``SESSION_COOKIE_SECURE`` still forces
    ``Secure`` on (behind a proxy that does not say, say).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # The redirector, the health check and the webhooks never look at the cookie, even
        # when a marketer's browser sends one: no parsing, no signature check, and nothing
        # saved afterwards.
        path = request.environ.get("PATH_INFO", "")
        if path.startswith(_COOKIELESS_PREFIXES) or path == _HEALTH_PATH:
            return _CookielessSession()
        # Anyone else without our cookie gets an empty session without parsing cookies or
        # building the serializer.
        if "HTTP_COOKIE" not in request.environ or (
            self.get_cookie_name(app) not in request.cookies
        ):
            return None if not app.secret_key else self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: FlaskResponse) -> None:
        # An empty session nobody changed sets and deletes nothing (as in Flask), so skip
        # working out the cookie's attributes first. A cookieless path never sets a cookie,
        # not even the refresh Flask gives a permanent session on every response.
        if isinstance(session, _CookielessSession) or (not session and not session.modified):
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


class _CookielessSession(SecureCookieSession):
    """The session of a path that never reads or writes the cookie (see ``open_session``)."""


def require_user_or_token() -> Response | None:
    """Refuse anonymous requests to anything that is not explicitly public.

    Security is on by default rather than per view, so a route added later cannot be left
    open by forgetting a decorator. The API (everything under ``/api/``, whichever module
    adds the route) authenticates with Bearer tokens only, never with the session cookie,
    so it needs no CSRF token; every other page needs a logged-in user.
    """
    if request.url_rule is None:  # no route matched: let the 404 or 405 happen
        return None
    if request.endpoint == HEALTH_ENDPOINT:
        return _check_health_caller()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if is_api_request():
        api_token_from_request()
        return None
    if current_user() is None:
        return refuse_anonymous()
    return None


def api_token_from_request() -> ApiToken:
    """The API token of this request's ``Authorization: Bearer <token>``, its use recorded.

    The only place the header is read. Raises ``Unauthorized`` (401, code ``unauthorized``)
    when the header is missing or the token is not valid, and ``TooManyRequests`` (429) once
    the client's network has sent too many bad tokens and failed logins lately (the login
    throttle's budget). The token is kept in ``g.api_token`` for the view.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("unauthorized", "send an API token as 'Authorization: Bearer <token>'")
    session = get_session()
    found = check_api_token(session, token.strip())
    if found is None:
        throttle = LoginThrottle.from_config(current_app.config)
        wait = throttle.failed_token(session, client_network(request.remote_addr))
        if wait:
            raise TooManyRequests(
                "too_many_attempts",
                "too many invalid API tokens or logins from your network; try again later",
                retry_after=math.ceil(wait),
            )
        raise Unauthorized("unauthorized", "the API token is not valid")
    session.commit()  # keeps the token's last use
    g.api_token = found
    return found


# -- the health check's counters ----------------------------------------------------------------


class _RecentTokens:
    """SHA-256 digests of API tokens this process found valid lately, with when.

    Only consulted while the database is unreachable: that is when a monitor most needs the
    counters (``"database": "down"``, a growing spool), and when no token can be checked.
    Bounded: the oldest digests go first.
    """

    def __init__(self, seconds: float, size: int = 64) -> None:
        self.seconds = seconds
        self.size = size
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, digest: str) -> None:
        with self._lock:
            self._seen.pop(digest, None)
            self._seen[digest] = time.monotonic()
            while len(self._seen) > self.size:
                del self._seen[next(iter(self._seen))]

    def discard(self, digest: str) -> None:
        with self._lock:
            self._seen.pop(digest, None)

    def holds(self, digest: str) -> bool:
        with self._lock:
            seen = self._seen.get(digest)
        return seen is not None and time.monotonic() - seen < self.seconds


def _check_health_caller() -> Response | None:
    """Decide whether this ``/healthz`` caller may see the counters: the redirector's view
    reads ``g.health_counters`` (it sits below this module and cannot import it).

    Without an ``Authorization`` header: no, and nothing is looked up, so the answer costs
    nothing and a load balancer gets its 200 even with the database down. With one, the
    token is checked like the API's (a wrong one answers 401); if the database cannot check
    it, a token this process found valid within ``HEALTH_TOKEN_MEMORY_SECONDS`` still counts,
    and any other gets a 503 saying why.
    """
    g.health_counters = False
    if "Authorization" not in request.headers:
        return None
    _scheme, _, raw = request.headers["Authorization"].partition(" ")
    digest = hashlib.sha256(raw.strip().encode()).hexdigest()
    recent: _RecentTokens = current_app.extensions[_RECENT_TOKENS]
    try:
        api_token_from_request()
    except Unauthorized:
        recent.discard(digest)
        raise
    except SQLAlchemyError:
        with contextlib.suppress(SQLAlchemyError):
            get_session().rollback()
        if not recent.holds(digest):
            refused = error_response(
                "database_unavailable",
                "The database cannot be reached to check the token; try again shortly.",
                503,
            )
            refused.headers["Retry-After"] = "30"
            refused.headers["Cache-Control"] = "no-store"
            return refused
    else:
        recent.add(digest)
    g.health_counters = True
    return None


# -- dashboard sessions ---------------------------------------------------------------------------


def login_user(user: User) -> None:
    """Start a fresh session for ``user``.

    Everything from the anonymous session (including its CSRF token) is dropped, so a
    session id or token planted before login is worthless after it.
    """
    web_session.clear()
    web_session.permanent = True
    web_session[_USER_ID_KEY] = user.id
    web_session[_VERSION_KEY] = user.session_version
    g.clickmap_user = user


def logout_user() -> None:
    """End the user's sessions on the server, then forget the cookie in this browser.

    Raising the session version invalidates every cookie issued to the user so far, this
    browser's and any copy of it (and the user's other browsers: logging out is for
    everywhere). Done in SQL, so two logouts at once both count.
    """
    user = current_user()
    if user is not None:
        session = get_session()
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(session_version=User.session_version + 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    web_session.clear()
    g.clickmap_user = None


def current_user() -> User | None:
    """The logged-in user of this request, or None (loaded once per request)."""
    if "clickmap_user" in g:
        found: User | None = g.clickmap_user
        return found
    user: User | None = None
    user_id = web_session.get(_USER_ID_KEY)
    if isinstance(user_id, int):
        candidate = get_session().get(User, user_id)
        version = web_session.get(_VERSION_KEY)
        # A cookie without a version (issued before migration 0006) is not a login.
        if (
            candidate is not None
            and isinstance(version, int)
            and not isinstance(version, bool)
            and version == candidate.session_version
        ):
            user = candidate
    g.clickmap_user = user
    return user


_HERE = "https://clickmap.invalid"  # a stand-in origin: only where the target leads matters


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: ``?next=`` must not leave the site.

    Judged by the browser's own parse (``app.urls``), which reads ``/\\evil.example`` or
    ``/\t/evil.example`` as another host even though they start with one slash.
    """
    if not target or not target.startswith("/") or any(ord(c) < 32 for c in target):
        return None
    try:
        address = parse_web_address(target, base=_HERE + "/")
    except UnsafeDestination:
        return None
    if not address.href.startswith(_HERE + "/"):
        return None
    return target


def refuse_anonymous() -> Response:
    """The answer to a request that needs a user: 401 JSON under /api/, else the login page."""
    if is_api_request():
        return error_response("unauthorized", "log in or send an API token", 401)
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("dashboard.login", next=target))


F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    """Let only logged-in users through; others go to the login page (or get a 401 JSON)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return refuse_anonymous()
        return view(*args, **kwargs)

    return cast(F, wrapped)
