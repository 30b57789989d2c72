"""Click handling behind the redirector: where a token leads, and getting its click stored.

The path of a click: ``lookup`` finds the destination (cached per process: placements never
change), ``record`` appends the click to this process's spool (``app.clicks.spool``) and returns;
the click writer (``app.clicks.writer``) stores spooled clicks in batches. While the database is
away, known links keep redirecting and clicks wait in the spool.

Writer modes (setting ``CLICK_WRITER``):
``"process"``  the writer runs in a process of its own (``clickmap serve`` sets this up), so
               serving processes only spool;
``"thread"``   (the default elsewhere) a writer thread in each process, of which the one
               holding the spool directory's writer lock does the writing;
``"inline"``   (the default under ``TESTING``) each click is stored before the response, so
               tests see it at once and no thread starts.
In every mode a light thread per serving process warms the link cache at start and notices
deleted campaigns.
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
from sqlalchemy.exc import SQLAlchemyError

from app.clicks.devices import truncate_ip
from app.clicks.labelling import thresholds_from
from app.clicks.opens import OPEN_MARK, OpenEvent, is_open_record, record_opens
from app.clicks.recording import PURPOSE_LIMIT, USER_AGENT_LIMIT, ClickEvent, record_clicks
from app.clicks.spool import Spool, SpoolError, backlog_bytes
from app.clicks.writer import ClickWriter, read_status
from app.db import get_engine, session_scope
from app.models import Campaign, Placement, Variant
from app.tokens import ClickToken, InvalidToken

log = logging.getLogger("clickmap.tracking")

EXTENSION = "clickmap.tracker"


class CampaignGone(Exception):
    """The campaign behind a valid token was deleted."""


class Unavailable(Exception):
    """The link is not cached here and the database cannot be asked right now."""


@dataclass(frozen=True, slots=True)
class Target:
    placement_id: int
    location: str  # the Location header value, UTM included (Placement.location)
    # With the campaign's ``click_param`` set: the Location is ``head + click id + tail``.
    split: tuple[str, str] | None = None

    def location_for(self, click_id: str) -> str:
        split = self.split
        return self.location if split is None else split[0] + click_id + split[1]


def with_click_param(location: str, param: str | None) -> tuple[str, str] | None:
    """Where the click id goes in ``location``: the last query parameter ``param=<id>``,
    before any fragment (docs/funnel.md)."""
    if not param:
        return None
    before, hash_, fragment = location.partition("#")
    if "?" not in before:
        sep = "?"
    elif before.endswith(("?", "&")):
        sep = ""
    else:
        sep = "&"
    return before + sep + param + "=", hash_ + fragment


_Key = tuple[int, int, str, int]  # campaign, variant, part, position


class Tracker:
    """Per-app click machinery: the destination cache, the spool, and the writer when it
    runs in this process."""

    HOUSEKEEPING = 10.0  # seconds between refreshes of the deleted campaigns
    MODES = ("process", "thread", "inline")

    def __init__(self, app: Flask) -> None:
        self.app = app
        # Unset (or None): a thread when serving, inline under TESTING.
        self.mode: str = app.config.get("CLICK_WRITER") or ("inline" if app.testing else "thread")
        if self.mode not in self.MODES:
            raise ValueError(f"CLICK_WRITER must be one of {self.MODES}, got {self.mode!r}")
        self.targets: dict[_Key, Target] = {}
        self.gone: set[int] = set()
        self.params: dict[int, str] = {}  # campaign -> click_param, where one is set
        self.variants: set[tuple[int, int]] = set()  # (campaign, variant) known to exist
        self.lost = 0  # clicks neither spooled nor stored: logged one by one
        # In process mode the writer lives elsewhere: none here, so nothing in a serving
        # process can take the spool directory's writer lock.
        self.writer = None if self.mode == "process" else writer_for(app)
        self._spool: Spool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pid = 0  # the process that owns ``_spool``
        self._thread_pid = 0  # the process that runs ``_threads``
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
                        Placement.location,
                        Placement.tracked,
                        Campaign.deleted_at,
                        Campaign.click_param,
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
        if row is None or not row.tracked or row.location is None:
            raise InvalidToken("unknown placement")
        if row.deleted_at is not None:
            raise CampaignGone()
        target = Target(row.id, row.location, with_click_param(row.location, row.click_param))
        if row.click_param:
            self.params[token.campaign_id] = row.click_param
        self.targets[key] = target
        return target

    def lookup_open(self, token: ClickToken) -> None:
        """Check that an open pixel's variant exists (cached), or raise like ``lookup``."""
        if token.campaign_id in self.gone:
            raise CampaignGone()
        key = (token.campaign_id, token.variant_id)
        if key in self.variants:
            return
        try:
            with session_scope(self.app) as session:
                row = session.execute(
                    select(Campaign.deleted_at)
                    .join(Variant, Variant.campaign_id == Campaign.id)
                    .where(Campaign.id == token.campaign_id, Variant.id == token.variant_id)
                ).first()
        except SQLAlchemyError as exc:
            raise Unavailable() from exc
        if row is None:
            raise InvalidToken("unknown variant")
        if row.deleted_at is not None:
            raise CampaignGone()
        self.variants.add(key)

    def submit(self, record: list[Any]) -> None:
        """Make the click durable (spooled) or, failing that, stored; never raise.

        ``record`` is a click in its spool form (fields in ``RECORD_FIELDS`` order), built
        directly by ``record()`` below: the redirect path makes no intermediate objects.
        """
        try:
            self.spool().append(record)
        except (SpoolError, OSError) as exc:
            self._store_directly(record, exc)
            return
        if self.mode == "inline":
            self.drain()
        else:
            self.start()

    def _store_directly(self, record: list[Any], reason: BaseException) -> None:
        # The spool cannot take the click (disk full, read-only disk): the recipient is still
        # redirected, and the click is written now, synchronously, or counted as lost.
        try:
            with session_scope(self.app) as session:
                if is_open_record(record):
                    record_opens(session, [OpenEvent.from_record(record)])
                else:
                    record_clicks(
                        session, [ClickEvent.from_record(record)], thresholds_from(self.app.config)
                    )
            log.warning("spool unwritable (%s): click %s stored directly", reason, record[0])
        except SQLAlchemyError as exc:
            with self._lock:
                self.lost += 1
            log.error(
                "click lost: spool unwritable (%s) and database failed (%s): %s",
                reason,
                exc,
                record,
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

    def drain(self) -> None:
        """Store everything spooled so far, here and now (inline mode, tests, scripts); on a
        database error the clicks stay spooled (and the error is logged once)."""
        if self.writer is not None:
            with contextlib.suppress(SQLAlchemyError):
                self.writer.cycle()

    # -- background threads ------------------------------------------------------------

    def start(self) -> None:
        """Start this process's threads: the cache keeper, and the writer in thread mode
        (a no-op when they run, or in inline mode)."""
        if self.mode == "inline" or self._running():
            return
        with self._lock:
            if self._running():
                return
            self._stop.clear()
            self._threads = [threading.Thread(target=self._keep, name="clickmap-cache")]
            if self.mode == "thread" and self.writer is not None:
                writer = self.writer
                self._threads.append(
                    threading.Thread(target=writer.run, args=(self._stop,), name="clickmap-writer")
                )
            self._thread_pid = os.getpid()
            for thread in self._threads:
                thread.daemon = True
                thread.start()

    def _running(self) -> bool:
        # Threads started before a fork do not exist in the child.
        return bool(self._threads) and self._thread_pid == os.getpid()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads (the writer stores what it can within ``timeout``) and let go of
        the spool: whatever is left in it, the next writer stores."""
        threads = self._threads if self._running() else []
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        if self._spool is not None and self._pid == os.getpid():
            self._spool.close()
            self._spool = None
        if self.writer is not None:
            self.writer.close()

    def flush(self, timeout: float) -> bool:
        """Wait until every click spooled in this directory is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if backlog_bytes(self.app.config["SPOOL_DIR"]) == 0:
                return True
            time.sleep(0.02)
        return False

    def _keep(self) -> None:
        self.warm()
        while not self._stop.wait(self.HOUSEKEEPING):
            try:
                self.refresh_gone()
            except SQLAlchemyError:
                pass  # the database is away: keep the cache as it is
            except Exception:
                log.exception("refreshing deleted campaigns failed")

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
                        Placement.location,
                        Campaign.click_param,
                    )
                    .join(Campaign, Campaign.id == Placement.campaign_id)
                    .where(
                        Placement.tracked.is_(True),
                        Placement.location.is_not(None),
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
            key = (row.campaign_id, row.variant_id, row.part, row.position)
            self.targets[key] = Target(
                row.id, row.location, with_click_param(row.location, row.click_param)
            )
            if row.click_param:
                self.params[row.campaign_id] = row.click_param
            # Their variants too, so their open pixels also count through an outage.
            self.variants.add((row.campaign_id, row.variant_id))
        log.info("link cache warmed with %d placements", len(rows))

    def refresh_gone(self) -> None:
        """Forget cached links of campaigns deleted since, or whose click parameter changed
        (within ``HOUSEKEEPING`` seconds)."""
        with session_scope(self.app) as session:
            gone = set(session.scalars(select(Campaign.id).where(Campaign.deleted_at.is_not(None))))
            params = {
                int(cid): str(param)
                for cid, param in session.execute(
                    select(Campaign.id, Campaign.click_param).where(
                        Campaign.click_param.is_not(None)
                    )
                )
            }
        fresh = gone - self.gone
        self.gone = gone
        changed = {
            c for c in params.keys() | self.params.keys() if params.get(c) != self.params.get(c)
        }
        self.params = params
        fresh |= changed
        if fresh:
            for key in [k for k in self.targets if k[0] in fresh]:
                self.targets.pop(key, None)
            self.variants = {k for k in self.variants if k[0] not in fresh}

    # -- health ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        try:
            with get_engine(self.app).connect() as conn:
                conn.execute(text("SELECT 1"))
            database = True
        except SQLAlchemyError:
            database = False
        spool_dir = self.app.config["SPOOL_DIR"]
        status = read_status(spool_dir)
        return {
            "database": "up" if database else "down",
            "pending_clicks": status["pending_clicks"] if status else 0,
            "spool_backlog_bytes": backlog_bytes(spool_dir),
            # How long ago the writer last reported: a growing number means nobody stores.
            "writer_seen_seconds_ago": (
                round(max(0.0, time.time() - status["time"]), 1) if status else None
            ),
            "lost_clicks": self.lost,
            "cached_links": len(self.targets),
        }


def init_app(app: Flask) -> None:
    """Attach a tracker; its spool and writer start in the serving process, on first click
    (or from gunicorn's ``post_worker_init``), never in a process that only forks."""
    app.extensions[EXTENSION] = Tracker(app)


def writer_for(app: Flask) -> ClickWriter:
    """A click writer for ``app``'s database and spool directory."""
    return ClickWriter(
        app.extensions["clickmap.sessionmaker"],
        app.config["SPOOL_DIR"],
        float(app.config.get("CLICK_BATCH_INTERVAL", 1.0)),
        thresholds_from(app.config),
    )


def tracker(app: Flask) -> Tracker:
    found: Tracker = app.extensions[EXTENSION]
    return found


def start(app: Flask, mode: str | None = None) -> None:
    """Start the background threads now (warming the link cache); ``mode`` overrides the
    configured writer mode (``app.ops.gunicorn_conf`` sets ``"process"``)."""
    found = tracker(app)
    if mode is not None and mode != found.mode:
        if mode not in Tracker.MODES:
            raise ValueError(f"unknown writer mode {mode!r}")
        found.mode = mode
        if mode == "process" and found.writer is not None:
            found.writer.close()
            found.writer = None
    found.start()


def stop(app: Flask, timeout: float = 10.0) -> None:
    tracker(app).stop(timeout)


def lookup(app: Flask, token: ClickToken) -> Target:
    return tracker(app).lookup(token)


def lookup_open(app: Flask, token: ClickToken) -> None:
    tracker(app).lookup_open(token)


def record_open(app: Flask, token: ClickToken, request: Request) -> None:
    """Spool the open of this request, as ``record`` spools a click (docs/opens.md)."""
    found = tracker(app)
    environ = request.environ
    found.submit(
        [
            OPEN_MARK,
            found.next_click_id(),
            time.time(),
            token.campaign_id,
            token.variant_id,
            token.part,
            token.recipient_id,
            request.method,
            environ.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT],
            truncate_ip(environ.get("REMOTE_ADDR")),
        ]
    )


def record(app: Flask, token: ClickToken, target: Target, request: Request) -> str:
    """Spool the click of this request and return its id; only the network prefix of the
    address is kept."""
    found = tracker(app)
    environ = request.environ  # read directly: the headers wrapper costs more than the rest
    # Behind trusted proxies, ProxyFix (create_app) has put the client's address here.
    address = environ.get("REMOTE_ADDR")
    purpose = environ.get("HTTP_SEC_PURPOSE") or environ.get("HTTP_PURPOSE")
    # Fields in the order of recording.RECORD_FIELDS, built here without an event object
    # (the redirect path pays for every allocation); tests/clicks/test_redirector.py checks it.
    click_id = found.next_click_id()
    found.submit(
        [
            click_id,
            time.time(),
            token.campaign_id,
            token.variant_id,
            token.part,
            target.placement_id,
            token.recipient_id,
            request.method,
            environ.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT],
            truncate_ip(address),
            # Only a prefetching browser sends these (``machines.prefetch``).
            purpose[:PURPOSE_LIMIT] if purpose else None,
        ]
    )
    return click_id
