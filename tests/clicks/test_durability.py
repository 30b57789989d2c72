"""Clicks survive: the spool, a killed server, a database outage.

The spool tests are quick. The server tests (``slow``) run a real gunicorn in a process group
of its own, on a free loopback port, against a database of its own: one is killed with
SIGKILL under load and restarted; the other loses its database behind a TCP proxy written
here. In both, every 302 the client received must end up as exactly one stored click.
"""

from __future__ import annotations

import http.client
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, delete, func, make_url, select
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from app.clicks import spool as spool_module
from app.clicks import tracking
from app.clicks.recording import ClickEvent
from app.clicks.spool import Spool, SpoolReader, Taken, read_frames
from app.clicks.writer import ClickWriter, read_status
from app.db import get_engine
from app.ingest import campaigns
from app.models import Click, Placement, PlacementRecipient, PlacementStats
from app.ops.migrate import upgrade
from app.tokens import token_codec
from tests.factories import TEST_SECRET, Sent, empty_tables, make_app, send
from tests.pgserver import PgServer
from tests.prerequisites import ROOT

# -- the spool ---------------------------------------------------------------------------


def test_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(["record", i])
    with open(spool.path, "ab") as raw:
        raw.write(b"CK\x00\x00\x00\x30\x00\x00")  # a header cut short by a crash
    fd = os.open(spool.path, os.O_RDONLY)
    try:
        assert [f.record for f in read_frames(fd, 0)] == [
            ["record", 0],
            ["record", 1],
            ["record", 2],
        ]
    finally:
        os.close(fd)
    spool.close()


def _records(taken: list[Taken]) -> list[Any]:
    return [frame.record for part in taken for frame in part.frames]


def test_frames_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "_CHUNK", 4096)  # many records straddle a chunk edge
    spool = Spool(tmp_path)
    records = [["x" * (i * 37 % 5000), i] for i in range(400)]
    for record in records:
        spool.append(record)
    reader = SpoolReader(tmp_path)
    reader.scan()
    [taken] = reader.take(1000)
    assert [f.record for f in taken.frames] == records
    reader.mark_stored([Taken(taken.file, taken.frames[:150])])
    assert _records(reader.take(1000)) == records[150:]
    assert _records(reader.take(7)) == records[150:157]
    assert reader.pending() == 250
    spool.close()
    reader.close()


def test_corrupt_frame_stops_the_replay(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(["a"])
    spool.append(["b"])
    data = bytearray(spool.path.read_bytes())
    data[-2] ^= 0xFF  # flip a bit in the last payload: its CRC no longer matches
    spool.path.write_bytes(bytes(data))
    fd = os.open(spool.path, os.O_RDONLY)
    try:
        assert [f.record for f in read_frames(fd, 0)] == [["a"]]
    finally:
        os.close(fd)
    spool.close()


def test_a_live_spool_is_read_but_kept_until_its_process_lets_go(tmp_path: Path) -> None:
    live = Spool(tmp_path)
    live.append(["x"])
    reader = SpoolReader(tmp_path)
    assert reader.hold_writer_lock()
    assert not SpoolReader(tmp_path).hold_writer_lock()  # one writer per directory
    reader.scan()
    reader.mark_stored(reader.take(10))
    assert reader.finish_sealed() == []  # stored, but its process may still append
    live.append(["y"])
    live._finalizer()  # the process "dies": its descriptors close, its lock goes
    reader.scan()
    taken = reader.take(10)
    assert _records(taken) == [["y"]]
    assert reader.finish_sealed() == []  # not stored yet
    reader.mark_stored(taken)
    assert reader.finish_sealed() == [(live.path, 0)]
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["writer.lock"]


def test_a_full_spool_file_is_sealed_and_a_new_one_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Spool, "ROTATE_BYTES", 1000)
    spool = Spool(tmp_path)
    records = [["r" * 90, i] for i in range(30)]  # about 110 bytes a frame: 3 files
    for record in records:
        spool.append(record)
    assert len(list(tmp_path.glob("*.clicks"))) == 4
    reader = SpoolReader(tmp_path)
    reader.scan()
    taken = reader.take(1000)
    # Files are read in name order, not creation order: compare as sets of records.
    assert sorted(map(tuple, _records(taken))) == sorted(map(tuple, records))
    reader.mark_stored(taken)
    reader.scan()
    assert len(reader.finish_sealed()) == 3  # the full ones; the current one stays
    assert list(tmp_path.glob("*.clicks")) == [spool.path]
    spool.close()
    reader.close()


