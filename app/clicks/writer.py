"""The click writer: spooled clicks into the database, in batches, exactly once.

One writer per spool directory (it holds the directory's ``writer.lock``) reads every serving
process's spool file from its checkpoint, stores up to ``BATCH`` clicks per transaction with
``app.clicks.recording.record_clicks``, moves the checkpoints, and deletes the files of processes
that are gone once they are stored. Under ``clickmap serve`` it runs in a process of its own
(``app.ops.click_writer`` on granian, ``app.ops.serving.ClickWriterApp`` on gunicorn), so the
request processes spend no CPU time, and take no interpreter lock, on storing clicks;
elsewhere it runs as a thread (``app.clicks.tracking``).

It publishes what it knows (database up or down, clicks waiting) in ``writer.status`` in the
spool directory, which ``/healthz`` of every serving process reads.

On PostgreSQL it also makes the click table's months ahead (``app.clicks.partitions``): the
first time it sees a month in a batch, it makes that month's partition and the next ones,
in a short transaction of their own, before storing the batch. Should that fail (a lock not
granted in time), the clicks go to the default partition and the month is tried again later.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.clicks import opens, partitions
from app.clicks.machines import DEFAULT_THRESHOLDS, Thresholds
from app.clicks.opens import OpenEvent, is_open_record, record_opens
from app.clicks.recording import ClickEvent, known_only, record_clicks
from app.clicks.spool import SpoolReader, Taken

log = logging.getLogger("clickmap.writer")

STATUS_FILE = "writer.status"


class ClickWriter:
    # Clicks per transaction at most: a batch of 5,000 costs a quarter less per click than
    # 1,000 (fewer commits and statements), and a second of clicks usually fits in one.
    BATCH = 5000
    MAX_BACKOFF = 5.0
    MONTHS_RETRY = 60.0  # seconds before making a month's partition is tried again

    def __init__(
        self,
        sessions: sessionmaker[Session],
        spool_dir: str,
        gather: float,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        self.sessions = sessions
        self.thresholds = thresholds  # of the machine-click rules
        self.spool_dir = Path(spool_dir)
        # How long clicks gather between transactions: fewer, larger commits cost far less
        # database and CPU time per click; reports lag by about this much.
        self.gather = gather
        self.reader = SpoolReader(spool_dir)
        self.database_up = True
        self._lock = threading.Lock()
        self.months_ready: set[date] = set()  # months whose partitions are known to exist
        self._months_retry_at = 0.0

    # -- one pass ----------------------------------------------------------------------

    def cycle(self) -> bool:
        """Store everything spooled so far, if this process is the directory's writer.

        Returns False if another process holds the writer lock. Raises ``SQLAlchemyError``
        when the database fails; the clicks stay spooled for the next cycle.
        """
        with self._lock:
            if not self.reader.hold_writer_lock():
                return False
            try:
                self.reader.scan()
                while taken := self.reader.take(self.BATCH):
                    try:
                        self._store(taken)
                    except SQLAlchemyError as exc:
                        self._went_down(exc)
                        raise
                    self.reader.mark_stored(taken)
                    self._came_back()
                    # A short batch took everything there was: what the workers spooled
                    # meanwhile waits for the next pass, rather than trickling into many
                    # small transactions (each costs far more per click).
                    if sum(len(part.frames) for part in taken) < self.BATCH:
                        break
                for path, torn in self.reader.finish_sealed():
                    if torn:
                        log.warning("spool %s: ignored %d bytes of a torn last record", path, torn)
            finally:
                self.publish()
            return True

    def _store(self, taken: list[Taken]) -> int:
        """Store a batch of clicks and opens (docs/opens.md) in one transaction; returns how
        many clicks were new."""
        events = []
        opened = []
        for part in taken:
            for frame in part.frames:
                try:
                    if is_open_record(frame.record):
                        opened.append(OpenEvent.from_record(frame.record))
                    else:
                        events.append(ClickEvent.from_record(frame.record))
                except (TypeError, ValueError):  # e.g. written by an incompatible version
                    log.error("unreadable spool record skipped: %r", frame.record)
        self.prepare_months({partitions.month_of(e.clicked_at) for e in events})
        try:
            with self.sessions.begin() as session:
                record_opens(session, opened)
                return record_clicks(session, events, self.thresholds)
        except IntegrityError:
            with self.sessions.begin() as session:
                kept = known_only(session, events)
                kept_opens = opens.known_only(session, opened)
                log.warning(
                    "dropped %d clicks whose placement or recipient no longer exists",
                    len(events) - len(kept),
                )
                if len(kept_opens) < len(opened):
                    log.warning(
                        "dropped %d opens whose variant or recipient no longer exists",
                        len(opened) - len(kept_opens),
                    )
                record_opens(session, kept_opens)
                return record_clicks(session, kept, self.thresholds)

    def prepare_months(self, months: set[date]) -> None:
        """Make sure ``months`` and the ``AHEAD`` months after each have their partitions
        (PostgreSQL), once per month per process; never raises."""
        if months <= self.months_ready or time.monotonic() < self._months_retry_at:
            return
        wanted = {m for month in months for m in partitions.months_from(month, partitions.AHEAD)}
        try:
            with self.sessions.begin() as session:
                connection = session.connection()
                # Never a long wait: the clicks can go to the default partition meanwhile.
                partitions.set_timeouts(connection, lock="2s", statement="30s")
                created = partitions.ensure_months(connection, wanted)
        except SQLAlchemyError as exc:
            self._months_retry_at = time.monotonic() + self.MONTHS_RETRY
            log.warning("click partitions not made now (clicks go to the default one): %s", exc)
            return
        self.months_ready |= wanted
        if created:
            log.info("click partitions made: %s", ", ".join(created))

    def _went_down(self, exc: BaseException) -> None:
        if self.database_up:
            self.database_up = False
            log.warning("database unreachable, clicks wait in the spool: %s", exc)

    def _came_back(self) -> None:
        if not self.database_up:
            self.database_up = True
            log.warning("database reachable again, spooled clicks are being stored")

    # -- status ------------------------------------------------------------------------

    def publish(self) -> None:
        """Write ``writer.status`` (atomically: readers never see half of it)."""
        status = {
            "pid": os.getpid(),
            "time": time.time(),
            "database": "up" if self.database_up else "down",
            "pending_clicks": self.reader.pending(),
        }
        target = self.spool_dir / STATUS_FILE
        tmp = target.with_name(f"{STATUS_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(status))
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("could not write %s: %s", target, exc)

    # -- running -----------------------------------------------------------------------

    def run(self, stop: threading.Event, linger: float = 0.0) -> None:
        """Cycle until ``stop`` is set, then store what is left once more.

        With ``linger``, keep storing after ``stop`` for up to that many seconds while a
        serving process still holds its spool file: a writer stopped by a signal sent to the
        whole server (a terminal's Ctrl-C) then also stores what the workers spool as they
        finish their last requests.
        """
        backoff = 0.25
        while not stop.is_set():
            try:
                ok = self.cycle()
            except SQLAlchemyError:
                stop.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF)
                continue
            except Exception:
                log.exception("click writer failed; retrying")
                stop.wait(self.MAX_BACKOFF)
                continue
            backoff = 0.25
            # A pass with nothing spooled reads no more than a directory listing: polling is
            # cheap, and keeps ``writer.status`` fresh for /healthz.
            stop.wait(self.gather if ok else self.MAX_BACKOFF)  # not ok: another writer
        deadline = time.monotonic() + linger
        while True:
            try:
                if not self.cycle():
                    return  # another process is the writer: nothing here to store
            except Exception as exc:  # stopping: the spool keeps what is left
                log.warning("clicks left in the spool at stop: %s", exc)
                return
            if not self.reader.live_files() or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def close(self) -> None:
        with self._lock:
            self.reader.close()


def read_status(spool_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The writer's last published status, or None if it never published one."""
    try:
        found: dict[str, Any] = json.loads((Path(spool_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found
