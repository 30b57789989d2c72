"""Who may see data: API Bearer tokens (and, for the dashboard, users with passwords).

API tokens are random 32-byte strings shown once at creation; only their SHA-256 is stored,
so a leaked database does not leak working tokens. A fast hash is right here (unlike for
passwords): the token has 256 bits of entropy, so there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken

TOKEN_PREFIX = "cm_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, name: str) -> str:
    """Store a new token under ``name`` and return the token itself (shown only once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_hash(token)))
    session.flush()
    return token


def check_api_token(session: Session, token: str) -> ApiToken | None:
    """The stored token matching ``token``, or None. Records when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    found = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(token))).first()
    if found is not None:
        found.last_used_at = datetime.now(UTC)
    return found
