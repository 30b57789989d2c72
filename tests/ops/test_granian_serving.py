"""``clickmap serve --server granian``: real processes on a free loopback port, the real
database of the ``app`` fixture (SQLite, and PostgreSQL where marked), no mocks.

The server is the command an operator runs, with its settings in ``CLICKMAP_*`` variables
(and nothing from the shell running the tests). It runs in a process group of its own, so a
test can signal its main process alone (as ``kill`` or a container runtime does) or the
whole group (as a terminal's Ctrl-C does).
"""

from __future__ import annotations

import gc
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.cli.serving import DEFAULT_SERVER, serve_command
from app.clicks import tracking
from app.clicks.writer import read_status
from app.db import get_engine
from app.models import Click, Placement, PlacementStats
from app.ops import click_writer, granian_serving
from tests.factories import TEST_SECRET, make_app, send
from tests.prerequisites import ROOT

SERVE = [sys.executable, "-c", "from app.cli import main; main()", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


class Granian:
    """``clickmap serve --server granian`` with two workers and its writer process."""

    def __init__(self, app: Flask, tmp_path: Path, **env: str) -> None:
        self.spool = tmp_path / "served-spool"
        self.log = tmp_path / "granian.log"
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKMAP_")}
        self.env.update(
            {
                "CLICKMAP_DATABASE_URL": app.config["DATABASE_URL"],
                "CLICKMAP_SECRET_KEYS": TEST_SECRET,
                "CLICKMAP_SPOOL_DIR": str(self.spool),
                "CLICKMAP_BIND": f"127.0.0.1:{self.port}",
                "CLICKMAP_WORKERS": "2",
                **env,
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*SERVE, "--server", "granian"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        up = poll(lambda: self._answers() and read_status(self.spool) is not None, 90)
        assert up, "server did not start:\n" + self.log.read_text()[-3000:]

    def _answers(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def writer_pid(self) -> int:
        status = read_status(self.spool)
        assert status is not None
        return int(status["pid"])

    def signal(self, signum: int, group: bool = False) -> None:
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)

    def wait(self, seconds: float = 60) -> int:
        assert self.process is not None
        code = self.process.wait(seconds)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None


@contextmanager
def granian(app: Flask, tmp_path: Path, **env: str) -> Iterator[Granian]:
    server = Granian(app, tmp_path, **env)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def stored(app: Flask) -> int:
    with app.extensions["clickmap.sessionmaker"]() as s:
        return int(s.scalar(select(func.count()).select_from(Click)) or 0)


def spooled_files(server: Granian) -> list[Path]:
    return sorted(server.spool.glob("*.clicks"))


@pytest.mark.slow
def test_a_signed_redirect_is_answered_and_its_click_stored(app: Flask, tmp_path: Path) -> None:
    sent = send(app)
    with granian(app, tmp_path) as server:
        status, headers = server.get(f"/c/{sent.token(0)}")
        assert status == 302
        assert headers["location"] == "https://shop.example.com/sale?b=2#top"
        assert headers["server"] == "granian"
        token = sent.token(0)
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert server.get(f"/c/{tampered}")[0] == 404  # no click
        # The writer process, not the worker that answered, stores it.
        assert poll(lambda: stored(app) == 1, 30)
    with app.extensions["clickmap.sessionmaker"]() as s:
        click = s.scalars(select(Click)).one()
        assert (click.recipient_id, click.method) == (sent.recipients[0], "GET")
        assert s.scalars(select(PlacementStats.total)).all() == [1]


@pytest.mark.slow
def test_a_killed_writer_is_started_again(app: Flask, tmp_path: Path) -> None:
    sent = send(app)
    with granian(app, tmp_path) as server:
        first = server.writer_pid()
        os.kill(first, signal.SIGKILL)
        replaced = poll(lambda: (read_status(server.spool) or {}).get("pid") != first, 60)
        assert replaced, server.log.read_text()[-3000:]
        assert server.writer_pid() != first
        assert server.get(f"/c/{sent.token(0)}")[0] == 302
        assert poll(lambda: stored(app) == 1, 30)  # the new writer stores
        assert "exited with -9; starting another" in server.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "group"),
    [
        pytest.param(signal.SIGTERM, False, id="sigterm-to-the-server"),
        pytest.param(signal.SIGINT, True, id="ctrl-c-to-the-group"),
    ],
)
def test_a_stop_stores_what_was_spooled(
    app: Flask, tmp_path: Path, signum: int, group: bool
) -> None:
    sent = send(app)
    # The writer gathers for a minute between passes: the clicks below wait in the spool
    # until the stop, and only the stop can store them.
    with granian(app, tmp_path, CLICKMAP_CLICK_BATCH_INTERVAL="60") as server:
        time.sleep(1.0)  # past the writer's first pass
        for i in range(6):
            assert server.get(f"/c/{sent.token(0, recipient=i % 2)}")[0] == 302
        time.sleep(0.5)
        assert stored(app) == 0
        assert spooled_files(server)
        server.signal(signum, group=group)
        assert server.wait() == 0
        assert stored(app) == 6
        assert spooled_files(server) == []  # stored, then let go of and deleted
        log = server.log.read_text()
        assert "click writer stopped" in log
        assert "exited with" not in log  # the writer stopped with the server, not restarted


@pytest.mark.slow
def test_the_supervisor_restarts_the_writer_and_its_stop_stores_the_spool(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor as granian's main process runs it, here in the test's own process; the
    writer is the real ``python -m app.ops.click_writer``, which reads the environment."""
    sent = send(app)
    spool = tmp_path / "supervised-spool"
    for name, value in {
        "DATABASE_URL": app.config["DATABASE_URL"],
        "SECRET_KEYS": TEST_SECRET,
        "SPOOL_DIR": str(spool),
        "CLICK_BATCH_INTERVAL": "60",  # stored at the stop, not before
    }.items():
        monkeypatch.setenv(f"CLICKMAP_{name}", value)
    # A serving process's side: it only spools (writer mode "process").
    serving = make_app(
        app.config["DATABASE_URL"],
        tmp_path / "serving",
        SPOOL_DIR=str(spool),
        CLICK_WRITER="process",
    )
    supervisor = granian_serving.WriterSupervisor()
    supervisor.start()
    try:
        assert poll(lambda: read_status(spool) is not None, 60)
        first = int((read_status(spool) or {})["pid"])
        os.kill(first, signal.SIGKILL)
        assert poll(lambda: (read_status(spool) or {}).get("pid") not in (None, first), 60)
        time.sleep(0.5)  # past the new writer's first pass
        assert serving.test_client().get(f"/c/{sent.token(0)}").status_code == 302
        assert serving.test_client().get(f"/c/{sent.token(0, 1)}").status_code == 302
        tracking.stop(serving)  # the serving process lets go of its spool
        assert stored(app) == 0
    finally:
        supervisor.stop()
        tracking.stop(serving)
        get_engine(serving).dispose()
    assert supervisor.process is not None and supervisor.process.returncode == 0
    assert stored(app) == 2
    assert sorted(spool.glob("*.clicks")) == []


@pytest.fixture
def environ_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[Flask, Path], None]:
    """Point the ``CLICKMAP_*`` environment at a test app's database and a spool directory,
    for code that reads the environment (as the server's processes do)."""

    def point(app: Flask, spool: Path) -> None:
        monkeypatch.setenv("CLICKMAP_DATABASE_URL", app.config["DATABASE_URL"])
        monkeypatch.setenv("CLICKMAP_SECRET_KEYS", TEST_SECRET)
        monkeypatch.setenv("CLICKMAP_SPOOL_DIR", str(spool))

    return point


@pytest.fixture
def clickmap_log_kept() -> Iterator[None]:
    """The writer process sets the ``clickmap`` logger up for itself; here it shares the
    test's process, so put the logger back afterwards."""
    found = logging.getLogger("clickmap")
    saved = (list(found.handlers), found.level, found.propagate)
    yield
    found.handlers, found.level, found.propagate = saved[0], saved[1], saved[2]


def test_the_writer_process_stores_then_stops_on_sigterm(
    app: Flask,
    tmp_path: Path,
    environ_of: Callable[[Flask, Path], None],
    clickmap_log_kept: None,
) -> None:
    """``app.ops.click_writer.main`` in a thread of the test's process: the signal goes to
    that thread alone, which is where the process's main thread would take it."""
    sent = send(app)
    spool = tmp_path / "writer-spool"
    environ_of(app, spool)
    serving = make_app(
        app.config["DATABASE_URL"], tmp_path / "serving", SPOOL_DIR=str(spool),
        CLICK_WRITER="process",
    )  # fmt: skip
    thread = threading.Thread(target=click_writer.main)
    try:
        assert serving.test_client().get(f"/c/{sent.token(0)}").status_code == 302
        thread.start()
        assert poll(lambda: stored(app) == 1, 30)  # while the serving process holds its file
        assert serving.test_client().get(f"/c/{sent.token(0, 1)}").status_code == 302
        tracking.stop(serving)  # lets go of its spool file
        assert thread.ident is not None
        signal.pthread_kill(thread.ident, signal.SIGTERM)
        thread.join(60)
        assert not thread.is_alive()
    finally:
        gc.unfreeze()  # the writer froze what the test's process had loaded
        tracking.stop(serving)
        get_engine(serving).dispose()
    assert stored(app) == 2
    assert sorted(spool.glob("*.clicks")) == []


def test_a_worker_builds_its_app_and_warms_its_cache(
    app: Flask, tmp_path: Path, environ_of: Callable[[Flask, Path], None]
) -> None:
    send(app)
    environ_of(app, tmp_path / "worker-spool")
    worker_app = granian_serving.load_app("app:create_app")
    try:
        found = tracking.tracker(worker_app)
        assert found.mode == "process" and found.writer is None  # it only spools
        with app.extensions["clickmap.sessionmaker"]() as s:
            links = s.scalar(select(func.count()).select_from(Placement).where(Placement.tracked))
        assert poll(lambda: len(found.targets) == links, 30)  # the cache is warm at start
    finally:
        gc.unfreeze()
        tracking.stop(worker_app)
        get_engine(worker_app).dispose()


def test_build_configures_granian_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKMAP_BIND", "127.0.0.1:8123")
    monkeypatch.setenv("CLICKMAP_ACCESS_LOG", "1")
    server = granian_serving.build({"workers": 3, "threads": None})
    assert (server.bind_addr, server.bind_port) == ("127.0.0.1", 8123)
    assert (server.workers, server.blocking_threads) == (3, 2)
    assert server.interface == "wsgi" and server.respawn_failed_workers
    assert server.workers_kill_timeout == granian_serving.GRACEFUL_TIMEOUT
    assert server.log_access
    # The writer runs beside the workers from the start, and stops after them.
    assert server.hooks_startup == [server.supervisor.start]
    assert server.hooks_shutdown == [server.supervisor.stop]


def test_serve_picks_the_server(tmp_path: Path) -> None:
    from click.testing import CliRunner

    assert DEFAULT_SERVER == "granian"
    result = CliRunner().invoke(serve_command, ["--help"])
    assert result.exit_code == 0 and "--server [granian|gunicorn]" in result.output
    result = CliRunner().invoke(serve_command, ["--server", "uwsgi"])
    assert result.exit_code != 0 and "uwsgi" in result.output


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:8000", {"address": "127.0.0.1", "port": 8000}),
        ("0.0.0.0:80", {"address": "0.0.0.0", "port": 80}),
        ("[::1]:8080", {"address": "::1", "port": 8080}),
        ("unix:/run/clickmap.sock", {"uds": Path("/run/clickmap.sock")}),
    ],
)
def test_bind_addresses(bind: str, expected: dict[str, Any]) -> None:
    assert granian_serving._address(bind) == expected


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1:http", ""])
def test_a_bad_bind_address_is_refused(bind: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT or unix:PATH"):
        granian_serving._address(bind)


def test_settings_come_from_the_environment_then_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLICKMAP_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("CLICKMAP_WORKERS", "3")
    monkeypatch.delenv("CLICKMAP_THREADS", raising=False)
    monkeypatch.delenv("CLICKMAP_ACCESS_LOG", raising=False)
    assert granian_serving.settings_from_environ() == {
        "bind": "0.0.0.0:9000",
        "workers": 3,
        "threads": 2,
        "access_log": False,
    }
    found = granian_serving.settings_from_environ({"workers": 1, "threads": 4, "bind": None})
    assert (found["bind"], found["workers"], found["threads"]) == ("0.0.0.0:9000", 1, 4)
