"""The heatmap report as a PDF: the heatmap page's own template, laid out for paper.

Two WeasyPrint documents make one file. The report (``templates/report_pdf.html``, which
includes ``_heatmap_report.html`` with ``for_print=True``) carries the summary, legend,
charts and ranked table, styled by ``static/print.css``. The colored email is rendered as a
document of its own, with its own stylesheets and the "screen" media type, because that is
how a mail client shows it: mixing its CSS into the report would restyle both. The report's
details (the ranked links) start on a page of their own, and the email's pages go in front
of that page, so the file reads overview, email, ranked links; page numbers and headers run
across all of it.

Rendering time goes mostly into CSS: the stylesheets that do not depend on the campaign
are parsed once per process (``_stylesheet``) and handed to each render already parsed.

Everything either document loads goes through ``app.reports.fetcher.RestrictedFetcher``:
the email is the sender's, and may point anywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from markupsafe import Markup
from sqlalchemy.orm import Session
from weasyprint import CSS, HTML

from app.reports import labels
from app.reports.comparison import CompareParams, ComparisonView, build_comparison, format_p
from app.reports.email_overlay import view_document
from app.reports.fetcher import OWN_ORIGIN, FetchPolicy, RestrictedFetcher, fetch_policy
from app.reports.heatmap import CTA_MIN_CLICK_RATE, HeatmapView, ViewParams, build_view
from app.reports.labels import PART_LABELS


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string; every character that could end it is escaped."""
    safe = " .,:;!?()&+-_/#%@"
    return '"' + "".join(c if c.isalnum() or c in safe else f"\\{ord(c):x} " for c in text) + '"'


def heatmap_footer(view: HeatmapView) -> str:
    """The heatmap report's running footer."""
    return f"Clickmap heatmap report: variant {view.variant}, {PART_LABELS[view.params.part]}"


def page_css(title: str, footer: str, where: str, first_page: int, details_gap: int = 0) -> str:
    """The @page rules of every part of the file: A4, a running header, page numbers.

    Page numbers are CSS counters, so each document is told the number of its first page;
    the report is also told how many pages (the email's) go in front of its details.
    """
    muted = "font: 8pt 'Liberation Sans', 'DejaVu Sans', sans-serif; color: #64748b;"
    rules = [
        "@page {",
        "  size: A4; margin: 17mm 12mm 16mm;",
        f"  @top-left {{ content: {css_string(title)}; {muted} font-weight: bold; }}",
        f"  @top-right {{ content: {css_string(where)}; {muted} }}",
        f"  @bottom-left {{ content: {css_string(footer)}; {muted} }}",
        f'  @bottom-right {{ content: "Page " counter(page); {muted} }}',
        "}",
        f"@page :first {{ counter-reset: page {int(first_page)}; }}",
    ]
    if details_gap:
        # The first page of the details (print.css names them) comes after the email's.
        rules.append(
            f"@page :nth(1 of details) {{ counter-increment: page {int(details_gap) + 1}; }}"
        )
    return "\n".join(rules)


STATIC = Path(__file__).resolve().parents[1] / "static"
PRINT_CSS = STATIC / "print.css"

# The email's own rules on paper, added to its stylesheets as a user stylesheet.
EMAIL_PRINT_CSS = """
/* Mail clients (like browsers) center a table inside an align=center cell; WeasyPrint maps
   the attribute to text-align only, which leaves such tables on the left. */
[align=center] > table, [align=CENTER] > table, center > table {
  margin-left: auto; margin-right: auto;
}
h1, h2, h3, h4, h5, h6 { bookmark-level: none; }
body { bookmark-level: 1; bookmark-label: "The email as sent"; }

/* The number badges. On screen each sits on its link's top right corner: absolutely
   positioned in the link, which is position:relative. WeasyPrint does not position boxes
   against an inline element, so on a link in running text the badge lands on the link's
   last letters. Here it follows the link, raised, like a footnote mark; links laid out as
   boxes (display:block or inline-block: buttons) keep the corner placement, which
   WeasyPrint does honor for them. User-level !important beats the overlay's rules. */
[href^="#cm-"]:not([style*="block" i])::after {
  position: relative !important;
  top: -6px !important;
  right: auto !important;
  margin-left: 3px !important;
}
"""


