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

Everything either document loads goes through ``RestrictedFetcher``. The email is written
by whoever created the campaign, so it may point anywhere (``file:///etc/passwd``, a cloud
metadata address, a service on localhost); the fetcher answers only with our own static
files, ``data:`` URIs and, when ``PDF_REMOTE_IMAGES`` is on, resources on public addresses.
Anything else gets an invisible placeholder, so a refused fetch never shows up as an error
page or a broken image in the PDF, and is logged at info.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import http.client
import ipaddress
import logging
import mimetypes
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

from flask import Flask, render_template
from markupsafe import Markup
from sqlalchemy.orm import Session
from weasyprint import CSS, HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

from app.reports import labels
from app.reports.email_overlay import view_document
from app.reports.heatmap import HeatmapView, ViewParams, build_view
from app.reports.labels import PART_LABELS

logger = logging.getLogger(__name__)

# The origin our own pages pretend to be served from while WeasyPrint renders them. The
# ``.invalid`` top-level domain is reserved (RFC 2606): it never resolves, so a URL on it
# can only ever be answered from disk by the fetcher.
OWN_ORIGIN = "https://clickmap.invalid"

REMOTE_TIMEOUT = 5.0  # seconds for one remote resource, connection and body together
REMOTE_MAX_BYTES = 5 * 1024 * 1024
DATA_MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 3
REMOTE_PORTS = frozenset({80, 443})
# What a remote answer may be; anything else (HTML error pages, scripts) is refused.
REMOTE_TYPES = ("image/", "font/", "application/font-", "application/x-font-", "text/css")

# The answer to every refused fetch. It is at once a valid, empty SVG image (for <img>,
# CSS backgrounds, <object>) and an empty stylesheet: CSS skips "<!--" and "-->" at the top
# level and the rest is inside a /* comment */, while XML sees two comments around <svg/>.
# Labelled text/css so a <link rel=stylesheet> takes it quietly; images are sniffed.
PLACEHOLDER = (
    b'<!-- /* --><svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/><!-- */ -->'
)

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


class Refused(Exception):
    """A fetch the report may not make; the message says why (it is logged)."""


