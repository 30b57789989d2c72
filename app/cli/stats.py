"""``clickmap stats rebuild`` and ``clickmap clicks reclassify``: a campaign's aggregates
rebuilt from its raw clicks, with or without judging the clicks again first; ``clickmap
clicks partitions`` and ``clickmap clicks drop-month``: the click table's months
(``app.clicks.partitions``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clicks import partitions
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


# How long a maintenance command waits for a lock on ``click`` before giving up: a queued
# request would hold every later reader and writer of the table behind it.
LOCK_TIMEOUT = "10s"


@clicks_group.command("partitions")
@click.option(
    "--ahead",
    type=click.IntRange(0, 120),
    default=partitions.AHEAD,
    show_default=True,
    help="Months to make beyond the current one.",
)
@with_appcontext
def clicks_partitions(ahead: int) -> None:
    """PostgreSQL: make the click table's partitions for this month and the next ones, and
    for any month whose clicks wait in the default partition (which moves them there).
    Safe to repeat; the click writer does the same as it goes."""
    session = get_session()
    connection = session.connection()
    if not partitions.is_partitioned(connection):
        click.echo(
            f"the click table is not partitioned on {connection.dialect.name}: nothing to do"
        )
        return
    partitions.set_timeouts(connection, LOCK_TIMEOUT)
    done = partitions.maintain(connection, datetime.now(UTC).date(), ahead)
    session.commit()
    for name in done.created:
        click.echo(f"created {name}")
    first, last = done.months[0], done.months[-1]
    click.echo(
        f"{len(done.months)} monthly partitions, {first:%Y-%m} to {last:%Y-%m}; "
        f"{done.in_default:,} clicks in {partitions.DEFAULT}"
    )


@clicks_group.command("drop-month")
@click.argument("month")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def clicks_drop_month(month: str, yes: bool) -> None:
    """Delete every click of MONTH (YYYY-MM, UTC) for good, and rebuild the aggregates of
    the campaigns that had clicks in it, in one transaction: reports then count only the
    clicks that are left. A month that is not over yet is refused."""
    try:
        first = partitions.parse_month(month)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if partitions.next_month(first) > datetime.now(UTC).date():
        raise click.UsageError(f"{month} is not over yet: only past months can be dropped")
    session = get_session()
    found = partitions.clicks_in_month(session.connection(), first)
    session.rollback()  # no transaction stays open while the question waits for an answer
    if not found:
        click.echo(f"no clicks in {month}")
        return
    campaigns = ", ".join(str(c) for c in found)
    question = (
        f"Delete {sum(found.values()):,} clicks of {month} for good, and rebuild the "
        f"aggregates of campaign{'s' if len(found) > 1 else ''} {campaigns}?"
    )
    if not yes and not click.confirm(question):
        raise click.Abort()

    read: dict[int, int] = {}
    partitions.set_timeouts(session.connection(), LOCK_TIMEOUT)
    try:
        removed = partitions.drop_month(session, first, read.__setitem__)
    except partitions.MonthChanged as exc:
        session.rollback()
        raise click.ClickException(f"{exc}: nothing was dropped, run it again") from exc
    session.commit()
    for campaign_id, count in removed.items():
        click.echo(
            f"campaign {campaign_id}: {count:,} clicks dropped, "
            f"aggregates rebuilt from the {read[campaign_id]:,} left"
        )
    click.echo(f"{month}: {sum(removed.values()):,} clicks dropped")
