"""gunicorn as the production server (settings in ``app.ops.gunicorn_conf``) and its click
writer process; ``clickmap serve --server gunicorn`` (``app.cli.serving``) runs it. The
default server is granian (``app.ops.granian_serving``)."""

from __future__ import annotations

import gc
import os
import signal
import threading
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.dirty.app import DirtyApp

from app.ops import gunicorn_conf


class ClickmapServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running ``create_app()`` in each worker, configured from ``gunicorn_conf``
    and then from the command line."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        super().__init__()

    def load_config(self) -> None:
        given = {name: value for name, value in self.overrides.items() if value is not None}
        for name, value in {**vars(gunicorn_conf), **given}.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> Flask:
        from app import create_app

        return create_app()


class ClickWriterApp(DirtyApp):  # type: ignore[misc]
    """The click writer in a gunicorn "dirty" worker: a process beside the HTTP workers that
    serves no requests, restarted by gunicorn if it dies. Its thread stores what every worker
    spools (``app.clicks.writer``); on shutdown it stores what it can before it exits."""

    def init(self) -> None:
        from app import create_app
        from app.clicks.tracking import writer_for

        self.writer = writer_for(create_app())
        # As in the workers (see gunicorn_conf.post_worker_init): what is loaded now lives as
        # long as the process, so the garbage collector need not walk it again and again.
        gc.freeze()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="clickmap-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        parent = os.getppid()
        # gunicorn stops this process with the server; if its supervisor is killed outright
        # instead, it stops on its own, so it never outlives the server holding the lock.
        watcher = threading.Thread(target=self._watch, args=(parent,), daemon=True)
        watcher.start()
        self.writer.run(self.stopping)

    def _watch(self, parent: int) -> None:
        while not self.stopping.wait(1.0):
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)  # the graceful path: close() below
                return

    def __call__(self, action: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"the click writer takes no requests (asked for {action!r})")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(gunicorn_conf.graceful_timeout / 2)
        self.writer.close()
