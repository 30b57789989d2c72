"""``clickmap serve``: the production server (``app.ops.granian_serving`` or
``app.ops.serving`` for gunicorn)."""

from __future__ import annotations

import click

# Which server ``clickmap serve`` runs unless told (``--server``, ``CLICKMAP_SERVER``).
SERVERS = ("granian", "gunicorn")
DEFAULT_SERVER = "granian"


@click.command("serve")
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    envvar="CLICKMAP_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="HTTP server (also CLICKMAP_SERVER).",
)
@click.option("--bind", "-b", help="Address to listen on, e.g. 0.0.0.0:8000.")
@click.option("--workers", "-w", type=int, help="Worker processes (default: CPU cores).")
@click.option(
    "--threads", type=int, help="Threads per worker (default: 2 on granian, 8 on gunicorn)."
)
def serve_command(server: str, bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve Clickmap (redirector, API and dashboard), with its click writer process."""
    overrides = {"bind": bind, "workers": workers, "threads": threads}
    if server == "granian":
        from app.ops import granian_serving

        granian_serving.run(overrides)
    else:
        from app.ops.serving import ClickmapServer

        ClickmapServer(overrides).run()