@functools.lru_cache(maxsize=8)
def _stylesheet(text: str) -> CSS:
    """``text`` parsed once per process; WeasyPrint only reads a parsed stylesheet.

    Keyed by the text, so an edited print.css is parsed again. Its fetcher refuses every
    load: these sheets have no business loading anything.
    """
    closed = RestrictedFetcher(FetchPolicy(static_folder=None, remote=False))
    return CSS(string=text, url_fetcher=closed)


def print_stylesheet() -> CSS:
    """static/print.css, parsed."""
    return _stylesheet(PRINT_CSS.read_text(encoding="utf-8"))


@dataclass
class Rendered:
    """A finished report and what it took (kept for tests and logs)."""

    pdf: bytes
    pages: int
    email_pages: int
    seconds: float
    refused: list[tuple[str, str]] = field(default_factory=list)


def _strip_attachments(document: Any) -> None:
    # <link rel=attachment> and <a rel=attachment> would embed whatever they point at in
    # the PDF; a report has no business carrying files named by the sender's email.
    document.metadata.attachments = []
    for page in document.pages:
        page.links = [link for link in page.links if link[0] != "attachment"]


def _email_document(
    view: HeatmapView,
    text: str,
    fetcher: RestrictedFetcher,
    first_page: int,
    footer: str | None = None,
) -> Any:
    where = f"The email as sent: variant {view.variant}, {PART_LABELS[view.params.part]} part"
    footer = footer or heatmap_footer(view)
    rules = page_css(view.campaign_name, footer, where, first_page)
    pages = CSS(string=rules, url_fetcher=fetcher)
    # "screen", and the HTML attributes emails are built with (width, align, bgcolor):
    # the email is shown as a mail client shows it, not as a browser would print it.
    html = HTML(
        string=text, base_url=OWN_ORIGIN + "/email/", url_fetcher=fetcher, media_type="screen"
    )
    document = html.render(
        stylesheets=[_stylesheet(EMAIL_PRINT_CSS), pages], presentational_hints=True
    )
    _strip_attachments(document)
    return document


def _report_document(
    app: Flask, view: HeatmapView, fetcher: RestrictedFetcher, email_pages: int
) -> Any:
    """The report, overview and details in one document (see report_pdf.html); the details'
    page numbers leave room for the ``email_pages`` that go in front of them."""
    labels.init_app(app)  # the template's helpers, whether or not the dashboard is installed
    with app.app_context():
        source = render_template(
            "report_pdf.html",
            view=view,
            details_view=dataclasses.replace(view, time_chart_svg="", device_chart_svg=""),
            for_print=True,
            # Safe inside <style>: css_string escapes "<", ">" and quotes.
            page_css=Markup(  # noqa: S704
                page_css(view.campaign_name, heatmap_footer(view), "Heatmap report", 1, email_pages)
            ),
        )
    html = HTML(string=source, base_url=OWN_ORIGIN + "/", url_fetcher=fetcher, media_type="print")
    document = html.render(stylesheets=[print_stylesheet()])
    _strip_attachments(document)
    return document


def _details_start(report: Any) -> int:
    """The index of the report's first details page (report_pdf.html gives it the id)."""
    for index, page in enumerate(report.pages):
        if "report-details" in page.anchors:
            return int(index)
    return len(report.pages)


