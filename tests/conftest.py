"""Shared fixtures: an app on SQLite and the same app on PostgreSQL.

Every test that takes ``app`` (or ``client``, ``session``, ``runner``, ``auth``) runs twice,
once per backend. Each backend is migrated once per run with the real Alembic migrations (a
broken migration fails everything); PostgreSQL gets a schema of its own per run, so parallel
runs and other users of the server do not collide. Tables are emptied after each test.

PostgreSQL is ``CLICKMAP_TEST_PG`` when set (a server URL); otherwise the session starts a
throwaway cluster of its own (``tests/pgserver.py``) the first time a test needs it. Test apps
never read ``CLICKMAP_*`` from the environment and keep everything they write under pytest's
temporary directories.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.db import get_engine
from app.ops.migrate import upgrade
from tests.factories import AuthActions, empty_tables, make_app
from tests.pgserver import PgServer
from tests.prerequisites import ROOT, require_shared

INSTANCE = ROOT / "instance"


# -- the PostgreSQL server --------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL server every test of the run uses (``pg_server.url()``)."""
    server = PgServer()
    yield server
    server.stop()


# -- migrated databases -----------------------------------------------------------------------


class Backends:
    """Migrated databases, created on first use and dropped at the end of the run."""

    def __init__(self, tmp: Path, pg: PgServer) -> None:
        self.tmp = tmp
        self.pg = pg
        self.urls: dict[str, str] = {}
        self.pg_schema: str | None = None

    def url(self, backend: str) -> str:
        if backend not in self.urls:
            self.urls[backend] = self._create(backend)
        return self.urls[backend]

    def _create(self, backend: str) -> str:
        if backend == "sqlite":
            url = f"sqlite:///{self.tmp / 'clickmap-test.sqlite3'}"
        else:
            self.pg_schema, url = self.pg.new_schema("clickmap_test")
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def drop(self) -> None:
        if self.pg_schema:
            self.pg.drop_schema(self.pg_schema)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Backends]:
    found = Backends(tmp_path_factory.mktemp("db"), pg_server)
    yield found
    found.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(backends: Backends, backend: str, tmp_path: Path) -> Iterator[Flask]:
    application = make_app(backends.url(backend), tmp_path)
    yield application
    empty_tables(application)
    get_engine(application).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        yield s


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> AuthActions:
    """Add a user, log in and out through the real login form (``client``'s session)."""
    return AuthActions(app, client)


# -- prerequisites and hygiene ----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shared(name): needs the reference data folder ../shared/<name> beside the clone",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("shared"):
        require_shared(*marker.args)


@pytest.fixture(scope="session", autouse=True)
def _checkout_instance_untouched() -> Iterator[None]:
    """The suite writes nothing into the checkout's instance/ folder (apps get their own)."""
    before = sorted(INSTANCE.rglob("*")) if INSTANCE.exists() else None
    yield
    after = sorted(INSTANCE.rglob("*")) if INSTANCE.exists() else None
    assert after == before, f"the test run wrote into {INSTANCE}: {after}"
