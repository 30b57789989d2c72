"""The one place a link's address is parsed: the WHATWG URL Standard, through ``ada-url``.

A tracked link must open exactly what the original opens. Browsers parse addresses by the
WHATWG URL Standard (``\\`` is ``/`` in http(s), hosts go through IDNA per UTS #46, percent
escapes are left as written), so every decision Clickmap makes about a link uses that same
parse and nothing else: whether it is tracked, its host for the do-not-track list and the
catalog, the destination in reports, the redirect's ``Location`` (the parser's serialization,
byte for byte, which is what the browser would have requested), the UTM parameters added to
it, and the PDF fetcher's address checks. ``ada-url`` is the parser Node.js uses.

The serialization is always ASCII with every control character percent-encoded (or refused in
a host), so a ``Location`` made from it can never add a header to the redirect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import ada_url

WEB_SCHEMES = ("http", "https")


class UnsafeDestination(ValueError):
    """The address is not an absolute http(s) URL we are willing to redirect to."""


@dataclass(frozen=True, slots=True)
class WebAddress:
    """An http(s) URL as a browser parses it."""

    href: str  # the serialization: what the browser requests, and our ``Location``
    scheme: str  # "http" or "https"
    hostname: str  # ASCII: IDNA per UTS #46, IPv4 normalized, IPv6 in brackets
    port: int | None  # None for the scheme's default port
    has_credentials: bool  # a user name or password before the host
    target: str  # path and query: what goes on an HTTP request line

    @property
    def bare_hostname(self) -> str:
        """The host without IPv6 brackets, as resolvers and ``ipaddress`` want it."""
        return self.hostname[1:-1] if self.hostname.startswith("[") else self.hostname


def parse_web_address(value: str, base: str | None = None) -> WebAddress:
    """``value`` parsed as a browser would (against ``base`` when given): an http(s) URL.

    Raises ``UnsafeDestination`` when the parser fails or the scheme is not http(s). The
    parser itself strips leading and trailing spaces and control characters and drops tabs
    and line breaks anywhere, exactly as browsers do.
    """
    try:
        url = ada_url.URL(value, base) if base is not None else ada_url.URL(value)
    except ValueError as exc:
        raise UnsafeDestination(f"not a valid web address: {value[:200]!r}") from exc
    scheme = url.protocol[:-1]
    if scheme not in WEB_SCHEMES:
        raise UnsafeDestination(f"only http and https addresses, got {scheme!r}")
    href = url.href
    # The standard guarantees this; a header value depends on it, so it is checked, not trusted.
    if not (href.isascii() and href.isprintable()) or " " in href:
        raise UnsafeDestination(f"the parser's serialization is not header-safe: {href[:200]!r}")
    return WebAddress(
        href=href,
        scheme=scheme,
        hostname=url.hostname,
        port=int(url.port) if url.port else None,
        has_credentials=bool(url.username or url.password),
        target=(url.pathname or "/") + url.search,
    )


def with_utm(href: str, utm: Mapping[str, str] | None) -> str:
    """The serialized URL ``href`` with the campaign's UTM parameters added to its query.

    They go at the end of the query (so before the fragment), the sender's own bytes are kept
    as they are, and a parameter the sender already set is never overridden, even when they
    wrote its name percent-encoded or left its value empty: the sender's own link knows best.
    """
    if not utm:
        return href
    url = ada_url.URL(href)
    query = url.search[1:]
    present = ada_url.parse_search_params(query).keys() if query else set()
    added = [
        quote(name, safe="") + "=" + quote(value, safe="")
        for name, value in utm.items()
        if name not in present
    ]
    if not added:
        return href
    url.search = query + ("&" if query and not query.endswith("&") else "") + "&".join(added)
    return url.href


def location_for(destination: str, utm: Mapping[str, str] | None) -> str:
    """The redirect's ``Location`` for a stored destination: computed once, at ingest."""
    return with_utm(parse_web_address(destination).href, utm)
