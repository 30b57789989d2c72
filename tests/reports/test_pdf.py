"""The PDF report: what a reader sees in it, and what rendering it may (not) fetch."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session

from app.ingest import campaigns
from app.ingest.links import LinkRules
from app.reports import pdf
from app.reports.heatmap import ViewParams
from tests.factories import SENT, email_with_links, hostile_urls, pdf_text, seed_campaign
from tests.prerequisites import ROOT, require_programs

NOW = SENT + timedelta(days=10)


# -- building a campaign with known figures ---------------------------------------------------


# -- what the reader sees ---------------------------------------------------------------------


@pytest.fixture
def weasyprint_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO):
        yield caplog


def unexpected(records: list[logging.LogRecord]) -> list[str]:
    """WeasyPrint messages that mean something is missing from the PDF.

    Warnings about CSS it does not support (the dashboard stylesheet targets browsers) are
    expected; errors and failed loads are not.
    """
    return [
        r.getMessage()
        for r in records
        if r.name == "weasyprint"
        and (
            r.levelno >= logging.ERROR
            or (
                r.levelno >= logging.WARNING and re.search(r"fail|load|fetch", r.getMessage(), re.I)
            )
        )
    ]


def test_report_shows_summary_and_every_link(
    app: Flask, session: Session, tmp_path: Path, weasyprint_log: pytest.LogCaptureFixture
) -> None:
    seeded = seed_campaign(session, email_with_links(12))
    result = pdf.render(app, session, seeded.campaign_id, ViewParams(), now=NOW)

    assert result.pdf.startswith(b"%PDF-")
    assert result.refused == []
    assert unexpected(weasyprint_log.records) == []
    text = pdf_text(result.pdf, tmp_path)
    total = sum(t for _text, t, _u in seeded.links.values())
    unique = max(u for _text, _t, u in seeded.links.values())  # clickers are nested sets
    assert 'Spring <sale> & "friends"' in text  # the header and title, escaped properly
    for label, figure in [
        ("Delivered", f"{seeded.delivered:,}"),
        ("Clicks", f"{total:,}"),
        ("Unique clickers", str(unique)),
        ("Click rate", f"{unique / seeded.delivered * 100:.1f}%"),
    ]:
        assert label in text
        assert figure in text, label
    for _position, (link_text, link_total, link_unique) in seeded.links.items():
        rate = f"{link_unique / seeded.delivered * 100:.1f}%"
        share = f"{link_total / total * 100:.1f}%"
        row = rf"{re.escape(link_text)}.*?\s{link_total}\s+{link_unique}\s+{re.escape(rate)}"
        assert re.search(row, text, re.DOTALL), link_text
        assert share in text, link_text

    # The colored email: one badge per tracked link with its number, on the email's pages.
    email_text = pdf_text(result.pdf, tmp_path, first=2, last=1 + result.email_pages)
    for link_text, link_total, _unique in seeded.links.values():
        assert re.search(rf"{re.escape(link_text)}\s*{link_total}\b", email_text), link_text
    assert "Page 2" in email_text
    assert f"Page {result.pages}" in pdf_text(result.pdf, tmp_path, first=result.pages)


def test_email_pages_sit_between_overview_and_ranked_links(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    """Every page of both documents is in the file once, in reading order, numbered."""
    seeded = seed_campaign(session, email_with_links(70), recipients=60)
    result = pdf.render(app, session, seeded.campaign_id, ViewParams(sort="position"), now=NOW)
    text = pdf_text(result.pdf, tmp_path)
    pages = text.split("\f")[: result.pages]
    assert len(pages) == result.pages
    assert result.email_pages >= 2  # the email itself runs over several pages
    first_email = next(i for i, page in enumerate(pages) if "The email as sent" in page)
    email = range(first_email, first_email + result.email_pages)
    assert first_email >= 1
    for number, page in enumerate(pages, 1):
        assert re.search(rf"Page {number}\s*$", page), f"page {number} is misnumbered"
        is_email = number - 1 in email
        assert ("The email as sent" in page) is is_email, number
        assert ("Heatmap report" in page) is not is_email, number
    # The overview comes first, the ranked links after the email, and nothing twice.
    overview = "".join(pages[:first_email])
    details = "".join(pages[email.stop :])
    assert "Delivered" in overview and "Clicks over time" in overview
    assert "tracked links" not in overview
    assert "70 tracked links" in details and "Delivered" not in details
    assert "Clicks over time" not in details
    # The email's links in email order across its pages, each once; the ranked table too.
    email_text = "".join(pages[i] for i in email)
    ranked = [int(n) for n in re.findall(r"Item number (\d+)", details)]
    shown = [int(n) for n in re.findall(r"Item number (\d+)", email_text)]
    assert shown == list(range(1, 71))
    assert ranked == list(range(1, 71))


def test_pages_render_and_are_not_blank(app: Flask, session: Session, tmp_path: Path) -> None:
    seeded = seed_campaign(session, email_with_links(20))
    result = pdf.render(app, session, seeded.campaign_id, ViewParams(sort="position"), now=NOW)
    (tmp_path / "r.pdf").write_bytes(result.pdf)
    require_programs("pdftoppm")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", str(tmp_path / "r.pdf"), str(tmp_path / "page")],
        check=True,
    )
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == result.pages >= 3  # overview, email, ranked links
    for image in images:
        with Image.open(image) as png:
            histogram = png.convert("L").histogram()
            darkest = min(level for level, count in enumerate(histogram) if count)
            assert darkest < 128, f"{image.name} is blank"
            # A page with text has many non-white pixels, not just a header line.
            inked = sum(histogram[:200])
            assert inked > 500, f"{image.name} is nearly empty"


def test_report_of_a_campaign_without_clicks(app: Flask, session: Session, tmp_path: Path) -> None:
    created = campaigns.create_campaign(
        session, "Quiet", [campaigns.VariantInput("A", email_with_links(3))],
        rules=LinkRules(), max_part_bytes=10_000_000,
    )  # fmt: skip
    session.commit()
    result = pdf.render(app, session, created.campaign.id, ViewParams(), now=NOW)
    text = pdf_text(result.pdf, tmp_path)
    assert "No clicks yet" in text
    assert "Item number 03" in text


def test_the_report_renders_without_the_dashboard(
    session: Session, tmp_path: Path, weasyprint_log: pytest.LogCaptureFixture
) -> None:
    """The reports package installs what its template needs: a bare Flask app with the
    templates and no dashboard (nor anything else create_app adds) renders the same report."""
    seeded = seed_campaign(session, email_with_links(3))
    bare = Flask("app", template_folder=str(ROOT / "templates"))
    assert not bare.blueprints and "metric_labels" not in bare.jinja_env.globals
    result = pdf.render(bare, session, seeded.campaign_id, ViewParams(metric="unique"), now=NOW)
    assert result.refused == []
    assert unexpected(weasyprint_log.records) == []
    text = pdf_text(result.pdf, tmp_path)
    for expected in (
        "Unique clickers, relative to the top link",  # metric_labels
        "HTML part",  # part_labels
        "All devices",  # device_labels
        "All time",  # period_labels
        f"Created {SENT:%Y-%m-%d}",  # the when filter
        f"{seeded.delivered:,}",  # the number filter
        "Clicks over time",  # the charts, through the nonced filter
    ):
        assert expected.lower() in text.lower(), expected  # headings are set in capitals
    for link_text, _total, link_unique in seeded.links.values():
        rate = f"{link_unique / seeded.delivered * 100:.1f}%"  # the percent filter
        assert re.search(rf"{re.escape(link_text)}.*?{re.escape(rate)}", text, re.DOTALL)


# -- what rendering may fetch -----------------------------------------------------------------


HOSTILE_TEMPLATES = [
    '<img src="{url}" width="20" height="20" alt="">',
    "<div style=\"width:20px;height:20px;background:url('{url}')\"></div>",
    '<link rel="stylesheet" href="{url}">',
    "<style>@import url('{url}');</style>",
    "<style>@font-face {{ font-family: X; src: url('{url}'); }} p {{ font-family: X }}</style>",
    '<iframe src="{url}"></iframe>',
    '<object data="{url}" type="image/png"></object>',
    '<embed src="{url}">',
    '<link rel="attachment" href="{url}">',
    '<a rel="attachment" href="{url}">attachment</a>',
    '<svg width="10" height="10"><image href="{url}" width="10" height="10"/></svg>',
    '<table background="{url}"><tr><td>x</td></tr></table>',
]


def test_hostile_email_fetches_nothing(
    app: Flask,
    session: Session,
    tmp_path: Path,
    local_server: tuple[int, list[str]],
    weasyprint_log: pytest.LogCaptureFixture,
) -> None:
    port, hits = local_server
    hostile = "".join(
        template.format(url=url) for url in hostile_urls(port) for template in HOSTILE_TEMPLATES
    )
    seeded = seed_campaign(session, email_with_links(3, extra=hostile))
    result = pdf.render(app, session, seeded.campaign_id, ViewParams(), now=NOW)

    assert hits == []
    refused = {url for url, _reason in result.refused}
    assert any(url.startswith("file:") for url in refused)
    assert any("169.254.169.254" in url for url in refused)
    assert not [
        r
        for r in weasyprint_log.records
        if r.name == "app.reports.fetcher" and r.levelno > logging.INFO
    ]
    # A refused font is the one thing WeasyPrint mentions: it falls back to another font.
    assert {m for m in unexpected(weasyprint_log.records) if "Font-face 'X'" not in m} == set()
    # Nothing of /etc/passwd or our own source made it in, not even as an attachment.
    assert b"root:" not in result.pdf
    assert b"/EmbeddedFile" not in result.pdf
    text = pdf_text(result.pdf, tmp_path)
    assert "root:" not in text
    assert "DEV_SECRET" not in text
    assert "Item number 03" in text


def test_the_summary_line_names_the_segment(
    app: Flask, session: Session, tmp_path: Path, weasyprint_log: pytest.LogCaptureFixture
) -> None:
    """A report of one client and country says so on paper, with where countries come from,
    so a printed page is never taken for the whole audience."""
    seeded = seed_campaign(session, email_with_links(3))
    params = ViewParams(client="Outlook", country="unknown")
    result = pdf.render(app, session, seeded.campaign_id, params, now=NOW)
    assert unexpected(weasyprint_log.records) == []
    text = " ".join(pdf_text(result.pdf, tmp_path, last=1).split())
    assert "Client: Outlook · Country: Unknown" in text
    assert "Countries are where each click's network is registered" in text
    plain = pdf.render(app, session, seeded.campaign_id, ViewParams(), now=NOW)
    assert "Client:" not in pdf_text(plain.pdf, tmp_path, last=1)
