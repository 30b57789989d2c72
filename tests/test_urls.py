"""Destinations to ``Location`` values, and UTM parameters: pure functions, table-driven."""

from __future__ import annotations

import pytest

from app.urls import UnsafeDestination, to_location, with_utm


@pytest.mark.parametrize(
    ("destination", "location"),
    [
        ("https://example.com/a?b=1#c", "https://example.com/a?b=1#c"),
        # IDN hosts become IDNA, whatever their case; ASCII hosts are lower-cased.
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://BÜCHER.Example/Path", "https://xn--bcher-kva.example/Path"),
        ("https://EXAMPLE.COM/X", "https://example.com/X"),
        ("https://例え.テスト/", "https://xn--r8jz45g.xn--zckzah/"),
        # Non-ASCII path, query and fragment: UTF-8, percent-encoded.
        (
            "https://example.com/straße?q=ü#teil ü",
            "https://example.com/stra%C3%9Fe?q=%C3%BC#teil%20%C3%BC",
        ),
        # Existing escapes stay exactly as written (no double encoding), stray % are escaped.
        (
            "https://example.com/a%2Fb?x=%C3%BC&y=%zz&z=100%",
            "https://example.com/a%2Fb?x=%C3%BC&y=%25zz&z=100%25",
        ),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        # Reserved characters keep their meaning.
        (
            "https://example.com/p;x=1/@a?k=v&k2=a/b?c:d[]#f/g?h",
            "https://example.com/p;x=1/@a?k=v&k2=a/b?c:d[]#f/g?h",
        ),
        (
            'https://example.com/a b"<>`{|}\\^',
            "https://example.com/a%20b%22%3C%3E%60%7B%7C%7D%5C%5E",
        ),
        # Userinfo, ports, IPv6 literals.
        ("http://user:pä ss@Example.com:8080/", "http://user:p%C3%A4%20ss@example.com:8080/"),
        ("http://[2001:DB8::1]:8443/x", "http://[2001:db8::1]:8443/x"),
        ("http://[::1]/", "http://[::1]/"),
        ("https://user@[::1]:1/", "https://user@[::1]:1/"),
        ("HTTPS://example.com", "https://example.com"),
        ("https://example.com:/", "https://example.com/"),
        # Empty query and fragment markers survive.
        ("https://example.com/?", "https://example.com/?"),
        ("https://example.com/#", "https://example.com/#"),
        # CR, LF, TAB, NUL and DEL never reach the header.
        ("https://example.com/a\r\nSet-Cookie: x=1", "https://example.com/aSet-Cookie:%20x=1"),
        ("https://exa\nmple.com/\x00\x7f\tb", "https://example.com/b"),
        (" https://example.com/ ", "https://example.com/"),
    ],
)
def test_to_location(destination: str, location: str) -> None:
    result = to_location(destination)
    assert result == location
    assert result.isascii()
    assert not any(ch < " " or ch == "\x7f" for ch in result)


@pytest.mark.parametrize(
    "destination",
    [
        "javascript:alert(1)",
        "mailto:a@example.com",
        "/relative/path",
        "//example.com/no-scheme",
        "https:///no-host",
        "https://example.com:99999999/",
        "https://example.com:80a/",
        "http://[::1/",
        "http://[::1]x/",
        "https://exa mple.com/",
        "https://a..b/",
        "",
    ],
)
def test_to_location_refuses_what_is_not_a_web_url(destination: str) -> None:
    with pytest.raises(UnsafeDestination):
        to_location(destination)


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
