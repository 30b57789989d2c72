"""Shared fixtures: an app on SQLite and the same app on PostgreSQL.

Every test that takes ``app`` (or ``client``, ``session``, ``runner``) runs twice, once per
backend. Each backend is migrated once per run with the real Alembic migrations (a broken
migration fails everything); PostgreSQL gets a schema of its own per run, so parallel runs
and other users of the ``test`` database do not collide. Tables are emptied after each test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app import create_app
from app.db import Base, get_engine
from app.ops.migrate import upgrade

PG_SERVER = os.environ.get("CLICKMAP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CLICKMAP_CORPUS", ROOT.parent / "shared" / "corpus"))
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


def corpus_files(kind: str) -> list[Path]:
    """The shared corpus files of one kind ("email" or "amp")."""
    return sorted((CORPUS / kind).glob("*.html"))


class _Backends:
    """Migrated databases, created on first use and dropped at the end of the run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
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
            schema = f"clickmap_test_{os.getpid()}_{secrets.token_hex(3)}"
            server = create_engine(PG_SERVER)
            try:
                with server.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            except Exception as exc:
                message = f"PostgreSQL at {PG_SERVER} is unreachable: {exc}"
                if os.environ.get("CI"):
                    pytest.fail(message + " (CI needs it: .ci/run starts it)")
                pytest.skip(message)
            finally:
                server.dispose()
            self.pg_schema = schema
            url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def drop(self) -> None:
        if self.pg_schema:
            server = create_engine(PG_SERVER)
            with server.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.pg_schema}" CASCADE'))
            server.dispose()


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Backends]:
    found = _Backends(tmp_path_factory.mktemp("db"))
    yield found
    found.drop()


def _empty_tables(app: Flask) -> None:
    engine = get_engine(app)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def make_app(url: str, tmp_path: Path, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "DATABASE_URL": url,
        "SECRET_KEYS": [TEST_SECRET],
        "TRACKING_BASE_URL": "https://t.example.com",
        "SPOOL_DIR": str(tmp_path / "spool"),
        "TESTING": True,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(backends: _Backends, backend: str, tmp_path: Path) -> Iterator[Flask]:
    application = make_app(backends.url(backend), tmp_path)
    yield application
    _empty_tables(application)
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