def render(
    app: Flask,
    session: Session,
    campaign_id: int,
    params: ViewParams,
    *,
    fetcher: RestrictedFetcher | None = None,
    now: datetime | None = None,
) -> Rendered:
    """The report of one heatmap view, with timing and the fetches that were refused.

    Order: the overview, the colored email, the ranked links. The email is laid out first,
    on the guess that the overview takes one page (it is one page unless the legend runs
    long), so the report knows how many pages to leave for it; a wrong guess costs one more
    layout of the email, whose page count does not depend on its page numbers.
    """
    started = time.perf_counter()
    fetcher = fetcher or RestrictedFetcher(fetch_policy(app))
    view = build_view(
        session,
        campaign_id,
        params,
        now=now or datetime.now(UTC),
        # An app without the settings (one only rendering reports) gets the guideline.
        cta_min_rate=app.config.get("CTA_MIN_CLICK_RATE", CTA_MIN_CLICK_RATE),
    )
    text = view_document(session, view)
    first = 2
    email = _email_document(view, text, fetcher, first)
    report = _report_document(app, view, fetcher, len(email.pages))
    split = _details_start(report)
    if split + 1 != first:
        again = _email_document(view, text, fetcher, split + 1)
        if len(again.pages) != len(email.pages):  # pragma: no cover - numbers are not laid out
            report = _report_document(app, view, fetcher, len(again.pages))
            split = _details_start(report)
        email = again
    pages = report.pages[:split] + email.pages + report.pages[split:]
    pdf = report.copy(pages).write_pdf()
    return Rendered(
        pdf=pdf,
        pages=len(pages),
        email_pages=len(email.pages),
        seconds=time.perf_counter() - started,
        refused=fetcher.refused,
    )


def render_report(app: Flask, session: Session, campaign_id: int, params: ViewParams) -> bytes:
    """The PDF of the heatmap view ``params`` of a campaign (see the module docstring)."""
    return render(app, session, campaign_id, params).pdf


# -- the comparison of two variants ----------------------------------------------------------


def comparison_footer(view: ComparisonView) -> str:
    """The comparison's running footer, on its pages and on both emails'."""
    return f"Clickmap A/B comparison: variant {view.a} and variant {view.b}"


def _comparison_document(app: Flask, view: ComparisonView, fetcher: RestrictedFetcher) -> Any:
    """The comparison page's figures (compare_pdf.html), from page 1."""
    labels.init_app(app)
    title = view.campaign_name
    where = f"Variants {view.a} and {view.b} compared"
    with app.app_context():
        source = render_template(
            "compare_pdf.html",
            view=view,
            format_p=format_p,
            for_print=True,
            # Safe inside <style>: css_string escapes "<", ">" and quotes.
            page_css=Markup(page_css(title, comparison_footer(view), where, 1)),  # noqa: S704
        )
    html = HTML(string=source, base_url=OWN_ORIGIN + "/", url_fetcher=fetcher, media_type="print")
    document = html.render(stylesheets=[print_stylesheet()])
    _strip_attachments(document)
    return document


def render_comparison(
    app: Flask,
    session: Session,
    campaign_id: int,
    params: CompareParams,
    *,
    fetcher: RestrictedFetcher | None = None,
    now: datetime | None = None,
) -> Rendered:
    """The comparison of two variants as a PDF: the comparison page's figures (the same
    ``build_comparison`` the page and the API read), then each variant's email as sent,
    colored by unique clickers with the comparison's machine switch, as the page's two
    frames show them: variant a's pages, then b's.

    The emails follow one another rather than sharing a page: each is a document of its own
    with its own stylesheets (laying both out in one document would let each email's CSS
    restyle the other), and a WeasyPrint page holds one document's boxes.
    """
    started = time.perf_counter()
    fetcher = fetcher or RestrictedFetcher(fetch_policy(app))
    view = build_comparison(session, campaign_id, params)
    report = _comparison_document(app, view, fetcher)
    pages = list(report.pages)
    email_pages = 0
    for name in (view.a, view.b):
        email_view = build_view(
            session,
            campaign_id,
            ViewParams(metric="unique", variant=name, machines=params.machines),
            now=now or datetime.now(UTC),
            charts=False,
            cta_min_rate=app.config.get("CTA_MIN_CLICK_RATE", CTA_MIN_CLICK_RATE),
        )
        text = view_document(session, email_view)
        email = _email_document(
            email_view, text, fetcher, len(pages) + 1, footer=comparison_footer(view)
        )
        pages += email.pages
        email_pages += len(email.pages)
    pdf = report.copy(pages).write_pdf()
    return Rendered(
        pdf=pdf,
        pages=len(pages),
        email_pages=email_pages,
        seconds=time.perf_counter() - started,
        refused=fetcher.refused,
    )
