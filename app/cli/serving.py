"""``clickmap serve``: the production server (``app.ops.serving``)."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--bind", "-b", help="Address to listen on, e.g. 0.0.0.0:8000.")
@click.option("--workers", "-w", type=int, help="Worker processes (default: CPU cores).")
@click.option("--threads", type=int, help="Threads per worker (default: 8).")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve Clickmap with gunicorn (redirector, API and dashboard)."""
    from app.ops.serving import ClickmapServer

    ClickmapServer({"bind": bind, "workers": workers, "threads": threads}).run()
