"""The heatmap report and the comparison of two variants as PDF downloads, from the
dashboard (and, through ``pdf_response`` and ``comparison_pdf_response``, from the JSON API).

The heatmap report (and ``clickmap report pdf``, in ``app.cli.reports``) takes the heatmap
page's view settings (metric, variant, part, period, device, sort), the comparison the
comparison page's (a, b, machines); both hand them to ``app.reports.pdf``. This module only
parses requests and wraps the bytes.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, request

from app.db import get_session
from app.errors import ClickmapError
from app.reports.comparison import CompareParams
from app.reports.heatmap import ViewParams
from app.reports.pdf import render_comparison, render_report
from app.web.auth import login_required

bp = Blueprint("reports", __name__)


def filename(campaign_id: int) -> str:
    return f"clickmap-campaign-{campaign_id}.pdf"


def _download(pdf: bytes, name: str) -> Response:
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    # Reports hold customer data: keep them out of shared caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def pdf_response(campaign_id: int, params: ViewParams) -> Response:
    """The report for ``params`` as a download (the API's route is in ``app.web.api``)."""
    pdf = render_report(current_app, get_session(), campaign_id, params)
    return _download(pdf, filename(campaign_id))


def comparison_pdf_response(campaign_id: int, params: CompareParams) -> Response:
    """The comparison for ``params`` as a download (the API's route is in ``app.web.api``)."""
    rendered = render_comparison(current_app, get_session(), campaign_id, params)
    return _download(rendered.pdf, f"clickmap-campaign-{campaign_id}-comparison.pdf")


@bp.get("/campaigns/<id:campaign_id>/report.pdf")
@login_required
def dashboard_report(campaign_id: int) -> Response:
    return pdf_response(campaign_id, ViewParams.from_query(request.args))


@bp.get("/campaigns/<id:campaign_id>/compare.pdf")
@login_required
def dashboard_comparison(campaign_id: int) -> Response:
    return comparison_pdf_response(campaign_id, CompareParams.from_query(request.args))


@bp.errorhandler(ClickmapError)
def _domain_error(exc: ClickmapError) -> tuple[str, int]:
    """The dashboard's error page (the API's errors are JSON, from its own blueprint)."""
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


def init_app(app: Flask) -> None:
    """Register the report routes."""
    app.register_blueprint(bp)
