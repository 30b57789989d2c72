"""Click handling behind the redirector: where a token leads, and getting its click stored.

The path of a click: ``lookup`` finds the destination (cached per process: placements never
change), ``record`` appends the click to this process's spool (``app.spool``) and returns,
and the writer thread stores spooled clicks in the database in batches
(``app.recording.record_clicks``), moving the spool's checkpoint after each commit. While
the database is away, known links keep redirecting and clicks wait in the spool.

Writer modes (setting ``CLICK_WRITER``): ``"thread"`` (the default) runs one writer thread per
process, started lazily after gunicorn forks; ``"inline"`` (the default under ``TESTING``)
stores each click before the response, so tests see it at once and start no thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Request
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.db import get_engine, session_scope
from app.devices import client_address, truncate_ip
from app.models import Campaign, Placement
from app.recording import USER_AGENT_LIMIT, ClickEvent, known_only, record_clicks
from app.spool import Frame, Orphan, Spool, SpoolError, adopt_orphans, backlog_bytes
from app.tokens import ClickToken, InvalidToken
from app.urls import UnsafeDestination, to_location, with_utm

log = logging.getLogger("clickmap.tracking")

EXTENSION = "clickmap.tracker"


class CampaignGone(Exception):
    """The campaign behind a valid token was deleted."""


class Unavailable(Exception):
    """The link is not cached here and the database cannot be asked right now."""


@dataclass(frozen=True, slots=True)
class Target:
    placement_id: int
    location: str  # the Location header value, UTM included


_Key = tuple[int, int, str, int]  # campaign, variant, part, position


class Tracker:
    """Per-app click machinery: the destination cache, the spool and its writer thread."""

    BATCH = 1000  # clicks per transaction at most
    HOUSEKEEPING = 10.0  # seconds between adopting dead processes' spools, refreshing deletions
    MAX_BACKOFF = 5.0

    def __init__(self, app: Flask) -> None:
        self.app = app
        # Unset (or None): a thread when serving, inline under TESTING.
        self.mode: str = app.config.get("CLICK_WRITER") or ("inline" if app.testing else "thread")
        if self.mode not in ("thread", "inline"):
            raise ValueError(f"CLICK_WRITER must be 'thread' or 'inline', got {self.mode!r}")
        self.trusted_proxies = int(app.config.get("TRUSTED_PROXY_COUNT", 0))
        # How long the writer lets clicks gather between transactions: fewer, larger commits
        # cost far less database and CPU time per click; reports lag by about this much.
        self.gather = float(app.config.get("CLICK_BATCH_INTERVAL", 1.0))
        self.targets: dict[_Key, Target] = {}
        self.gone: set[int] = set()
        self.database_up = True
        self.lost = 0  # clicks neither spooled nor stored: logged one by one
        self.adopting = 0  # clicks being replayed from dead processes' spools
        self._spool: Spool | None = None
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0  # the process that owns ``_spool``
        self._thread_pid = 0  # the process that runs ``_thread``
        self._id_prefix = ""
        self._ids = itertools.count()
        self._id_pid = 0  # the process ``_id_prefix`` was drawn in

    # -- the request path --------------------------------------------------------------

    def lookup(self, token: ClickToken) -> Target:
        if token.campaign_id in self.gone:
            raise CampaignGone()
        key = (token.campaign_id, token.variant_id, token.part, token.position)
        target = self.targets.get(key)
        if target is not None:
            return target
        try:
            with session_scope(self.app) as session:
                row = session.execute(
                    select(
                        Placement.id,
                        Placement.destination,
                        Placement.tracked,
                        Campaign.deleted_at,
                        Campaign.utm,
                    )
                    .join(Campaign, Campaign.id == Placement.campaign_id)
                    .where(
                        Placement.campaign_id == token.campaign_id,
                        Placement.variant_id == token.variant_id,
                        Placement.part == token.part,
                        Placement.position == token.position,
                    )
                ).first()
        except SQLAlchemyError as exc:
            raise Unavailable() from exc
        if row is None or not row.tracked or row.destination is None:
            raise InvalidToken("unknown placement")
        if row.deleted_at is not None:
            raise CampaignGone()
        try:
            target = Target(row.id, with_utm(to_location(row.destination), row.utm))
        except UnsafeDestination as exc:
            log.warning("placement %s is not redirectable: %s", row.id, exc)
            raise InvalidToken("destination refused") from exc
        self.targets[key] = target
        return target

    def submit(self, event: ClickEvent) -> None:
        """Make the click durable (spooled) or, failing that, stored; never raise."""
        try:
            self.spool().append(event.to_record())
        except (SpoolError, OSError) as exc:
            self._store_directly(event, exc)
            return
        if self.mode == "inline":
            with contextlib.suppress(SQLAlchemyError):  # logged; the click waits in the spool
                self.drain()
        else:
            self.start()
            if not self._wake.is_set():
                self._wake.set()

    def _store_directly(self, event: ClickEvent, reason: BaseException) -> None:
        # The spool cannot take the click (disk full, read-only disk): the recipient is still
        # redirected, and the click is written now, synchronously, or counted as lost.
        try:
            with session_scope(self.app) as session:
                record_clicks(session, [event])
            log.warning("spool unwritable (%s): click %s stored directly", reason, event.click_id)
        except SQLAlchemyError as exc:
            with self._lock:
                self.lost += 1
            log.error(
                "click lost: spool unwritable (%s) and database failed (%s): %s",
                reason,
                exc,
                event.to_record(),
            )

    def next_click_id(self) -> str:
        """A click id unique across processes and hosts: 64 random bits drawn once per
        process, then a counter (cheaper than 128 fresh random bits per click)."""
        if self._id_pid != os.getpid():
            with self._lock:
                if self._id_pid != os.getpid():
                    self._id_prefix = secrets.token_hex(8)
                    self._ids = itertools.count()
                    self._id_pid = os.getpid()
        return f"{self._id_prefix}{next(self._ids):016x}"

    def spool(self) -> Spool:
        """This process's spool, created on first use (after a fork: a new one)."""
        spool = self._spool
        if spool is not None and self._pid == os.getpid():
            return spool
        with self._lock:
            if self._spool is None or self._pid != os.getpid():
                self._spool = Spool(self.app.config["SPOOL_DIR"])
                self._pid = os.getpid()
            return self._spool

    # -- storing -----------------------------------------------------------------------

    def _store(self, frames: list[Frame]) -> int:
        events = []
        for frame in frames:
            try:
                events.append(ClickEvent.from_record(frame.record))
            except (TypeError, ValueError):  # e.g. written by an incompatible version
                log.error("unreadable spool record skipped: %r", frame.record)
        try:
            with session_scope(self.app) as session:
                return record_clicks(session, events)
        except IntegrityError:
            with session_scope(self.app) as session:
                kept = known_only(session, events)
                log.warning(
                    "dropped %d clicks whose placement or recipient no longer exists",
                    len(events) - len(kept),
                )
                return record_clicks(session, kept)

    def drain(self) -> None:
        """Store everything spooled so far; on a database error, leave it for later."""
        spool = self._spool
        if spool is None:
            return
        with self._drain_lock:
            while True:
                frames = spool.unstored(self.BATCH)
                if not frames:
                    break
                try:
                    self._store(frames)
                except SQLAlchemyError as exc:
                    self._went_down(exc, spool.pending)
                    raise
                spool.mark_stored(frames)
                self._came_back()

    def _went_down(self, exc: BaseException, pending: int) -> None:
        if self.database_up:
            self.database_up = False
            log.warning(
                "database unreachable, clicks wait in the spool (%d pending): %s", pending, exc
            )

    def _came_back(self) -> None:
        if not self.database_up:
            self.database_up = True
            log.warning("database reachable again, spooled clicks are being stored")

    def adopt(self) -> int:
        """Replay the spool files of processes that died; returns clicks newly stored."""
        stored = 0
        own = self._spool.path if self._spool is not None else None
        for orphan in adopt_orphans(self.app.config["SPOOL_DIR"], own):
            try:
                stored += self._replay(orphan)
            except SQLAlchemyError as exc:
                self._went_down(exc, self.adopting)
                orphan.release()
                break
            except BaseException:
                orphan.release()
                raise
            finally:
                self.adopting = 0
        return stored

    def _replay(self, orphan: Orphan) -> int:
        stored = 0
        while frames := orphan.frames(self.BATCH):
            self.adopting = len(frames)
            stored += self._store(frames)
            orphan.mark_stored(frames)
        torn = orphan.trailing_bytes()
        if torn:
            log.warning("spool %s: ignored %d bytes of a torn last record", orphan.path, torn)
        orphan.finish()
        log.warning("replayed spool %s of a stopped process: %d clicks stored", orphan.path, stored)
        self._came_back()
        return stored

    # -- the writer thread -------------------------------------------------------------

    def start(self) -> None:
        """Start this process's writer thread (thread mode; a no-op when it runs)."""
        if self.mode != "thread" or self._running():
            return
        with self._lock:
            if self._running():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="clickmap-writer", daemon=True)
            self._thread_pid = os.getpid()
            self._thread.start()

    def _running(self) -> bool:
        # A thread started before a fork does not exist in the child.
        return self._thread is not None and self._thread_pid == os.getpid()

    def stop(self, timeout: float = 10.0) -> None:
        """Store what can be stored within ``timeout``, stop the writer, close the spool."""
        thread = self._thread if self._running() else None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        if self._spool is not None and self._pid == os.getpid():
            self._spool.close()
            self._spool = None

    def flush(self, timeout: float) -> bool:
        """Wait until every click this process spooled is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spool = self._spool
            if spool is None or spool.pending == 0:
                return True
            self._wake.set()
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        self.warm()
        backoff = 0.25
        next_housekeeping = 0.0
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            stopping = self._stop.is_set()
            ok = True
            try:
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + self.HOUSEKEEPING
                    self.refresh_gone()
                    self.adopt()
                self.drain()
            except SQLAlchemyError:
                ok = False
            except Exception:
                ok = False
                log.exception("click writer failed; retrying")
            if stopping:
                return
            if ok:
                backoff = 0.25
                self._stop.wait(self.gather)
            else:
                next_housekeeping = 0.0
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF)
                self._wake.set()

    # -- the destination cache ---------------------------------------------------------

    def warm(self) -> None:
        """Cache the placements of recent campaigns, so their links keep redirecting if the
        database is away later."""
        days = int(self.app.config.get("WARM_CAMPAIGN_DAYS", 180))
        limit = int(self.app.config.get("WARM_PLACEMENT_LIMIT", 200_000))
        since = datetime.now(UTC) - timedelta(days=days)
        try:
            with session_scope(self.app) as session:
                rows = session.execute(
                    select(
                        Placement.campaign_id,
                        Placement.variant_id,
                        Placement.part,
                        Placement.position,
                        Placement.id,
                        Placement.destination,
                        Campaign.utm,
                    )
                    .join(Campaign, Campaign.id == Placement.campaign_id)
                    .where(
                        Placement.tracked.is_(True),
                        Placement.destination.is_not(None),
                        Campaign.deleted_at.is_(None),
                        Campaign.created_at >= since,
                    )
                    .order_by(Campaign.id.desc())
                    .limit(limit)
                ).all()
        except SQLAlchemyError as exc:
            log.warning("could not warm the link cache: %s", exc)
            return
        for row in rows:
            try:
                location = with_utm(to_location(row.destination), row.utm)
            except UnsafeDestination:
                continue
            key = (row.campaign_id, row.variant_id, row.part, row.position)
            self.targets[key] = Target(row.id, location)
        log.info("link cache warmed with %d placements", len(rows))

    def refresh_gone(self) -> None:
        """Forget cached links of campaigns deleted since (within ``HOUSEKEEPING`` seconds)."""
        with session_scope(self.app) as session:
            gone = set(session.scalars(select(Campaign.id).where(Campaign.deleted_at.is_not(None))))
        fresh = gone - self.gone
        self.gone = gone
        if fresh:
            for key in [k for k in self.targets if k[0] in fresh]:
                self.targets.pop(key, None)

    # -- health ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        try:
            with get_engine(self.app).connect() as conn:
                conn.execute(text("SELECT 1"))
            database = True
        except SQLAlchemyError:
            database = False
        spool = self._spool
        return {
            "database": "up" if database else "down",
            "pending_clicks": (spool.pending if spool is not None else 0) + self.adopting,
            "spool_backlog_bytes": backlog_bytes(self.app.config["SPOOL_DIR"]),
            "lost_clicks": self.lost,
            "cached_links": len(self.targets),
        }


def init_app(app: Flask) -> None:
    """Attach a tracker; its spool and writer start in the serving process, on first click
    (or from gunicorn's ``post_worker_init``), never in a process that only forks."""
    app.extensions[EXTENSION] = Tracker(app)


def tracker(app: Flask) -> Tracker:
    found: Tracker = app.extensions[EXTENSION]
    return found


def start(app: Flask) -> None:
    """Start the writer now (warming the cache and replaying dead processes' spools)."""
    tracker(app).start()


def stop(app: Flask, timeout: float = 10.0) -> None:
    tracker(app).stop(timeout)


def lookup(app: Flask, token: ClickToken) -> Target:
    return tracker(app).lookup(token)


def record(app: Flask, token: ClickToken, target: Target, request: Request) -> None:
    """Spool the click of this request; only the network prefix of the address is kept."""
    found = tracker(app)
    address = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), found.trusted_proxies
    )
    found.submit(
        ClickEvent(
            click_id=found.next_click_id(),
            clicked_at=datetime.now(UTC),
            campaign_id=token.campaign_id,
            variant_id=token.variant_id,
            part=token.part,
            placement_id=target.placement_id,
            recipient_id=token.recipient_id,
            method=request.method,
            user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_LIMIT],
            ip_prefix=truncate_ip(address),
        )
    )
