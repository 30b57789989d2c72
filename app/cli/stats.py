"""``clickmap stats``: the report aggregates, rebuilt from the raw clicks."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.clicks.rebuild import click_count, rebuild_campaign
from app.db import get_session
from app.errors import NotFound, cli_error
from app.ingest.campaigns import get_campaign
from app.models import Campaign


@click.group("stats")
def stats_group() -> None:
    """Report aggregates."""


@stats_group.command("rebuild")
@click.option("--campaign", "campaign_id", type=int, help="Only this campaign (default: all).")
@with_appcontext
def stats_rebuild(campaign_id: int | None) -> None:
    """Recompute every aggregate exactly from the raw clicks (safe to repeat, and to run
    while clicks arrive: each campaign is rebuilt in one transaction)."""
    session = get_session()
    if campaign_id is not None:
        try:
            ids = [get_campaign(session, campaign_id).id]
        except NotFound as exc:
            raise cli_error(exc) from exc
    else:
        ids = list(session.scalars(select(Campaign.id).order_by(Campaign.id)))
    for cid in ids:
        total = click_count(session, cid)
        label = f"campaign {cid}"
        if sys.stderr.isatty():
            with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
                rebuild_campaign(session, cid, bar.update)
        else:
            rebuild_campaign(session, cid)
        session.commit()
        click.echo(f"{label}: aggregates rebuilt from {total:,} clicks")
    if not ids:
        click.echo("no campaigns")
