"""Turning a stored destination into a valid ``Location`` header value.

Destinations are kept exactly as the sender wrote them (decoded). Only at redirect time are
they made ASCII: the host in IDNA, the rest UTF-8 percent-encoded, existing escapes untouched.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

# Everything a URL may legally hold, so existing escapes and reserved characters survive.
_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def to_location(destination: str) -> str:
    """A header-safe absolute URL for ``destination``; CR, LF and other controls removed."""
    cleaned = "".join(ch for ch in destination if ch >= " " and ch != "\x7f")
    parts = urlsplit(cleaned)
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        ascii_host = quote(host, safe="")
    netloc = parts.netloc
    if host and ascii_host != host:
        netloc = netloc.replace(host, ascii_host)
    return urlunsplit(
        (
            parts.scheme,
            quote(netloc, safe=_SAFE),
            quote(parts.path, safe=_SAFE),
            quote(parts.query, safe=_SAFE),
            quote(parts.fragment, safe=_SAFE),
        )
    )
