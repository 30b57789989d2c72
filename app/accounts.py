"""Accounts: dashboard users with passwords, and API tokens for senders.

The domain side only: these functions take a SQLAlchemy session and arguments, so the CLI,
the demo and the web layer share them. Requests (cookies, headers) are ``app.web.auth``'s.

API tokens are random 32-byte strings shown once at creation; only their SHA-256 is stored,
so a leaked database does not leak working tokens. A fast hash is right here (unlike for
passwords): the token has 256 bits of entropy, so there is nothing to brute-force.

Passwords are slow-hashed (werkzeug's scrypt), unlike API tokens: people choose guessable
passwords, so a leaked hash must be expensive to attack, and online guessing is throttled
in the database (``LoginThrottle``).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, true
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import InvalidInput, NotFound
from app.models import ApiToken, LoginAttempt, User

TOKEN_PREFIX = "cm_"  # noqa: S105 (a public marker, not a secret)

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,149}")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing cost grows with length; refuse absurd inputs early


# -- API tokens -------------------------------------------------------------------------------


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


# -- dashboard users --------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "weak_password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            "invalid_password", f"a password has at most {MAX_PASSWORD_LENGTH} characters"
        )


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def create_user(session: Session, username: str, password: str) -> User:
    """Store a new user with a salted, slow hash of ``password``."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(
            "invalid_username",
            "a username is 1 to 150 letters, digits or . _ @ + - and starts with a letter or digit",
        )
    _check_password(password)
    if find_user(session, username) is not None:
        raise InvalidInput("user_exists", f"a user named {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    """Replace a user's password; sessions opened with the old one stop working."""
    _check_password(password)
    user = find_user(session, username)
    if user is None:
        raise NotFound("unknown_user", f"there is no user named {username!r}")
    user.password_hash = generate_password_hash(password)
    session.flush()
    return user


@functools.cache
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user whose name and password match, or None.

    An unknown name still costs one hash check, so response times do not reveal which
    usernames exist.
    """
    if len(password) > MAX_PASSWORD_LENGTH or len(username) > 150:
        return None
    user = find_user(session, username)
    if user is None:
        check_password_hash(_decoy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


# -- login throttling -------------------------------------------------------------------------


def client_network(address: str | None) -> str:
    """The network a login comes from: IPv4 /24, IPv6 /64 ("unknown" without an address).

    Throttling per network rather than per address: one machine easily has many addresses
    in its /64 (or a few in its /24), but rarely many networks.
    """
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# Failed API token attempts are stored under this name, which no user can have (names are
# stripped and non-empty).
API_TOKEN_ATTEMPT = ""


@dataclass(frozen=True)
class LoginThrottle:
    """Login attempts per (username, network) and per network, in a sliding window, counted
    in the database so every worker process and instance shares them.

    Each attempt is stored and committed *before* its password is checked, and only then are
    the recent attempts counted: of concurrent attempts, the one committed last sees all the
    others, so no more than ``per_name`` passwords are ever checked for a name from one
    network within ``window`` seconds, however many arrive at once. A refused attempt's row
    is deleted again (it checked nothing), a failed one's stays until it ages out, and a
    successful login forgives its name's attempts from its network.

    Keyed by name *and* network so that guessing wrong on purpose cannot lock the real user
    out from elsewhere; ``per_network`` bounds how many names one network may try.
    """

    per_name: int = 5
    per_network: int = 50
    window: float = 900.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LoginThrottle:
        return cls(
            int(config["LOGIN_ATTEMPTS"]),
            int(config["LOGIN_NETWORK_ATTEMPTS"]),
            float(config["LOGIN_WINDOW_SECONDS"]),
        )

    @staticmethod
    def key(username: str) -> str:
        return username.strip().lower()[:150]

    def begin(
        self, session: Session, username: str, network: str, now: datetime | None = None
    ) -> float:
        """Record an attempt and say whether its password may be checked: 0 if so, else the
        seconds until the oldest counted attempt ages out (for ``Retry-After``).

        Commits ``session`` (the attempt must be visible to the other processes before it is
        counted).
        """
        now = now or datetime.now(UTC)
        since = now - timedelta(seconds=self.window)
        name = self.key(username)
        session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= since))
        attempt = LoginAttempt(username=name, network=network, attempted_at=now)
        session.add(attempt)
        session.commit()
        recent = (LoginAttempt.network == network, LoginAttempt.attempted_at > since)
        for condition, limit in (
            (LoginAttempt.username == name, self.per_name),
            (true(), self.per_network),
        ):
            count, oldest = session.execute(
                select(func.count(), func.min(LoginAttempt.attempted_at)).where(condition, *recent)
            ).one()
            if count > limit:
                session.delete(attempt)
                session.commit()
                return max(1.0, (oldest - since).total_seconds())
        return 0.0

    def failed_token(self, session: Session, network: str, now: datetime | None = None) -> float:
        """Record a request with an invalid API token and say whether ``network`` is over its
        budget: 0 if not, else the seconds to wait (for ``Retry-After``). Commits.

        Bad tokens and failed logins share the network's budget (``per_network`` in
        ``window``), so guessing tokens is no cheaper than guessing passwords. Valid tokens
        are never counted: a request with one costs nothing here.
        """
        now = now or datetime.now(UTC)
        since = now - timedelta(seconds=self.window)
        session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= since))
        session.add(LoginAttempt(username=API_TOKEN_ATTEMPT, network=network, attempted_at=now))
        session.commit()
        count, oldest = session.execute(
            select(func.count(), func.min(LoginAttempt.attempted_at)).where(
                LoginAttempt.network == network, LoginAttempt.attempted_at > since
            )
        ).one()
        if count > self.per_network:
            return max(1.0, (oldest - since).total_seconds())
        return 0.0

    def succeeded(self, session: Session, username: str, network: str) -> None:
        """Forgive the attempts of ``username`` from ``network`` (commits)."""
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.username == self.key(username), LoginAttempt.network == network
            )
        )
        session.commit()
