"""``clickmap demo``: seed the demo campaign and its user (``app.ops.demo``), then serve."""

from __future__ import annotations

import secrets
import sys
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.db import get_engine, get_session
from app.errors import ClickmapError, cli_error
from app.ingest import campaigns
from app.ingest.campaigns import link_rules
from app.ops import demo


@click.command("demo")
@click.option("--port", default=5000, show_default=True, help="Port to serve on (127.0.0.1).")
@click.option("--password", help="Password of the demo user (default: a new random one).")
@click.option(
    "--recipients",
    default=demo.DemoSettings.recipients,
    show_default=True,
    type=click.IntRange(10, 50_000),
    help="Recipients in the demo campaign.",
)
@click.option("--no-serve", is_flag=True, help="Seed and print, but do not start the server.")
@with_appcontext
def demo_command(port: int, password: str | None, recipients: int, no_serve: bool) -> None:
    """Seed a demo campaign with ten days of clicks, create user 'demo' and serve."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    # Imported here: Alembic costs every other command's start-up a fifth of a second.
    from app.ops.migrate import upgrade

    upgrade(get_engine(app))
    site = f"http://127.0.0.1:{port}"
    if app.config["TRACKING_BASE_URL"] == demo.DEFAULT_TRACKING_BASE:
        # Untouched default: make the printed links hit the server this command starts.
        app.config["TRACKING_BASE_URL"] = site
    session = get_session()
    started = datetime.now(UTC)
    result = demo.seed(
        session,
        rules=link_rules(app),
        max_part_bytes=app.config["MAX_PART_BYTES"],
        settings=demo.DemoSettings(recipients=recipients),
        show_progress=sys.stderr.isatty(),
        commit=session.commit,
    )
    session.commit()
    seconds = (datetime.now(UTC) - started).total_seconds()
    state = "created" if result.created else "reused"
    click.echo(
        f"demo campaign {result.campaign_id} {state}: {result.recipients:,} recipients, "
        f"{result.clicks:,} clicks ({result.clicks_added:,} new) in {seconds:.1f}s"
    )

    password = password or secrets.token_urlsafe(12)
    try:
        demo.ensure_user(session, password)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()

    campaign = campaigns.get_campaign(session, result.campaign_id)
    click.echo("")
    click.echo(f"  log in:    {site}/login")
    click.echo(f"  username:  {demo.DEMO_USER}")
    click.echo(f"  password:  {password}")
    click.echo(f"  heatmap:   {site}/campaigns/{campaign.id}")
    click.echo(f"  PDF:       {site}/campaigns/{campaign.id}/report.pdf")
    click.echo("")
    click.echo("Tracked links of a few recipients (each click is recorded, then redirected):")
    for link in demo.sample_links(app, session, campaign):
        click.echo(f"  {link.recipient} ({link.variant}) {link.text!r}:")
        click.echo(f"    {link.url}")
    session.commit()
    if no_serve:
        return
    click.echo("")
    click.echo(f"Serving on {site} (Ctrl+C to stop)")
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
