"""The one URL parse, and UTM parameters: pure functions, table-driven. (Whole links through
ingest and the redirector: tests/clicks/test_url_round_trip.py.)"""

from __future__ import annotations

import pytest

from app.urls import UnsafeDestination, location_for, parse_web_address, with_utm


@pytest.mark.parametrize(
    ("value", "href", "hostname", "port", "target"),
    [
        ("https://faß.de/x?y#z", "https://xn--fa-hia.de/x?y#z", "xn--fa-hia.de", None, "/x?y"),
        ("http://[2001:DB8::1]:8443", "http://[2001:db8::1]:8443/", "[2001:db8::1]", 8443, "/"),
        ("https://a.com\\@evil.com/", "https://a.com/@evil.com/", "a.com", None, "/@evil.com/"),
        ("http://0x7f.1:80/a", "http://127.0.0.1/a", "127.0.0.1", None, "/a"),
        (" https://e.com/a\tb\n ", "https://e.com/ab", "e.com", None, "/ab"),
    ],
)  # fmt: skip
def test_parse_web_address(
    value: str, href: str, hostname: str, port: int | None, target: str
) -> None:
    address = parse_web_address(value)
    assert (address.href, address.hostname, address.port, address.target) == (
        href,
        hostname,
        port,
        target,
    )
    assert address.href.isascii()
    assert not address.has_credentials


def test_parse_web_address_resolves_against_a_base() -> None:
    assert parse_web_address("../b?c", base="https://e.com/a/x").href == "https://e.com/b?c"


def test_credentials_and_bare_hosts_are_reported() -> None:
    address = parse_web_address("https://u:p@[::1]:8080/")
    assert address.has_credentials
    assert address.bare_hostname == "::1"


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "mailto:a@example.com",
        "ftp://example.com/",
        "/relative/path",
        "//example.com/no-scheme",
        "https://example.com:99999999/",
        "https://example.com:80a/",
        "http://[::1/",
        "http://[::1]x/",
        "https://exa mple.com/",
        "https://ex<ample.com/",
        "http://256.0.0.1/",
        "https://",
        "",
    ],
)
def test_parse_web_address_refuses_what_is_not_a_web_url(value: str) -> None:
    with pytest.raises(UnsafeDestination):
        parse_web_address(value)


def test_location_for_is_the_serialization_with_utm() -> None:
    assert location_for("https://E.com/%7e?a=1#f", {"utm_source": "n"}) == (
        "https://e.com/%7e?a=1&utm_source=n#f"
    )
    with pytest.raises(UnsafeDestination):
        location_for("https://exa mple.com/", None)


@pytest.mark.parametrize(
    ("location", "utm", "expected"),
    [
        ("https://e.com/", None, "https://e.com/"),
        ("https://e.com/", {}, "https://e.com/"),
        ("https://e.com/", {"utm_source": "news"}, "https://e.com/?utm_source=news"),
        ("https://e.com/p?a=1", {"utm_source": "news"}, "https://e.com/p?a=1&utm_source=news"),
        ("https://e.com/p?a=1&", {"utm_source": "n"}, "https://e.com/p?a=1&utm_source=n"),
        ("https://e.com/p?", {"utm_source": "n"}, "https://e.com/p?utm_source=n"),
        # Before the fragment.
        ("https://e.com/p#top", {"utm_source": "n"}, "https://e.com/p?utm_source=n#top"),
        (
            "https://e.com/p?a=1#t?x=1",
            {"utm_medium": "e"},
            "https://e.com/p?a=1&utm_medium=e#t?x=1",
        ),
        # Never overriding what the sender set, even when escaped or empty.
        (
            "https://e.com/?utm_source=own",
            {"utm_source": "news", "utm_medium": "email"},
            "https://e.com/?utm_source=own&utm_medium=email",
        ),
        (
            "https://e.com/?utm%5Fsource=own",
            {"utm_source": "news"},
            "https://e.com/?utm%5Fsource=own",
        ),
        ("https://e.com/?utm_source", {"utm_source": "news"}, "https://e.com/?utm_source"),
        ("https://e.com/?utm_source=", {"utm_source": "news"}, "https://e.com/?utm_source="),
        # Values are encoded: spaces, ampersands, non-ASCII.
        (
            "https://e.com/",
            {"utm_campaign": "Spring & Sale ü"},
            "https://e.com/?utm_campaign=Spring%20%26%20Sale%20%C3%BC",
        ),
        (
            "https://e.com/",
            {"utm_source": "a", "utm_medium": "b", "utm_campaign": "c"},
            "https://e.com/?utm_source=a&utm_medium=b&utm_campaign=c",
        ),
    ],
)
def test_with_utm(location: str, utm: dict[str, str] | None, expected: str) -> None:
    assert with_utm(location, utm) == expected
