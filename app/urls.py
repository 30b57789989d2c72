"""Turning a stored destination into a valid ``Location`` header value, UTM included.

Destinations are kept exactly as the sender wrote them (decoded). Only at redirect time are
they made ASCII: the host in IDNA, the rest UTF-8 percent-encoded, existing escapes untouched,
so the recipient lands on the very URL the sender meant. Control characters (CR and LF above
all) are dropped first: nothing can ever add a header to the redirect.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

_HEX = frozenset(string.hexdigits)
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
# RFC 3986 sets, plus "[" and "]" in query and fragment: common in real links (``a[]=1``),
# accepted by every browser, and encoding them could change what a server sees.
_USERINFO = _UNRESERVED | _SUB_DELIMS | {":"}
_PATH = _UNRESERVED | _SUB_DELIMS | set(":@/")
_QUERY = _PATH | set("?[]")
_FRAGMENT = _QUERY
_PORT = re.compile(r"[0-9]*")


class UnsafeDestination(ValueError):
    """The destination is not an absolute http(s) URL we are willing to redirect to."""


def _encode(text: str, safe: frozenset[str]) -> str:
    """Percent-encode what ``safe`` does not allow, keeping valid ``%XX`` escapes as they are."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in safe:
            out.append(ch)
        elif ch == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            out.append(text[i : i + 3].upper())
            i += 3
            continue
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        i += 1
    return "".join(out)


def _ascii_host(host: str) -> str:
    """The host in lower-case ASCII: IDNA per label, or a bracketed IPv6 literal as is."""
    if host.startswith("["):
        if not host.endswith("]") or not re.fullmatch(r"\[[0-9A-Fa-f:.]+(%25[\w.~-]+)?\]", host):
            raise UnsafeDestination(f"malformed IP literal {host!r}")
        return host.lower()
    labels: list[str] = []
    for label in host.rstrip(".").split(".") if host.rstrip(".") else []:
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(label.encode("idna").decode("ascii"))
        except UnicodeError as exc:
            raise UnsafeDestination(f"host label {label!r} cannot be encoded: {exc}") from exc
    if not labels or any(not label for label in labels):
        raise UnsafeDestination(f"malformed host {host!r}")
    encoded = ".".join(labels) + ("." if host.endswith(".") else "")
    if not all(ch in _UNRESERVED or ch in _SUB_DELIMS for ch in encoded):
        raise UnsafeDestination(f"host {host!r} holds characters a host cannot have")
    return encoded


def to_location(destination: str) -> str:
    """A header-safe absolute http(s) URL for ``destination``.

    Raises ``UnsafeDestination`` for anything else (relative, other schemes, bad host or
    port): the redirector then refuses the link rather than guess.
    """
    cleaned = "".join(ch for ch in destination if ch >= " " and ch != "\x7f").strip()
    try:
        parts = urlsplit(cleaned)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
        raise UnsafeDestination(str(exc)) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeDestination(f"only http and https destinations, got {scheme or 'none'!r}")
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        host += "]"
        if rest and not rest.startswith(":"):
            raise UnsafeDestination(f"malformed authority {netloc!r}")
        port = rest[1:]
        has_port = bool(rest)
    else:
        host, colon, port = hostport.partition(":")
        has_port = bool(colon)
    if not _PORT.fullmatch(port) or len(port) > 5:
        raise UnsafeDestination(f"malformed port {port!r}")
    authority = (_encode(userinfo, _USERINFO) + "@" if at else "") + _ascii_host(host)
    if has_port and port:
        authority += ":" + port
    location = scheme + "://" + authority + _encode(parts.path, _PATH)
    if parts.query or cleaned.partition("#")[0].endswith("?"):
        location += "?" + _encode(parts.query, _QUERY)
    if parts.fragment or cleaned.endswith("#"):
        location += "#" + _encode(parts.fragment, _FRAGMENT)
    return location


def _param_names(query: str) -> set[str]:
    names: set[str] = set()
    for pair in query.split("&"):
        name = pair.partition("=")[0]
        if name:
            names.add(unquote(name.replace("+", " ")))
    return names


def with_utm(location: str, utm: Mapping[str, str] | None) -> str:
    """``location`` with the campaign's UTM parameters appended to its query.

    They go before the fragment, and a parameter the sender already set is never overridden:
    the sender's own link knows best.
    """
    if not utm:
        return location
    base, hash_, fragment = location.partition("#")
    path, _, query = base.partition("?")
    present = _param_names(query)
    added = [
        quote(name, safe="") + "=" + quote(value, safe="")
        for name, value in utm.items()
        if name not in present
    ]
    if not added:
        return location
    joined = query + ("&" if query and not query.endswith("&") else "") + "&".join(added)
    return path + "?" + joined + hash_ + fragment
