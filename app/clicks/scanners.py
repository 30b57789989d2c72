"""What is known about scanners ahead of any click: the security gateways' published
networks (``data/scanner_networks.csv``, each line with its source, fetch date and certainty)
and the user agents of bots, scanners and link previewers (the ``crawler-user-agents``
package's patterns plus ``OWN_SCANNER_AGENTS``).

Data, read once and matched fast; the rules that use it are ``app.clicks.machines``
(``scanner_network``, ``scanner_ua``). docs/machine-clicks.md lists the sources and how to
refresh them.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from importlib import resources
from typing import Literal

Certainty = Literal["certain", "likely"]
NetworkAddress = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- data: the networks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScannerNetwork:
    """One line of a scanner-network file."""

    network: NetworkAddress
    vendor: str
    source: str
    fetched: str  # YYYY-MM-DD
    certainty: Certainty


@dataclass(frozen=True, slots=True)
class NetworkMatch:
    """A stored network that overlaps a listed one. ``whole`` when the listed range holds
    the entire stored network (every address the click may have come from is the vendor's)."""

    entry: ScannerNetwork
    whole: bool


@dataclass(frozen=True)
class NetworkTable:
    """The listed scanner networks, matched against stored (truncated) networks.

    Lookups are cached per stored network: a campaign's clicks come from few networks.
    """

    entries: tuple[ScannerNetwork, ...]
    _cache: dict[str, NetworkMatch | None] = field(default_factory=dict, compare=False, repr=False)

    def match(self, ip_prefix: str | None) -> NetworkMatch | None:
        """The best listed range overlapping ``ip_prefix``: one that holds it whole first,
        then a certain one; None when nothing overlaps or the prefix is unreadable."""
        if not ip_prefix:
            return None
        if ip_prefix in self._cache:
            return self._cache[ip_prefix]
        found: NetworkMatch | None = None
        try:
            stored = ipaddress.ip_network(ip_prefix.strip(), strict=False)
        except ValueError:
            stored = None
        if stored is not None:
            matches = [
                NetworkMatch(e, stored.subnet_of(e.network))  # type: ignore[arg-type]
                for e in self.entries
                if e.network.version == stored.version and e.network.overlaps(stored)
            ]
            matches.sort(key=lambda m: (not m.whole, m.entry.certainty != "certain"))
            found = matches[0] if matches else None
        if len(self._cache) < 65536:
            self._cache[ip_prefix] = found
        return found


def parse_networks(lines: Iterable[str]) -> NetworkTable:
    """A table from the lines of a scanner-network file: CSV with a header row
    (network, vendor, source, fetched, certainty); lines starting with ``#`` are comments.

    ``ValueError`` on a malformed line: a bad shipped file should fail the tests, not
    silently label nothing.
    """
    rows = csv.DictReader(line for line in lines if line.strip() and not line.startswith("#"))
    entries = []
    for row in rows:
        certainty = row["certainty"].strip()
        if certainty not in ("certain", "likely"):
            raise ValueError(f"unknown certainty {certainty!r} for {row['network']}")
        fetched = row["fetched"].strip()
        date.fromisoformat(fetched)  # ValueError unless YYYY-MM-DD
        if not row["source"].strip().startswith("https://"):
            raise ValueError(f"{row['network']} has no https source")
        entries.append(
            ScannerNetwork(
                ipaddress.ip_network(row["network"].strip()),
                row["vendor"].strip(),
                row["source"].strip(),
                fetched,
                "certain" if certainty == "certain" else "likely",
            )
        )
    return NetworkTable(tuple(entries))


@cache
def shipped_networks() -> NetworkTable:
    """The table shipped with Clickmap (``app/clicks/data/scanner_networks.csv``), read once."""
    text = resources.files("app.clicks").joinpath("data/scanner_networks.csv").read_text("utf-8")
    return parse_networks(text.splitlines())


# --- data: the user agents ------------------------------------------------------------------

# Scanner and prober user agents the data package lacks, each with its source. Matched
# without regard to case.
OWN_SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    # Barracuda's link scanner, on Braze's list of filtered bot user agents.
    (
        r"Barracuda Sentinel",
        "https://www.braze.com/docs/user_guide/message_building_by_channel/sms_mms_rcs/bot_click_filtering",
    ),
    # Office checks that a link exists before it hands the link to the browser; the browser's
    # own request follows, so the probe is never the person's click.
    (
        r"Microsoft Office Existence Discovery",
        "http://blogs.msdn.com/b/vsofficedeveloper/archive/2008/03/11/office-existence-discovery-protocol.aspx",
    ),
)


# Patterns per compiled expression. One alternation of all 1,500 patterns is five times
# slower than small groups of them (measured: about 1 ms against 0.2 ms per user agent).
_PATTERNS_PER_GROUP = 16


@cache
def _agent_patterns() -> tuple[re.Pattern[str], ...]:
    """The compiled user-agent patterns: the data package's, in small groups
    (case-sensitive, as its authors write them), then ours (case-insensitive). Compiled once,
    on first use, so importing this module stays cheap."""
    import crawleruseragents

    package = [f"(?:{entry['pattern']})" for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA]
    groups = [
        re.compile("|".join(package[i : i + _PATTERNS_PER_GROUP]))
        for i in range(0, len(package), _PATTERNS_PER_GROUP)
    ]
    own = "|".join(f"(?:{pattern})" for pattern, _source in OWN_SCANNER_AGENTS)
    return (*groups, re.compile(own, re.IGNORECASE))


@lru_cache(maxsize=8192)
def is_scanner_agent(user_agent: str) -> bool:
    """Whether ``user_agent`` names a crawler, scanner, HTTP library or link previewer.

    Cached: a campaign's clicks come from few distinct agents, and an uncached check costs
    about 0.2 ms.
    """
    return bool(user_agent) and any(p.search(user_agent) for p in _agent_patterns())
