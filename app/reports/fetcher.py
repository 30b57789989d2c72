"""The one URL fetcher of every email resource we load: what WeasyPrint may load for a PDF,
and what the dashboard's email frame shows through its image proxy (``RemoteCache``).

The email is written by whoever created the campaign, so it may point anywhere
(``file:///etc/passwd``, a cloud metadata address, a service on localhost); the fetcher
answers only with our own static files, ``data:`` URIs and, when remote resources are on
(``PDF_REMOTE_IMAGES``, ``EMAIL_REMOTE_IMAGES``), resources on public addresses (checked
after resolving, and connected to at the checked address), never Clickmap's own tracked
links or pixels. Anything else gets an invisible placeholder, so a refused fetch never shows
up as an error page or a broken image, and is logged at info.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import logging
import mimetypes
import socket
import ssl
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from flask import Flask
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

from app.urls import UnsafeDestination, parse_web_address

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
# Paths under TRACKING_BASE_URL that count a recipient's action: the redirector's tracked
# links, and any open pixel to come. Fetching one would record a click nobody made.
TRACKING_PATHS = ("/c/", "/o/")
# The email frame's proxy cache, per process: at most this much, each entry this long.
CACHE_MAX_BYTES = 32 * 1024 * 1024
CACHE_SECONDS = 3600.0

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
    # (host, path prefix) pairs never fetched: our own tracked links and pixels.
    refused_paths: tuple[tuple[str, str], ...] = ()
    # The setting that turns remote resources on, named when they are refused for it.
    remote_setting: str = "PDF_REMOTE_IMAGES"


class RestrictedFetcher(URLFetcher):  # type: ignore[misc]
    """The one URL fetcher of every PDF we render (see the module docstring).

    A subclass of WeasyPrint's fetcher only for its interface: none of its urllib handlers
    (``file:``, ``ftp:``, proxies) is ever installed or called.
    """

    def __init__(
        self, policy: FetchPolicy, resolver: Resolver = socket.getaddrinfo, purpose: str = "PDF"
    ) -> None:
        urllib.request.OpenerDirector.__init__(self)
        self.policy = policy
        self.resolver = resolver
        self.purpose = purpose  # named in the log
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
                    raise Refused(f"remote resources are turned off ({self.policy.remote_setting})")
                return self._remote(url)
            raise Refused(f"the {scheme or 'relative'} scheme is not allowed")
        except Refused as exc:
            return self._refuse(url, str(exc))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return self._refuse(url, f"{type(exc).__name__}: {exc}")

    def _refuse(self, url: str, reason: str) -> Any:
        shown = url if len(url) <= 200 else url[:200] + "..."
        logger.info("%s: not loading %s: %s", self.purpose, shown, reason)
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
                try:
                    url = parse_web_address(location, base=url).href
                except UnsafeDestination as exc:
                    raise Refused("redirected away from http(s)") from exc
                continue
            if status != 200:
                raise Refused(f"HTTP status {status}")
            if not content_type.startswith(REMOTE_TYPES):
                raise Refused(f"unexpected content type {content_type or 'none'}")
            return URLFetcherResponse(url, body, {"Content-Type": content_type})
        raise Refused("too many redirects")

    def _address_for(self, host: str, port: int) -> str:
        """A checked address for ``host`` (ASCII, as the URL parser wrote it): every address
        it resolves to must be public."""
        try:
            infos = self.resolver(host, port, 0, socket.SOCK_STREAM)
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
        # The address as a browser parses it (app.urls): the host checked below is the host
        # connected to, whatever backslashes, escapes or Unicode the URL was written with.
        try:
            parts = parse_web_address(url)
        except UnsafeDestination as exc:
            raise Refused(str(exc)) from exc
        host = parts.bare_hostname
        if not host:
            raise Refused("no host")
        if parts.has_credentials:
            raise Refused("credentials in the URL")
        # Compared decoded and case-blind, as a server may route ``/%63/`` or ``/C/``.
        path = unquote(parts.target.split("?", 1)[0]).lower()
        for refused_host, prefix in self.policy.refused_paths:
            if host == refused_host and path.startswith(prefix):
                raise Refused("one of Clickmap's own tracked addresses")
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
        target = parts.target
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


def tracking_paths(tracking_base_url: str) -> tuple[tuple[str, str], ...]:
    """The (host, path prefix) pairs of Clickmap's own tracked addresses under
    ``tracking_base_url``: what no fetch may ever request."""
    try:
        base = parse_web_address(tracking_base_url + "/")
    except UnsafeDestination:
        return ()
    root = unquote(base.target.split("?", 1)[0]).rstrip("/").lower()
    return tuple((base.bare_hostname, root + path) for path in TRACKING_PATHS)


def fetch_policy(app: Flask, remote_setting: str = "PDF_REMOTE_IMAGES") -> FetchPolicy:
    """The fetch rules for ``app``: its static folder, never its own tracked addresses, and
    remote resources unless ``remote_setting`` (``PDF_REMOTE_IMAGES`` for PDFs,
    ``EMAIL_REMOTE_IMAGES`` for the dashboard's frame) is off."""
    return FetchPolicy(
        static_folder=Path(app.static_folder) if app.static_folder else None,
        static_url_path=app.static_url_path or "/static",
        remote=bool(app.config.get(remote_setting, True)),
        refused_paths=tracking_paths(str(app.config.get("TRACKING_BASE_URL", ""))),
        remote_setting=remote_setting,
    )


# -- the dashboard's email frame ----------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A remote resource for the email frame; ``content_type`` is None when it was refused
    (``body`` is then the placeholder)."""

    body: bytes
    content_type: str | None


class RemoteCache:
    """Remote images and fonts of emails, fetched by the rules above and kept in memory.

    In memory, not on disk: what it holds is public images anyone can fetch again, so losing
    it at a restart costs a few fetches, while a disk cache would need cleaning, could fill
    the disk the click spool appends to, and would keep senders' files under the instance
    folder. The price is one cache per worker process, each bounded by ``max_bytes``
    (least recently used first out). Refusals are kept too, so a slow or hostile host is
    asked once per ``seconds``, not on every page view.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        max_bytes: int = CACHE_MAX_BYTES,
        seconds: float = CACHE_SECONDS,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.resolver = resolver
        self._entries: OrderedDict[str, tuple[float, Fetched]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, url: str) -> Fetched:
        """``url`` (an absolute http(s) address) from the cache, or fetched now."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(url)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(url)
                return entry[1]
        fetched = self._fetch(url)
        self._keep(url, now + self.seconds, fetched)
        return fetched

    def _fetch(self, url: str) -> Fetched:
        fetcher = RestrictedFetcher(self.policy, self.resolver, purpose="email frame")
        if url.split(":", 1)[0].lower() not in ("http", "https"):
            fetcher._refuse(url, "only http(s) addresses are proxied")
            return Fetched(PLACEHOLDER, None)
        response = fetcher.fetch(url)
        body = response.read()
        if fetcher.refused:
            return Fetched(PLACEHOLDER, None)
        return Fetched(body, response.content_type)

    def _keep(self, url: str, expires: float, fetched: Fetched) -> None:
        size = len(url) + len(fetched.body)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(url, None)
            if old is not None:
                self._size -= len(url) + len(old[1].body)
            self._entries[url] = (expires, fetched)
            self._size += size
            while self._size > self.max_bytes:
                dropped, (_expires, gone) = self._entries.popitem(last=False)
                self._size -= len(dropped) + len(gone.body)
