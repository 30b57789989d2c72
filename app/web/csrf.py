"""Cross-site request forgery protection for the dashboard's forms.

The dashboard authenticates with a cookie, which the browser attaches to any request, even
one a hostile page makes it send. So every state-changing request must also carry a secret
that only our own pages know: a random token kept in the (signed) session and repeated in a
hidden form field or the ``X-CSRF-Token`` header. The JSON API is not protected this way and
needs no such protection: it reads Bearer tokens, never cookies.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, request, session

from app.errors import ClickmapError

FIELD_NAME = "csrf_token"
HEADER_NAME = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SESSION_KEY = "csrf"


class CSRFError(ClickmapError):
    status = 400


def token() -> str:
    """This session's token, created on first use (login clears it, so it changes then)."""
    value = session.get(_SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = session[_SESSION_KEY] = secrets.token_urlsafe(32)
    return value


def check() -> None:
    """Raise ``CSRFError`` unless an unsafe request carries this session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(_SESSION_KEY)
    sent = request.form.get(FIELD_NAME) or request.headers.get(HEADER_NAME) or ""
    if not isinstance(expected, str) or not expected:
        raise CSRFError(
            "csrf_missing_session",
            "Your session has expired or cookies are blocked. Reload the page and try again.",
        )
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CSRFError(
            "csrf_invalid",
            "This form has expired or was not sent from Clickmap. Reload the page and try again.",
        )


# Blueprints whose unsafe requests are checked, and those left unchecked on purpose (with
# why): every blueprint with a POST route must be in one of them (a test holds the app to it).
PROTECTED: set[str] = set()
EXEMPT: dict[str, str] = {}


def protect(blueprint: Blueprint) -> None:
    """Check the token before every view of ``blueprint``."""
    PROTECTED.add(blueprint.name)
    blueprint.before_request(check)


def exempt(blueprint: Blueprint, reason: str) -> None:
    """Declare that ``blueprint`` takes no CSRF token, and why: only for routes that never
    read the login cookie, so a hostile page cannot borrow a user's authority through them."""
    EXEMPT[blueprint.name] = reason
