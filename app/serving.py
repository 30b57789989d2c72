"""``clickmap serve``: the production server (gunicorn, settings in ``app.gunicorn_conf``)."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from gunicorn.app.base import BaseApplication

from app import gunicorn_conf


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


@click.command("serve")
@click.option("--bind", "-b", help="Address to listen on, e.g. 0.0.0.0:8000.")
@click.option("--workers", "-w", type=int, help="Worker processes (default: CPU cores).")
@click.option("--threads", type=int, help="Threads per worker (default: 8).")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve Clickmap with gunicorn (redirector, API and dashboard)."""
    ClickmapServer({"bind": bind, "workers": workers, "threads": threads}).run()