def test_a_cleanly_closed_spool_leaves_nothing_once_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(["x"])
    spool.close()
    reader = SpoolReader(tmp_path)
    reader.scan()
    reader.mark_stored(reader.take(10))
    assert reader.pending() == 0
    reader.finish_sealed()
    reader.close()
    assert list(tmp_path.iterdir()) == []


def _count(app: Flask) -> int:
    with app.extensions["clickmap.sessionmaker"]() as s:
        return int(s.scalar(select(func.count()).select_from(Click)) or 0)


def _writer(app: Flask) -> ClickWriter:
    return ClickWriter(app.extensions["clickmap.sessionmaker"], app.config["SPOOL_DIR"], 0.0)


def test_a_dead_process_spool_is_replayed_exactly_once(app: Flask) -> None:
    sent = send(app)
    spool = Spool(app.config["SPOOL_DIR"])
    events = [_event(app, sent, recipient=i % 2) for i in range(5)]
    for event in events[:3]:
        spool.append(event.to_record())
    crashed = _writer(app)
    crashed.reader.scan()
    crashed._store(crashed.reader.take(10))  # stored, but killed before its checkpoint
    crashed.close()
    for event in events[3:]:
        spool.append(event.to_record())
    spool._finalizer()  # SIGKILL: no clean-up

    survivor = _writer(app)
    assert survivor.cycle()
    assert survivor.cycle()
    survivor.close()
    assert _count(app) == 5
    with app.extensions["clickmap.sessionmaker"]() as s:
        stats = s.scalars(select(PlacementStats)).one()
        assert (stats.total, stats.unique) == (5, 2)
    assert list(Path(app.config["SPOOL_DIR"]).glob("*.clicks")) == []
    assert read_status(app.config["SPOOL_DIR"]) == {
        "pid": os.getpid(),
        "time": pytest.approx(time.time(), abs=60),
        "database": "up",
        "pending_clicks": 0,
    }


