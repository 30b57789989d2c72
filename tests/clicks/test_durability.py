"""Clicks survive: the spool, a killed server, a database outage.

The spool tests are quick. The server tests (``slow``) run a real gunicorn in a process group
of its own, on a free loopback port, against a database of its own: one is killed with
SIGKILL under load and restarted; the other loses its database behind a TCP proxy written
here. In both, every 302 the client received must end up as exactly one stored click.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, delete, func, make_url, select
from sqlalchemy.orm import Session

from app.clicks import spool as spool_module
from app.clicks import tracking
from app.clicks.recording import ClickEvent
from app.clicks.spool import Spool, SpoolReader, Taken, read_frames
from app.clicks.writer import ClickWriter, read_status
from app.db import get_engine
from app.models import Click, Placement, PlacementRecipient, PlacementStats
from app.tokens import token_codec
from tests.factories import (
    Load,
    Sent,
    Server,
    clicks_per_recipient,
    empty_tables,
    free_port,
    make_app,
    own_database,
    poll,
    recipient_ids,
    seed,
    send,
)
from tests.pgserver import PgServer

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


@pytest.mark.slow
def test_sigkill_under_load_loses_no_redirected_click(
    backend: str, tmp_path: Path, pg_server: PgServer
) -> None:
    with own_database(backend, tmp_path, pg_server) as url:
        tokens = seed(url, tmp_path, 3000)
        recipients = recipient_ids(url, len(tokens))
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
        recipients = recipient_ids(url, len(tokens))
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
        self.port = free_port()
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
        recipients = recipient_ids(url, len(tokens))
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
