"""Device classes, email clients and network prefixes from a click's request."""

from __future__ import annotations

import pytest

from app.clicks.devices import classify, truncate_ip
from app.vocabulary import DEVICES

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.mark.parametrize(
    ("agent", "device", "client"),
    [
        (IPHONE, "mobile", None),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Mobile Safari/537.36",
            "mobile",
            None,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148",
            "tablet",
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120 Safari/537.36",
            "tablet",
            None,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "desktop",
            None,
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
            None,
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