def test_clicks_of_a_placement_removed_for_good_are_dropped(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """``click`` has no foreign keys: its (placement, recipient) row rejects the click, and
    the writer stores the rest of the batch without it."""
    sent = send(app)
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        kept_id, gone_id = s.scalars(
            select(Placement.id)
            .where(Placement.variant_id == sent.variant_id, Placement.tracked)
            .order_by(Placement.position)
        ).all()[:2]

    spool = Spool(app.config["SPOOL_DIR"])
    spool.append(_click(sent, gone_id).to_record())  # the pair row exists from here on
    writer = _writer(app)
    assert writer.cycle()
    # Removed for good: the pair row goes by cascade, the clicks must be deleted explicitly.
    with factory.begin() as s:
        s.execute(delete(Placement).where(Placement.id == gone_id))
        s.execute(delete(Click).where(Click.placement_id == gone_id))
    late, valid = _click(sent, gone_id), _click(sent, kept_id)
    spool.append(late.to_record())
    spool.append(valid.to_record())
    spool.close()
    with caplog.at_level(logging.WARNING, logger="clickmap.writer"):
        assert writer.cycle()
    writer.close()
    assert "dropped 1 clicks whose placement or recipient no longer exists" in caplog.text
    with factory() as s:
        assert s.scalars(select(Click.click_id)).all() == [valid.click_id]
        assert s.scalars(select(PlacementRecipient.placement_id)).all() == [kept_id]
        stats = s.scalars(select(PlacementStats)).one()
        assert (stats.placement_id, stats.total, stats.unique) == (kept_id, 1, 1)
    assert list(Path(app.config["SPOOL_DIR"]).glob("*.clicks")) == []  # stored, not retried


def _event(app: Flask, sent: Sent, recipient: int = 0) -> ClickEvent:
    target = tracking.tracker(app).lookup(token_codec(app).decode(sent.token(0, recipient)))
    return _click(sent, target.placement_id, recipient)


def _click(sent: Sent, placement_id: int, recipient: int = 0) -> ClickEvent:
    return ClickEvent(
        secrets.token_hex(16),
        datetime.now(UTC),
        sent.campaign_id,
        sent.variant_id,
        "html",
        placement_id,
        sent.recipients[recipient],
        "GET",
        "test",
        None,
    )


def test_unwritable_spool_still_redirects_and_stores_directly(
    backends: Any, backend: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = make_app(backends.url(backend), tmp_path, SPOOL_DIR=str(blocker / "spool"))
    try:
        sent = send(app)
        response = app.test_client().get(f"/c/{sent.token(0)}")
        assert response.status_code == 302
        assert _count(app) == 1
        assert tracking.tracker(app).health()["lost_clicks"] == 0
    finally:
        empty_tables(app)
        get_engine(app).dispose()


# -- real servers ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_database(backend: str, tmp_path: Path, pg: PgServer | None = None) -> Iterator[str]:
    """A migrated database nobody else uses: a SQLite file, or a PostgreSQL schema."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
        schema = None
    else:
        assert pg is not None
        schema, url = pg.new_schema("clickmap_srv")
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if schema is not None:
            assert pg is not None
            pg.drop_schema(schema)


def seed(url: str, tmp_path: Path, recipients: int) -> list[str]:
    """A campaign and one token per recipient (each request its own recipient, so every
    302 can be matched with its stored click)."""
    app = make_app(url, tmp_path / "seed")
    try:
        sent = send(app)
        with app.extensions["clickmap.sessionmaker"]() as s:
            ids = campaigns.ensure_recipients(s, [f"r{i}" for i in range(recipients)])
            s.commit()
        sent.recipients = [ids[f"r{i}"] for i in range(recipients)]
        return [sent.token(0, i) for i in range(recipients)]
    finally:
        get_engine(app).dispose()


class Server:
    """gunicorn with the production config, in its own process group."""

    def __init__(self, url: str, spool: Path, log: Path, **settings: Any) -> None:
        self.url, self.spool, self.log, self.settings = url, spool, log, settings
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.api_token: str | None = None

    def start(self) -> None:
        self.port = _free_port()
        if self.api_token is None:  # /healthz shows its counters to token holders only
            engine = create_engine(self.url)
            try:
                with Session(engine) as s:
                    self.api_token = create_api_token(s, "monitor")
                    s.commit()
            finally:
                engine.dispose()
        # The writer process builds its app from the environment, the workers from the
        # mapping below (which reads no environment): both get the same settings, and no
        # CLICKMAP_* of the shell running the tests reaches either.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKMAP_")}
        env.update(
            {
                "CLICKMAP_DATABASE_URL": self.url,
                "CLICKMAP_SECRET_KEYS": TEST_SECRET,
                "CLICKMAP_SPOOL_DIR": str(self.spool),
                "CLICKMAP_BIND": f"127.0.0.1:{self.port}",
                "CLICKMAP_WORKERS": "2",
                "CLICKMAP_THREADS": "4",
            }
        )
        settings = {
            "DATABASE_URL": self.url,
            "SECRET_KEYS": [TEST_SECRET],
            "SPOOL_DIR": str(self.spool),
            **self.settings,
        }
        if "CLICK_BATCH_INTERVAL" in self.settings:
            env["CLICKMAP_CLICK_BATCH_INTERVAL"] = str(self.settings["CLICK_BATCH_INTERVAL"])
        factory = f"app:create_app({settings!r})"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:app.ops.gunicorn_conf", factory],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError("server did not start:\n" + self.log.read_text()[-3000:])

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        import json

        header = {"Authorization": f"Bearer {self.api_token}"}
        return dict(json.loads(self.get("/healthz", header)[1]))

    def kill(self) -> None:
        """SIGKILL the whole group: master and workers die at once, mid-whatever."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self.process = None


class Load:
    """Client threads clicking one token each, over keep-alive connections; bounded in
    count and time. ``redirected`` holds the index of every token that got its 302."""

    def __init__(
        self, server: Server, tokens: list[str], threads: int = 6, seconds: float = 40.0
    ) -> None:
        self.server, self.tokens = server, tokens
        self.redirected: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.tokens):
                return None
            self._next += 1
            return self._next - 1

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            index = self._take()
            if index is None:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
                conn.request("GET", f"/c/{self.tokens[index]}")
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
                continue
            with self._lock:
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.status == 302:
                    self.redirected.add(index)
        if conn is not None:
            conn.close()

    def wait_for(self, redirects: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while len(self.redirected) < redirects and time.monotonic() < deadline:
            time.sleep(0.02)


def clicks_per_recipient(url: str) -> dict[int, int]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(Click.recipient_id, func.count()).group_by(Click.recipient_id)
            ).all()
        return {r: n for r, n in rows}
    finally:
        engine.dispose()


def poll(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def assert_consistent(url: str) -> None:
    """The aggregates equal what the raw clicks say."""
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            total = s.scalar(select(func.count()).select_from(Click))
            unique = s.scalar(select(func.count(func.distinct(Click.recipient_id))))
            stats = s.scalars(select(PlacementStats)).one()
            assert (stats.total, stats.unique) == (total, unique)
            assert s.scalar(select(func.sum(PlacementRecipient.clicks))) == total
    finally:
        engine.dispose()


def _recipient_ids(url: str, count: int) -> list[int]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            ids = campaigns.ensure_recipients(s, [f"r{i}" for i in range(count)])
        return [ids[f"r{i}"] for i in range(count)]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigkill_under_load_loses_no_redirected_click(
    backend: str, tmp_path: Path, pg_server: PgServer
) -> None:
    with own_database(backend, tmp_path, pg_server) as url:
        tokens = seed(url, tmp_path, 3000)
        recipients = _recipient_ids(url, len(tokens))
        # Clicks gather for a second before each write, so the kill surely finds some
        # redirected clicks that exist nowhere but in the spool.
        server = Server(url, tmp_path / "spool", tmp_path / "server.log", CLICK_BATCH_INTERVAL=1.0)
        server.start()
        try:
            # The writer process beside the workers is up and reporting.
            assert poll(lambda: server.health()["writer_seen_seconds_ago"] is not None, 20)
            with Load(server, tokens) as load:
                load.wait_for(400)
                server.kill()
                time.sleep(0.3)
            redirected = {recipients[i] for i in load.redirected}
            assert len(redirected) >= 400
            before = clicks_per_recipient(url)
            assert sum(before.values()) < len(redirected), "the kill found nothing spooled"

            server.start()
            assert poll(lambda: redirected <= set(clicks_per_recipient(url)), 30)
            stored = clicks_per_recipient(url)
            assert all(stored[r] == 1 for r in redirected)
            assert all(n == 1 for n in stored.values())  # unanswered ones: at most once
            assert_consistent(url)
            server.stop()
            assert list((tmp_path / "spool").glob("*.clicks")) == []
        finally:
            server.kill()


@pytest.mark.slow
def test_a_killed_writer_process_is_replaced_and_loses_nothing(tmp_path: Path) -> None:
    with own_database("sqlite", tmp_path) as url:
        tokens = seed(url, tmp_path, 3000)
        recipients = _recipient_ids(url, len(tokens))
        spool = tmp_path / "spool"
        server = Server(url, spool, tmp_path / "server.log")
        server.start()
        try:
            assert poll(lambda: read_status(spool) is not None, 20)
            first = read_status(spool)
            assert first is not None
            with Load(server, tokens, threads=2) as load:
                load.wait_for(300)
                os.kill(first["pid"], signal.SIGKILL)  # the writer, mid-whatever
                # gunicorn starts another writer, which takes over the spool.
                assert poll(lambda: (read_status(spool) or first)["pid"] != first["pid"], 30)
                load.wait_for(len(load.redirected) + 300)
            redirected = {recipients[i] for i in load.redirected}
            assert poll(lambda: redirected <= set(clicks_per_recipient(url)), 30)
            stored = clicks_per_recipient(url)
            assert all(n == 1 for n in stored.values())
            assert_consistent(url)
        finally:
            server.kill()


class Proxy:
    """A TCP proxy to PostgreSQL on loopback that can be cut (connections dropped, new ones
    refused) and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._listener is not listener:  # cut meanwhile
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # socket listening until that accept() returned, letting one connection through.
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        self.cut()


@pytest.mark.slow
@pytest.mark.postgres
def test_database_outage_keeps_redirecting_and_loses_nothing(
    tmp_path: Path, pg_server: PgServer
) -> None:
    with own_database("postgresql", tmp_path, pg_server) as url:
        # Enough tokens to keep clicking until the writer has met the outage and after.
        tokens = seed(url, tmp_path, 12000)
        recipients = _recipient_ids(url, len(tokens))
        database = make_url(url)
        assert database.host and database.port, "the PostgreSQL URL must name a TCP host and port"
        proxy = Proxy((database.host, database.port))
        proxy.start()
        proxied = (
            database.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            + "&connect_timeout=3"
        )
        server = Server(proxied, tmp_path / "spool", tmp_path / "server.log")
        server.start()
        try:
            time.sleep(1.0)  # both workers warm their link cache at start
            with Load(server, tokens, threads=4) as load:
                load.wait_for(300)
                # The monitor's token is checked in the database; a worker that found it
                # valid keeps showing it the counters through the outage.
                for _ in range(40):
                    assert server.health()["database"] == "up"
                proxy.cut()
                cut_at = len(load.redirected)
                saw_down = poll(lambda: server.health().get("database") == "down", 20)
                load.wait_for(cut_at + 500)
                assert len(load.redirected) >= cut_at + 500, load.statuses
                assert set(load.statuses) == {302}, load.statuses  # known links only
                # The outage lasts until the writer has run into it (it writes once a second).
                log_file = tmp_path / "server.log"
                assert poll(lambda: "database unreachable" in log_file.read_text(), 30)
                proxy.start()
                restored_at = len(load.redirected)
                load.wait_for(restored_at + 200)
                assert len(load.redirected) >= restored_at + 200, load.statuses
            assert saw_down
            redirected = {recipients[i] for i in load.redirected}
            assert poll(lambda: redirected <= set(clicks_per_recipient(url)), 30), server.health()
            stored = clicks_per_recipient(url)
            assert all(stored[r] == 1 for r in redirected)
            assert all(n == 1 for n in stored.values())
            assert_consistent(url)
            assert server.health()["database"] == "up"
            log = (tmp_path / "server.log").read_text()
            assert "database unreachable" in log and "database reachable again" in log
        finally:
            server.kill()
            proxy.stop()


def test_serve_uses_the_documented_gunicorn_config() -> None:
    from click.testing import CliRunner

    from app.cli.serving import serve_command
    from app.ops import gunicorn_conf
    from app.ops.serving import ClickmapServer

    server = ClickmapServer({"bind": "127.0.0.1:8123", "workers": 3, "threads": None})
    assert server.cfg.bind == ["127.0.0.1:8123"]
    assert (server.cfg.workers, server.cfg.threads) == (3, gunicorn_conf.threads)
    assert server.cfg.worker_class_str == "gthread"
    assert server.cfg.timeout == 30 and server.cfg.graceful_timeout == 20
    assert server.cfg.post_worker_init is gunicorn_conf.post_worker_init
    assert server.cfg.worker_exit is gunicorn_conf.worker_exit
    # One click writer process beside the workers, and heartbeats kept off the spool's disk.
    assert (server.cfg.dirty_apps, server.cfg.dirty_workers) == ([gunicorn_conf.WRITER_APP], 1)
    if os.path.isdir("/dev/shm"):
        assert server.cfg.worker_tmp_dir == "/dev/shm"
    # https is ProxyFix's call (TRUSTED_PROXY_COUNT), never gunicorn's own header trust.
    assert server.cfg.secure_scheme_headers == {}
    result = CliRunner().invoke(serve_command, ["--help"])
    assert result.exit_code == 0 and "--workers" in result.output
