"""What a click's request says about the clicker: device class, email client, network,
country.

Parsing a user agent costs about half a millisecond, so it never runs on the redirect path:
the writer classifies clicks in batches, through a cache (a campaign's clicks come from few
distinct agents). Addresses are cut to their network (IPv4 /24, IPv6 /48) before anything
is stored or even spooled, so a full address never reaches disk; the country is looked up
from that network, offline, in the registry data the ``iptocc`` package ships.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from importlib.metadata import version

import iptocc
import ua_parser

from app.vocabulary import IN_APP_BROWSER, OTHER_BROWSER

# Where the countries come from, as reports state it. The data is built into each release
# of the package, so the release dates it; pyproject.toml pins the release this date is
# for, and a test fails if another is installed without the date being updated here.
COUNTRY_DATA_RELEASE = ("3.3.170", "October 2026")
COUNTRY_DATA = (
    f"iptocc {version('iptocc')}, the regional internet registries' data of "
    f"{COUNTRY_DATA_RELEASE[1]}"
)

# Email clients that name themselves in the user agent, first match wins. Image proxies are
# listed because a proxy fetching a link is the mailbox provider, not a person.
_CLIENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"GoogleImageProxy|ggpht\.com", "Gmail image proxy"),
        (r"YahooMailProxy", "Yahoo Mail proxy"),
        (
            r"Microsoft Outlook|ms-office|Microsoft Office/|Outlook-(iOS|Android)|\bOutlook/",
            "Outlook",
        ),
        (r"Thunderbird/", "Thunderbird"),
        (r"\bAirmail\b", "Airmail"),
        (r"\bSpark/", "Spark"),
        (r"SamsungEmail|Samsung Email", "Samsung Email"),
        (r"\bGmail/|com\.google\.android\.gm", "Gmail app"),
        (r"YahooMobileMail|YahooMail/", "Yahoo Mail app"),
        # Apple Mail's web view: WebKit on a Mac without the browser tokens Safari adds.
        (
            r"^Mozilla/5\.0 \(Macintosh;[^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\)$",
            "Apple Mail",
        ),
    )
)
# A click that no email client names opened in a browser: webmail read in that browser, or a
# mail app that handed the link to the phone's browser. Marketers know these by the
# browser's family, so ua-parser's families are folded into the few names they recognise.
_BROWSERS: dict[str, str] = {
    "Chrome": "Chrome",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chromium": "Chrome",
    "Safari": "Safari",
    "Mobile Safari": "Safari",
    "Firefox": "Firefox",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge": "Edge",
    "Edge Mobile": "Edge",
    "Samsung Internet": "Samsung Internet",
    "Opera": "Opera",
    "Opera Mobile": "Opera",
}
# An app's own web view (Android's ``; wv)``, iOS's WKWebView without ``Safari/``): the link
# was opened inside an app that does not name itself.
_WEB_VIEWS = {"Chrome Mobile WebView", "Mobile Safari UI/WKWebView"}

_DESKTOP_OS = {
    "Windows",
    "Mac OS X",
    "Linux",
    "Ubuntu",
    "Fedora",
    "Debian",
    "Chrome OS",
    "FreeBSD",
    "OpenBSD",
    "macOS",
}
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"}


@lru_cache(maxsize=4096)
def classify(user_agent: str) -> tuple[str, str | None]:
    """``(device, client)``: device is one of ``app.vocabulary.DEVICES``; client is the email
    client the agent names, else the browser the link opened in (``_BROWSERS``), an app's
    web view (``IN_APP_BROWSER``) or ``OTHER_BROWSER``; None for no browser at all (a
    crawler, a script, an empty agent)."""
    client = next((name for pattern, name in _CLIENTS if pattern.search(user_agent)), None)
    if not user_agent or client in ("Gmail image proxy", "Yahoo Mail proxy"):
        return "other", client
    parsed = ua_parser.parse(user_agent)
    device = parsed.device
    if client is None:
        client = _browser(parsed, user_agent)
    os_family = parsed.os.family if parsed.os else ""
    described = " ".join(
        part or ""
        for part in (device and device.family, device and device.brand, device and device.model)
    )
    if device is not None and device.family == "Spider":
        return "other", client
    if "iPad" in described or "Tablet" in described or re.search(r"\bTablet\b", user_agent):
        return "tablet", client
    if os_family == "Android" and "Mobile" not in user_agent:
        return "tablet", client  # Android tablets are the ones without "Mobile"
    if os_family in _MOBILE_OS or "iPhone" in described or "Mobile" in user_agent:
        return "mobile", client
    if os_family in _DESKTOP_OS:
        return "desktop", client
    return "other", client


def _browser(parsed: ua_parser.Result, user_agent: str) -> str | None:
    if parsed.device is not None and parsed.device.family == "Spider":
        return None
    family = parsed.user_agent.family if parsed.user_agent else ""
    if family in _WEB_VIEWS or "; wv)" in user_agent:
        return IN_APP_BROWSER
    if family in _BROWSERS:
        return _BROWSERS[family]
    # Anything that says it is a browser engine is some browser; curl and the like are not.
    if user_agent.startswith("Mozilla/") and parsed.os is not None:
        return OTHER_BROWSER
    return None


def client_names() -> set[str]:
    """Every client name ``classify`` can give (``app.vocabulary.CLIENTS`` lists them)."""
    return (
        {name for _pattern, name in _CLIENTS}
        | set(_BROWSERS.values())
        | {
            IN_APP_BROWSER,
            OTHER_BROWSER,
        }
    )


@lru_cache(maxsize=65536)
def country(ip_prefix: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 country a stored network (``truncate_ip``'s ``a.b.c.0/24`` or
    ``x:y:z::/48``) is registered to, or None (private, reserved and documentation ranges,
    unallocated space, no address).

    The lookup reads the network's first address: registries allocate IPv4 in blocks of at
    least a /24 and IPv6 of at least a /48, so every address of a stored network has the
    same country. Cached, since a campaign's clicks come from few networks (mail proxies,
    office and carrier NATs); the writer calls it once per new network.
    """
    if not ip_prefix:
        return None
    found = iptocc.country_code(ip_prefix.partition("/")[0])
    return found if isinstance(found, str) and len(found) == 2 else None


@lru_cache(maxsize=65536)
def truncate_ip(address: str | None) -> str | None:
    """The network an address belongs to (IPv4 /24, IPv6 /48), never the address itself.

    Cached: clicks arrive from a limited set of addresses (mail proxies, office NATs), and
    this runs on the redirect path.
    """
    if not address:
        return None
    octets = address.split(".")
    if len(octets) == 4 and all(o.isdigit() and o.isascii() and int(o) < 256 for o in octets):
        return f"{int(octets[0])}.{int(octets[1])}.{int(octets[2])}.0/24"
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
