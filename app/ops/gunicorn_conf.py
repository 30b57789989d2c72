"""gunicorn settings for ``clickmap serve --server gunicorn`` (or ``gunicorn -c
python:app.ops.gunicorn_conf``); granian, the default, is set up in ``app.ops.granian_serving``.

Sized for the redirector: requests are short and CPU-bound (a token check, a dict lookup and
one local file write), the database is never waited for on the request path. Clicks are
stored by one writer process beside the workers (gunicorn's "dirty" worker pool, which
restarts it if it dies), so the workers spend nothing on storing them. Environment:

``CLICKMAP_BIND``     address to listen on (default ``127.0.0.1:8000``; behind a proxy)
``CLICKMAP_WORKERS``  processes (default: one per CPU core: each is one Python interpreter,
                      so more processes than cores only adds switching)
``CLICKMAP_THREADS``  threads per process (default 8: they overlap network writes and absorb
                      keep-alive connections; the GIL makes more pointless)
``CLICKMAP_ACCESS_LOG`` ``-`` for stdout; off by default (it costs ~10% of throughput)
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

bind = os.environ.get("CLICKMAP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CLICKMAP_WORKERS", "0")) or (os.cpu_count() or 1)
worker_class = "gthread"
threads = int(os.environ.get("CLICKMAP_THREADS", "8"))
# A request is a few milliseconds; 30 s means a stuck worker, which gunicorn then replaces.
# The writer thread never blocks the worker's heartbeat (it runs beside the request threads).
timeout = 30
# On SIGTERM a worker stops taking requests, then its writer has this long to store what is
# spooled; anything left is replayed by the next worker from the spool.
graceful_timeout = 20
# Email clients open one connection per click; a short keep-alive still helps proxies.
keepalive = 5
backlog = 2048
# Workers prove they are alive by touching a file after every request; on a disk-backed
# /tmp each touch is a filesystem journal entry, competing with the spool's appends on the
# same disk. gunicorn's documentation recommends a memory filesystem for it.
# (gunicorn creates the file with mkstemp and unlinks it at once: no predictable name.)
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
# Whether a request came over https is ProxyFix's decision alone (create_app, from
# TRUSTED_PROXY_COUNT). gunicorn would otherwise believe X-Forwarded-Proto from any client of
# a proxy on the same host, even with no proxies configured.
secure_scheme_headers: dict[str, str] = {}
accesslog = os.environ.get("CLICKMAP_ACCESS_LOG") or None
errorlog = "-"
# Each worker builds its own app: nothing (no spool, no thread, no connection) is shared
# across the fork.
preload_app = False
# gunicorn's runtime control socket lives at one per-user path, so two servers on one host
# (blue/green, several redirector instances) would fight over it; nothing here uses it.
control_socket_disable = True
# The click writer: one process, supervised by gunicorn's dirty arbiter. Without it
# (``--dirty-workers 0``) each worker runs a writer thread instead (see ``app.clicks.tracking``).
WRITER_APP = "app.ops.serving:ClickWriterApp"
dirty_apps = [WRITER_APP]
dirty_workers = 1
# On SIGTERM the writer stores what the workers spooled, for at most this long; anything
# left is stored by the next writer.
dirty_graceful_timeout = graceful_timeout


def _clickmap_app(worker: Any) -> Any:
    from app.clicks import tracking

    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None)
    return app if extensions is not None and tracking.EXTENSION in extensions else None


def _use_gunicorn_log(log: Any) -> None:
    # Outage, replay and lost-click messages go where gunicorn's own messages go.
    clickmap_log = logging.getLogger("clickmap")
    clickmap_log.handlers = list(log.error_log.handlers)
    clickmap_log.setLevel(logging.INFO)
    clickmap_log.propagate = False


def on_starting(server: Any) -> None:
    """Name the server after its address: the dirty arbiter keeps a pid file named after the
    server's name and, at start, kills the process a file of that name points to, so two
    servers on one host (blue/green, several instances) must not share a name."""
    server.proc_name = "clickmap-" + ",".join(server.cfg.bind)


def post_worker_init(worker: Any) -> None:
    """Start the worker's background thread after the fork (it warms the link cache), and
    the writer thread too when no writer process is configured."""
    from app.clicks import tracking

    # Everything loaded so far (the app, its libraries) lives as long as the worker: take it
    # out of the garbage collector's view, so collections only walk per-request objects.
    gc.freeze()
    app = _clickmap_app(worker)
    if app is not None:
        _use_gunicorn_log(worker.log)
        writer_process = worker.cfg.dirty_workers > 0 and WRITER_APP in worker.cfg.dirty_apps
        tracking.start(app, mode="process" if writer_process else None)


def dirty_worker_init(worker: Any) -> None:
    _use_gunicorn_log(worker.log)


def worker_exit(server: Any, worker: Any) -> None:
    """Let go of the worker's spool (and, with a writer thread, store what it can first)."""
    from app.clicks import tracking

    app = _clickmap_app(worker)
    if app is not None:
        tracking.stop(app, timeout=graceful_timeout / 2)
