"""The login throttle holds across processes and instances, under concurrent guesses, and
cannot be turned against the real user from another network."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.accounts import LoginThrottle, client_network
from app.db import get_engine
from app.models import LoginAttempt
from tests.factories import add_user, csrf_from, empty_tables, log_in, make_app

WRONG = "not the password"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _client(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("", "unknown"),
        (None, "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_client_network(address: str | None, network: str) -> None:
    assert client_network(address) == network


def test_throttle_counts_per_name_and_network_and_slides(session: Session) -> None:
    throttle = LoginThrottle(per_name=3, per_network=5, window=60)
    net, other = "203.0.113.0/24", "198.51.100.0/24"
    for seconds in (0, 10, 20):
        assert throttle.begin(session, "Ana", net, T0 + timedelta(seconds=seconds)) == 0
    assert throttle.begin(session, "ana ", net, T0 + timedelta(seconds=30)) == pytest.approx(30)
    assert throttle.begin(session, "ana", other, T0 + timedelta(seconds=30)) == 0
    assert throttle.begin(session, "bo", net, T0 + timedelta(seconds=30)) == 0
    assert throttle.begin(session, "ana", net, T0 + timedelta(seconds=61)) == 0  # 0s aged out
    # The network as a whole: five names' attempts (ana x3, bo), then a sixth is refused.
    assert throttle.begin(session, "cy", net, T0 + timedelta(seconds=62)) == 0
    assert throttle.begin(session, "di", net, T0 + timedelta(seconds=63)) > 0
    throttle.succeeded(session, "ana", net)
    assert throttle.begin(session, "ana", net, T0 + timedelta(seconds=64)) == 0


def test_old_attempts_are_pruned(session: Session) -> None:
    throttle = LoginThrottle(window=60)
    for minute in range(5):
        throttle.begin(session, f"user{minute}", "unknown", T0 + timedelta(minutes=minute))
    assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


def test_wrong_guesses_lock_the_name_on_that_network_only(app: Flask) -> None:
    add_user(app)
    attacker = _client(app, "203.0.113.7")
    for _ in range(5):
        assert log_in(attacker, password=WRONG).status_code == 401
    blocked = log_in(attacker)  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    # Another address in the same /24 is the same network.
    assert log_in(_client(app, "203.0.113.200")).status_code == 429
    # The real user, elsewhere, logs in; then that network's failures are forgiven.
    assert log_in(_client(app, "198.51.100.5")).status_code == 302
    add_user(app, "bo")
    assert log_in(attacker, "bo").status_code == 302  # other names are unaffected


def test_a_success_forgives_earlier_failures(app: Flask) -> None:
    add_user(app)
    client = _client(app, "203.0.113.7")
    for _ in range(4):
        assert log_in(client, password=WRONG).status_code == 401
    assert log_in(client).status_code == 302
    client = _client(app, "203.0.113.7")
    for _ in range(5):
        assert log_in(client, password=WRONG).status_code == 401


def test_the_network_limit_covers_every_name(backends: Any, backend: str, tmp_path: Path) -> None:
    app = make_app(backends.url(backend), tmp_path, LOGIN_NETWORK_ATTEMPTS=3)
    try:
        add_user(app)
        client = _client(app, "203.0.113.7")
        for name in ("x1", "x2", "x3"):
            assert log_in(client, name, WRONG).status_code == 401
        assert log_in(client).status_code == 429
        assert log_in(_client(app, "198.51.100.5")).status_code == 302
    finally:
        empty_tables(app)
        get_engine(app).dispose()


def test_the_limit_holds_across_instances(backends: Any, backend: str, tmp_path: Path) -> None:
    """Two app instances (as two workers or two servers) share one database and one limit."""
    apps = [make_app(backends.url(backend), tmp_path / str(n)) for n in range(2)]
    try:
        add_user(apps[0])
        clients = [_client(app, "203.0.113.7") for app in apps]
        statuses = [log_in(clients[n % 2], password=WRONG).status_code for n in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        assert log_in(clients[1]).status_code == 429
    finally:
        empty_tables(apps[0])
        for app in apps:
            get_engine(app).dispose()


@pytest.mark.postgres
def test_concurrent_guesses_never_exceed_the_limit(backends: Any, tmp_path: Path) -> None:
    """16 wrong guesses at once: at most the limit get their password checked."""
    app = make_app(backends.url("postgresql"), tmp_path)
    try:
        add_user(app)
        clients = [_client(app, "203.0.113.7") for _ in range(16)]
        tokens = [csrf_from(client.get("/login").get_data(as_text=True)) for client in clients]
        start = threading.Barrier(len(clients))
        statuses: list[int] = []

        def guess(client: FlaskClient, token: str) -> None:
            start.wait()
            response = client.post(
                "/login", data={"username": "ana", "password": WRONG, "csrf_token": token}
            )
            statuses.append(response.status_code)

        threads = [
            threading.Thread(target=guess, args=pair) for pair in zip(clients, tokens, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(statuses) == 16
        assert statuses.count(401) <= 5
        assert statuses.count(401) + statuses.count(429) == 16
        with app.extensions["clickmap.sessionmaker"]() as s:
            assert s.scalar(select(func.count()).select_from(LoginAttempt)) == statuses.count(401)
    finally:
        empty_tables(app)
        get_engine(app).dispose()


def test_the_password_is_right_after_the_lock_lifts(app: Flask, session: Session) -> None:
    add_user(app)
    client = _client(app, "203.0.113.7")
    for _ in range(5):
        log_in(client, password=WRONG)
    assert log_in(client).status_code == 429
    # Age the failures past the window: the lock lifts by itself.
    session.execute(update(LoginAttempt).values(attempted_at=T0))
    session.commit()
    assert log_in(client).status_code == 302


def test_bad_api_tokens_share_the_networks_budget(session: Session) -> None:
    throttle = LoginThrottle(per_name=3, per_network=4, window=60)
    net, other = client_network("198.51.100.7"), client_network("203.0.113.9")
    assert throttle.begin(session, "ana", net, T0) == 0  # a failed login counts too
    for seconds in (1, 2, 3):
        assert throttle.failed_token(session, net, T0 + timedelta(seconds=seconds)) == 0
    assert throttle.failed_token(session, net, T0 + timedelta(seconds=10)) == pytest.approx(50)
    assert throttle.failed_token(session, other, T0 + timedelta(seconds=10)) == 0
    # The window slides: once the oldest attempts age out, tokens are checked again.
    assert throttle.failed_token(session, net, T0 + timedelta(seconds=62)) == 0