def _placeholder(url: str) -> Any:
    return URLFetcherResponse(url, PLACEHOLDER, {"Content-Type": "text/css"})


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP literal) is on the public internet.

    ``is_global`` alone lets multicast through, and IPv4-mapped IPv6 addresses must be
    judged as the IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_global
        and not (
            ip.is_loopback
            or ip.is_private
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked in advance, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pinned address; the certificate is still checked against the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.pinned_address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may load: the static folder, and public remote resources or not."""

    static_folder: Path | None
    static_url_path: str = "/static"
    remote: bool = True
    timeout: float = REMOTE_TIMEOUT
    max_bytes: int = REMOTE_MAX_BYTES
    # Web ports only: a public host's other services (SSH, databases) are not images.
    ports: frozenset[int] = REMOTE_PORTS


class RestrictedFetcher(URLFetcher):  # type: ignore[misc]
    """The one URL fetcher of every PDF we render (see the module docstring).

    A subclass of WeasyPrint's fetcher only for its interface: none of its urllib handlers
    (``file:``, ``ftp:``, proxies) is ever installed or called.
    """

    def __init__(self, policy: FetchPolicy, resolver: Resolver = socket.getaddrinfo) -> None:
        urllib.request.OpenerDirector.__init__(self)
        self.policy = policy
        self.resolver = resolver
        # The attributes WeasyPrint reads on its fetchers.
        self._timeout = policy.timeout
        self._http_headers: dict[str, str] = {}
        self._allowed_protocols = None
        self._fail_on_errors = False
        self._request = None
        self.refused: list[tuple[str, str]] = []

    def fetch(self, url: str, headers: Any = None) -> Any:
        """Answer ``url`` from disk, from the URI itself or from a public host; never fail."""
        try:
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme == "data":
                return self._data(url)
            if url.startswith(OWN_ORIGIN + "/"):
                return self._static(url)
            if scheme in ("http", "https"):
                if not self.policy.remote:
                    raise Refused("remote resources are turned off (PDF_REMOTE_IMAGES)")
                return self._remote(url)
            raise Refused(f"the {scheme or 'relative'} scheme is not allowed")
        except Refused as exc:
            return self._refuse(url, str(exc))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return self._refuse(url, f"{type(exc).__name__}: {exc}")

    def _refuse(self, url: str, reason: str) -> Any:
        shown = url if len(url) <= 200 else url[:200] + "..."
        logger.info("PDF: not loading %s: %s", shown, reason)
        self.refused.append((url, reason))
        return _placeholder(url)

    def _data(self, url: str) -> Any:
        header, comma, payload = url[len("data:") :].partition(",")
        if not comma:
            raise Refused("malformed data: URI")
        if len(payload) > DATA_MAX_BYTES * 2:
            raise Refused("data: URI too large")
        params = [p.strip() for p in header.split(";")]
        encoded = params[-1].lower() == "base64"
        if encoded:
            params = params[:-1]
        content_type = params[0].lower() or "text/plain"
        body = unquote_to_bytes(payload)
        if encoded:
            try:
                body = base64.b64decode(body + b"=" * (-len(body) % 4))
            except binascii.Error as exc:
                raise Refused("malformed base64 in data: URI") from exc
        if len(body) > DATA_MAX_BYTES:
            raise Refused("data: URI too large")
        return URLFetcherResponse(url, body, {"Content-Type": content_type})

    def _static(self, url: str) -> Any:
        path = unquote(urlsplit(url).path)
        prefix = self.policy.static_url_path.rstrip("/") + "/"
        folder = self.policy.static_folder
        if folder is None or not path.startswith(prefix):
            raise Refused("not one of our static files")
        found = safe_join(str(folder), path[len(prefix) :])
        if found is None or not Path(found).is_file():
            raise Refused("no such static file")
        content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
        return URLFetcherResponse(url, Path(found).read_bytes(), {"Content-Type": content_type})

    def _remote(self, url: str) -> Any:
        deadline = time.monotonic() + self.policy.timeout
        for _hop in range(MAX_REDIRECTS + 1):
            status, location, content_type, body = self._get(url, deadline)
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise Refused("redirected away from http(s)")
                continue
            if status != 200:
                raise Refused(f"HTTP status {status}")
            if not content_type.startswith(REMOTE_TYPES):
                raise Refused(f"unexpected content type {content_type or 'none'}")
            return URLFetcherResponse(url, body, {"Content-Type": content_type})
        raise Refused("too many redirects")

    def _address_for(self, host: str, port: int) -> str:
        """A checked address for ``host``: every address it resolves to must be public."""
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise Refused("host name cannot be encoded") from exc
        try:
            infos = self.resolver(ascii_host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            raise Refused(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise Refused(f"{host} has no address")
        bad = [a for a in addresses if not is_public_address(a)]
        if bad:
            raise Refused(f"{host} resolves to a non-public address ({bad[0]})")
        return addresses[0]

    def _get(self, url: str, deadline: float) -> tuple[int, str | None, str, bytes]:
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            raise Refused("no host")
        if parts.username is not None or parts.password is not None:
            raise Refused("credentials in the URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if port not in self.policy.ports:
            raise Refused(f"port {port} is not allowed")
        address = self._address_for(host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Refused("timed out")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = _PinnedHTTPSConnection(host, port, address, remaining)
        else:
            connection = _PinnedHTTPConnection(host, port, address, remaining)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(
                "GET",
                target,
                headers={
                    "User-Agent": "Clickmap PDF report",
                    "Accept": "image/*, font/*, text/css;q=0.5",
                    "Accept-Encoding": "identity",
                },
            )
            response = connection.getresponse()
            location = response.getheader("Location")
            content_type = (response.getheader("Content-Type") or "").split(";")[0]
            content_type = content_type.strip().lower()
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.policy.max_bytes:
                raise Refused(f"larger than {self.policy.max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise Refused("timed out")
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.policy.max_bytes:
                    raise Refused(f"larger than {self.policy.max_bytes} bytes")
                chunks.append(chunk)
            return response.status, location, content_type, b"".join(chunks)
        finally:
            connection.close()


# -- the report ---------------------------------------------------------------------------


def fetch_policy(app: Flask) -> FetchPolicy:
    """The fetch rules for ``app``: its static folder, and remote resources unless
    ``PDF_REMOTE_IMAGES`` is off."""
    return FetchPolicy(
        static_folder=Path(app.static_folder) if app.static_folder else None,
        static_url_path=app.static_url_path or "/static",
        remote=bool(app.config.get("PDF_REMOTE_IMAGES", True)),
    )


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string; every character that could end it is escaped."""
    safe = " .,:;!?()&+-_/#%@"
    return '"' + "".join(c if c.isalnum() or c in safe else f"\\{ord(c):x} " for c in text) + '"'


def page_css(view: HeatmapView, where: str, first_page: int, details_gap: int = 0) -> str:
    """The @page rules of every part of the file: A4, a running header, page numbers.

    Page numbers are CSS counters, so each document is told the number of its first page;
    the report is also told how many pages (the email's) go in front of its details.
    """
    muted = "font: 8pt 'Liberation Sans', 'DejaVu Sans', sans-serif; color: #64748b;"
    footer = f"Clickmap heatmap report: variant {view.variant}, {PART_LABELS[view.params.part]}"
    rules = [
        "@page {",
        "  size: A4; margin: 17mm 12mm 16mm;",
        f"  @top-left {{ content: {css_string(view.campaign_name)}; {muted} font-weight: bold; }}",
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
    view: HeatmapView, text: str, fetcher: RestrictedFetcher, first_page: int
) -> Any:
    where = f"The email as sent: variant {view.variant}, {PART_LABELS[view.params.part]} part"
    pages = CSS(string=page_css(view, where, first_page), url_fetcher=fetcher)
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
            page_css=Markup(page_css(view, "Heatmap report", 1, email_pages)),  # noqa: S704
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
    view = build_view(session, campaign_id, params, now=now or datetime.now(UTC))
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
