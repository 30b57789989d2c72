"""Device classes, email clients and network prefixes from a click's request."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from app.clicks.devices import (
    COUNTRY_DATA,
    COUNTRY_DATA_RELEASE,
    classify,
    client_names,
    country,
    truncate_ip,
)
from app.vocabulary import CLIENTS, DEVICES, IN_APP_BROWSER, OTHER_BROWSER

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.mark.parametrize(
    ("agent", "device", "client"),
    [
        (IPHONE, "mobile", "Safari"),  # iOS Mail opens links in Safari
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Mobile Safari/537.36",
            "mobile",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148",
            "tablet",
            IN_APP_BROWSER,  # a WKWebView: an app opened the link inside itself
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            "tablet",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "desktop",
            "Chrome",  # webmail in Chrome
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 "
            "Thunderbird/115.3.1",
            "desktop",
            "Thunderbird",
        ),
        (
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)",
            "desktop",
            "Outlook",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko)",
            "desktop",
            "Apple Mail",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.0 Safari/605.1.15",
            "desktop",
            "Safari",
        ),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
            "GoogleImageProxy)",
            "other",
            "Gmail image proxy",
        ),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "other",
            "Yahoo Mail proxy",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            "desktop",
            "Edge",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "desktop",
            "Firefox",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            "mobile",
            "Samsung Internet",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
            "mobile",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Version/4.0 Chrome/118.0.0.0 Mobile Safari/537.36",
            "mobile",
            IN_APP_BROWSER,  # Android's WebView, inside an app
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
            "desktop",
            "Opera",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.41.109;]",
            "mobile",
            OTHER_BROWSER,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) Mobile/15E148 Outlook-iOS/723.4027091.prod.iphone (4.2329.0)",
            "mobile",
            "Outlook",
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "other",
            None,
        ),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "other", None),
        ("curl/8.4.0", "other", None),
        ("", "other", None),
        ("\x00\xff garbage ☃", "other", None),
    ],
)
def test_classify(agent: str, device: str, client: str | None) -> None:
    assert classify(agent) == (device, client)
    assert device in DEVICES


@pytest.mark.parametrize(
    ("address", "prefix"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12:34::1", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        (" 10.1.2.3 ", "10.1.2.0/24"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
    ],
)
def test_truncate_ip_never_keeps_the_address(address: str | None, prefix: str | None) -> None:
    assert truncate_ip(address) == prefix


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        # Public networks whose registration has not moved in decades.
        ("8.8.8.0/24", "US"),  # Google's public resolver
        ("1.0.16.0/24", "JP"),  # APNIC's range delegated to Japan
        ("193.0.0.0/24", "NL"),  # the RIPE NCC's own network
        ("2001:67c:2e8::/48", "NL"),  # the RIPE NCC over IPv6
        ("133.11.0.0/24", "JP"),  # the University of Tokyo
        ("200.160.0.0/24", "BR"),  # NIC.br
        # Documentation, private and loopback networks belong to no country.
        ("192.0.2.0/24", None),
        ("198.51.100.0/24", None),
        ("203.0.113.0/24", None),
        ("2001:db8::/48", None),
        ("10.1.2.0/24", None),
        ("127.0.0.0/24", None),
        (None, None),
        ("", None),
    ],
)
def test_country_of_a_stored_network(prefix: str | None, expected: str | None) -> None:
    assert country(prefix) == expected


def test_country_reads_the_network_the_writer_stores() -> None:
    """Whatever truncate_ip keeps, country reads: one address of a network answers for it."""
    assert country(truncate_ip("8.8.8.8")) == "US"
    assert country(truncate_ip("2001:67c:2e8:22::c100:68b")) == "NL"


def test_every_client_name_is_one_reports_know() -> None:
    """The filter and the page list clients from app.vocabulary: a name the writer could
    store outside it would be a segment nobody can choose."""
    assert client_names() == set(CLIENTS)


def test_reports_date_the_country_data_that_is_installed() -> None:
    """Pages, PDFs and the API say which month's registry data placed the clicks: the date
    must belong to the release installed, so upgrading the data means dating it."""
    assert version("iptocc") == COUNTRY_DATA_RELEASE[0]
    assert COUNTRY_DATA.endswith(f"data of {COUNTRY_DATA_RELEASE[1]}")
