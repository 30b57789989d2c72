"""``clickmap stats rebuild`` and ``clickmap clicks reclassify``: a campaign's aggregates
rebuilt from its raw clicks, with or without judging the clicks again first."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clicks.labelling import thresholds_from
from app.clicks.rebuild import click_count, rebuild_campaign
from app.db import get_session
from app.errors import NotFound, cli_error
from app.ingest.campaigns import get_campaign
from app.models import Campaign
from app.reports.stats import ClickFilter, machine_clicks


@click.group("stats")
def stats_group() -> None:
    """Report aggregates."""


@click.group("clicks")
def clicks_group() -> None:
    """Stored clicks."""


_CAMPAIGN = click.option(
    "--campaign", "campaign_id", type=int, help="Only this campaign (default: all)."
)


@stats_group.command("rebuild")
@_CAMPAIGN
@with_appcontext
def stats_rebuild(campaign_id: int | None) -> None:
    """Recompute every aggregate exactly from the raw clicks (safe to repeat, and to run
    while clicks arrive: each campaign is rebuilt in one transaction)."""

    def rebuilt(session: Session, cid: int, progress: Callable[[int], None] | None) -> str:
        total = rebuild_campaign(session, cid, progress)
        return f"aggregates rebuilt from {total:,} clicks"

    _each_campaign(campaign_id, rebuilt)


@clicks_group.command("reclassify")
@_CAMPAIGN
@with_appcontext
def clicks_reclassify(campaign_id: int | None) -> None:
    """Judge every stored click again, human or machine, by today's rules and settings,
    and rebuild the aggregates exactly (safe to repeat: a second run changes nothing)."""
    thresholds = thresholds_from(current_app.config)

    def reclassified(session: Session, cid: int, progress: Callable[[int], None] | None) -> str:
        total = rebuild_campaign(session, cid, progress, relabel_clicks=True, thresholds=thresholds)
        left_out = machine_clicks(session, ClickFilter(cid, human_only=False))
        machine = left_out.clicks
        why = ", ".join(f"{reason} {n:,}" for reason, n in left_out.reasons.items())
        noun = "click" if total == 1 else "clicks"
        return f"{total:,} {noun} judged, {machine:,} machine" + (f" ({why})" if why else "")

    _each_campaign(campaign_id, reclassified)


def _each_campaign(
    campaign_id: int | None,
    work: Callable[[Session, int, Callable[[int], None] | None], str],
) -> None:
    """Run ``work`` on one campaign or all, one transaction each, with a progress bar on a
    terminal and one line of outcome per campaign."""
    session = get_session()
    if campaign_id is not None:
        try:
            ids = [get_campaign(session, campaign_id).id]
        except NotFound as exc:
            raise cli_error(exc) from exc
    else:
        ids = list(session.scalars(select(Campaign.id).order_by(Campaign.id)))
    for cid in ids:
        label = f"campaign {cid}"
        if sys.stderr.isatty():
            total = click_count(session, cid)
            with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
                outcome = work(session, cid, bar.update)
        else:
            outcome = work(session, cid, None)
        session.commit()
        click.echo(f"{label}: {outcome}")
    if not ids:
        click.echo("no campaigns")
