"""``clickmap report``: the heatmap report as a PDF, for the same view as the page."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import get_session
from app.errors import ClickmapError, cli_error
from app.reports.heatmap import ViewParams
from app.reports.pdf import render_report
from app.web.downloads import filename


@click.group("report")
def report_group() -> None:
    """Heatmap reports."""


@report_group.command("pdf")
@click.argument("campaign_id", type=int)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PDF (default: clickmap-campaign-<id>.pdf).",
)
@click.option("--metric", help="total, unique, rate or share (default: total).")
@click.option("--variant", help="Variant name (default: the first).")
@click.option("--part", help="html or amp (default: html).")
@click.option("--period", help="all, 24h, 7d, 30d or custom (default: all).")
@click.option("--start", help="First day of a custom period, YYYY-MM-DD (UTC).")
@click.option("--end", help="Last day of a custom period, YYYY-MM-DD (UTC).")
@click.option("--device", help="desktop, mobile, tablet or other (default: all).")
@click.option("--sort", help="metric or position (default: metric).")
@click.option("--ctas", help="all or only: list just the links marked as CTAs (default: all).")
@click.option("--group", help="link or destination: one row per destination (default: link).")
@with_appcontext
def report_pdf(campaign_id: int, output: Path | None, **view: str | None) -> None:
    """Write the heatmap report of a campaign as a PDF, for the same view as the page."""
    args = {name: value for name, value in view.items() if value}
    try:
        params = ViewParams.from_query(args)
        pdf = render_report(current_app, get_session(), campaign_id, params)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    target = output or Path(filename(campaign_id))
    try:
        target.write_bytes(pdf)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from exc
    click.echo(f"{target} ({len(pdf):,} bytes)")
