"""Serving on granian (``clickmap serve --server granian``): its settings, and the click
writer process its main process supervises.

granian is an HTTP server written in Rust that calls the WSGI app from a few Python threads
per worker process. On the redirector's path (a token check, a cached lookup, one spool
write) it spends less CPU per request than gunicorn's threads: on a 2-core machine a bare
signed 302 went from about 8,300 to about 14,500 requests a second (``bench/redirect``
compares them in the same run).

Processes, all in one process group:

- the main process (granian's): binds the socket, starts the workers and restarts one that
  dies, and runs the click writer beside them;
- the workers: each builds ``create_app()`` after the fork, warms its link cache and spools
  clicks, never storing any (writer mode ``process``, see ``app.clicks.tracking``);
- the click writer (``app.ops.click_writer``): one process, restarted by the main process if
  it dies (after 1 s, doubling to 30 s while it keeps dying at once); on SIGTERM the main
  process stops the workers first, then the writer, which stores what they spooled.

Environment (as for gunicorn, where the names mean the same):

``CLICKMAP_BIND``     ``HOST:PORT`` (default ``127.0.0.1:8000``; behind a proxy) or
                      ``unix:PATH``
``CLICKMAP_WORKERS``  processes (default: one per CPU core: each runs one interpreter)
``CLICKMAP_THREADS``  Python threads per process that run the app (default 2: requests are
                      CPU-bound and the GIL runs one at a time; granian's Rust threads do the
                      network I/O, so more Python threads only add switching)
``CLICKMAP_ACCESS_LOG`` any value turns granian's access log on (off by default: it costs
                      throughput)

granian's own ``GRANIAN_*`` variables are not read: every setting is passed from here.
"""

from __future__ import annotations

import copy
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from granian.constants import Interfaces
from granian.log import LOGGING_CONFIG, LogLevels
from granian.server import MPServer

from app.ops import click_writer

log = logging.getLogger("clickmap.serving")

# On SIGTERM the workers finish their requests for at most this long (then they are
# killed); then the writer stores what they spooled (``click_writer.GRACEFUL_TIMEOUT``).
GRACEFUL_TIMEOUT = 20


def settings_from_environ(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The server's settings: the environment, then the command line's ``overrides``
    (``bind``, ``workers``, ``threads``; None means "not given")."""
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    return {
        "bind": given.get("bind") or os.environ.get("CLICKMAP_BIND", "127.0.0.1:8000"),
        "workers": int(given.get("workers") or os.environ.get("CLICKMAP_WORKERS", "0") or 0)
        or (os.cpu_count() or 1),
        "threads": int(given.get("threads") or os.environ.get("CLICKMAP_THREADS", "2")),
        "access_log": bool(os.environ.get("CLICKMAP_ACCESS_LOG")),
    }


def _address(bind: str) -> dict[str, Any]:
    if bind.startswith("unix:"):
        return {"uds": Path(bind[len("unix:") :])}
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind must be HOST:PORT or unix:PATH, got {bind!r}")
    return {"address": host.strip("[]") or "0.0.0.0", "port": int(port)}  # noqa: S104


def _log_config() -> dict[str, Any]:
    # Outage, replay and lost-click messages go where granian's own messages go.
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["clickmap"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
    return config


def load_app(target: str) -> Any:
    """Build the app in a worker, after the fork (``target`` is ``module:factory``), and
    start its background thread (which warms the link cache) at once, not on the first
    click. Clicks are only spooled here: the writer process stores them."""
    from app.clicks import tracking

    module, _, factory = target.partition(":")
    app = getattr(importlib.import_module(module), factory)()
    if tracking.EXTENSION in getattr(app, "extensions", {}):
        tracking.start(app, mode="process")
    # What is loaded now lives as long as the worker: collections then walk only what each
    # request makes.
    gc.freeze()
    return app


class WriterSupervisor:
    """Runs ``python -m app.ops.click_writer`` and starts it again whenever it exits, until
    ``stop``."""

    FIRST_DELAY = 1.0
    MAX_DELAY = 30.0
    STEADY = 60.0  # a writer that ran this long before it died was not crash-looping

    def __init__(self, graceful_timeout: float = click_writer.GRACEFUL_TIMEOUT) -> None:
        self.graceful_timeout = graceful_timeout
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="clickmap-writer-watch")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self.stopping.is_set():
                return None
            # close_fds=False lets subprocess use posix_spawn, which reports a failed exec
            # without a pipe. With fork and exec it waits on a pipe until every copy of its
            # write end is closed, and granian's main thread forks workers at any time: a
            # worker forked meanwhile keeps a copy for its whole life, and this thread would
            # hang in Popen, never to see the writer die. (Descriptors are not inherited
            # anyway unless marked inheritable, which Python and granian do not do.)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.ops.click_writer"], close_fds=False
            )
            return self.process

    def _supervise(self) -> None:
        delay = self.FIRST_DELAY
        while (process := self._spawn()) is not None:
            started = time.monotonic()
            code = process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > self.STEADY:
                delay = self.FIRST_DELAY
            log.error(
                "click writer (pid %d) exited with %s; starting another in %.0f s",
                process.pid,
                code,
                delay,
            )
            if self.stopping.wait(delay):
                return
            delay = min(delay * 2, self.MAX_DELAY)

    def stop(self) -> None:
        """Stop the writer (it stores what is spooled first) and stop restarting it."""
        with self._lock:
            self.stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.graceful_timeout + 10)
            except subprocess.TimeoutExpired:
                log.error("click writer (pid %d) did not stop: killed", process.pid)
                process.kill()
                process.wait()
        if self._thread.is_alive():
            self._thread.join(5)


class ClickmapGranian(MPServer):
    """granian's process server with the click writer beside its workers."""

    def __init__(self, target: str, supervisor: WriterSupervisor, **options: Any) -> None:
        super().__init__(target, **options)
        self.supervisor = supervisor
        self.on_startup(supervisor.start)
        # After the workers have stopped: nothing is spooled any more.
        self.on_shutdown(supervisor.stop)

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        # The server is stopping: a writer that exits now (the signal may have reached the
        # whole process group) is not started again.
        self.supervisor.stopping.set()
        super().signal_handler_interrupt(*args, **kwargs)  # type: ignore[no-untyped-call]


def build(overrides: dict[str, Any] | None = None, target: str = "app:create_app") -> Any:
    """The configured server (``run()`` serves until SIGTERM or SIGINT)."""
    settings = settings_from_environ(overrides)
    server = ClickmapGranian(
        target,
        WriterSupervisor(),
        interface=Interfaces.WSGI,
        workers=settings["workers"],
        blocking_threads=settings["threads"],
        # A worker that dies is started again, as gunicorn does.
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
        backlog=2048,
        log_level=LogLevels.info,
        log_dictconfig=_log_config(),
        log_access=settings["access_log"],
        **_address(settings["bind"]),
    )
    return server


def run(overrides: dict[str, Any] | None = None) -> None:
    """Serve Clickmap on granian until SIGTERM or SIGINT."""
    build(overrides).serve(target_loader=load_app)
