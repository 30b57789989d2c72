"""The heatmap report as a PDF download, from the dashboard (and, through ``pdf_response``,
from the JSON API).

Both (and ``clickmap report pdf``, in ``app.cli.reports``) take the heatmap page's view
settings (metric, variant, part, period, device, sort) and hand them to ``app.reports.pdf``;
this module only parses requests and wraps the bytes.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, request

from app.db import get_session
from app.errors import ClickmapError
from app.reports.heatmap import ViewParams
from app.reports.pdf import render_report
from app.web.auth import login_required

bp = Blueprint("reports", __name__)


def filename(campaign_id: int) -> str:
    return f"clickmap-campaign-{campaign_id}.pdf"


def pdf_response(campaign_id: int, params: ViewParams) -> Response:
    """The report for ``params`` as a download (the API's route is in ``app.web.api``)."""
    pdf = render_report(current_app, get_session(), campaign_id, params)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename(campaign_id)}"'
    # Reports hold customer data: keep them out of shared caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/campaigns/<id:campaign_id>/report.pdf")
@login_required
def dashboard_report(campaign_id: int) -> Response:
    return pdf_response(campaign_id, ViewParams.from_query(request.args))


@bp.errorhandler(ClickmapError)
def _domain_error(exc: ClickmapError) -> tuple[str, int]:
    """The dashboard's error page (the API's errors are JSON, from its own blueprint)."""
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


def init_app(app: Flask) -> None:
    """Register the report routes."""
    app.register_blueprint(bp)
