"""The click writer as a process of its own: ``python -m app.ops.click_writer``.

Under granian (``app.ops.granian_serving``) the serving processes only spool clicks; this
process, started and restarted by the server's main process, stores them
(``app.clicks.writer``). It builds its app from the environment (``CLICKMAP_*``), like the
serving processes, so both see the same database and spool directory.

Stopping: on SIGTERM or SIGINT it keeps storing until every serving process has let go of its
spool file (or ``GRACEFUL_TIMEOUT`` has passed), then stores what is left once more and
exits. The server sends SIGTERM after its workers have stopped, so nothing they spooled is
left behind; a signal sent to the whole process group (Ctrl-C in a terminal) reaches this
process while the workers still finish their requests, and the wait covers those clicks.
If the server's main process dies without stopping it, it stops the same way within a
second, so it never outlives the server holding the spool directory's writer lock.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading

# On SIGTERM or SIGINT: seconds to wait for the serving processes and store what they
# spooled. Longer than the server lets its workers finish (20 s, then it kills them), so a
# writer stopped together with them still sees them go; the server, in turn, waits longer
# than this before it kills the writer.
GRACEFUL_TIMEOUT = 25.0
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

log = logging.getLogger("clickmap.writer")


def _use_stderr_log() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    clickmap_log = logging.getLogger("clickmap")
    clickmap_log.handlers = [handler]
    clickmap_log.setLevel(logging.INFO)
    clickmap_log.propagate = False


def main() -> None:
    from app import create_app
    from app.clicks.tracking import writer_for
    from app.db import get_engine

    _use_stderr_log()
    # Signals are taken by the main thread alone (sigtimedwait below): the writer thread
    # never runs a Python signal handler in the middle of its own locking.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    app = create_app()
    writer = writer_for(app)
    # As in the serving processes: what is loaded now lives as long as the process, so the
    # garbage collector need not walk it again and again.
    gc.freeze()
    stop = threading.Event()
    thread = threading.Thread(
        target=writer.run, args=(stop, GRACEFUL_TIMEOUT), name="clickmap-writer", daemon=True
    )
    thread.start()
    parent = os.getppid()
    log.info("click writer started (pid %d)", os.getpid())
    while thread.is_alive():
        if signal.sigtimedwait(STOP_SIGNALS, 1.0) is not None:
            break
        if os.getppid() != parent:
            log.warning("the server's main process is gone: storing what is spooled, then exiting")
            break
    stop.set()
    thread.join(GRACEFUL_TIMEOUT + 5.0)
    writer.close()
    get_engine(app).dispose()  # the database sees its sessions end, not vanish
    log.info("click writer stopped (pid %d)", os.getpid())


if __name__ == "__main__":
    main()
