"""The heatmap report as a PDF download: dashboard, JSON API and ``clickmap report pdf``.

All three take the heatmap page's view settings (metric, variant, part, period, device,
sort) and hand them to ``app.reports.pdf``; this module only parses requests and options
and wraps the bytes.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Blueprint, Flask, Response, current_app, render_template, request
from flask.cli import with_appcontext

from app.db import get_session
from app.errors import ClickmapError, cli_error, error_response, is_api_request
from app.reports.heatmap import ViewParams
from app.reports.pdf import render_report
from app.web.auth import login_required

bp = Blueprint("reports", __name__)


def filename(campaign_id: int) -> str:
    return f"clickmap-campaign-{campaign_id}.pdf"


def _pdf_response(campaign_id: int) -> Response:
    params = ViewParams.from_query(request.args)
    pdf = render_report(current_app, get_session(), campaign_id, params)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename(campaign_id)}"'
    # Reports hold customer data: keep them out of shared caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/campaigns/<int:campaign_id>/report.pdf")
@login_required
def dashboard_report(campaign_id: int) -> Response:
    return _pdf_response(campaign_id)


@bp.get("/api/v1/campaigns/<int:campaign_id>/report.pdf")
def api_report(campaign_id: int) -> Response:
    # The Bearer token was checked by the guard every /api/ route passes (app.web.auth).
    return _pdf_response(campaign_id)


@bp.errorhandler(ClickmapError)
def _domain_error(exc: ClickmapError) -> Response | tuple[str, int]:
    """JSON for the API route, the dashboard's error page for the dashboard route."""
    if is_api_request():
        return error_response(exc.code, exc.message, exc.status)
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


# -- ``clickmap report`` ----------------------------------------------------------------------


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


def init_app(app: Flask) -> None:
    """Register the report routes and the ``report`` command."""
    app.register_blueprint(bp)
    app.cli.add_command(report_group)
