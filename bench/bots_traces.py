"""Labelled click traces for measuring the machine-click rules (bench/bots).

Every event says who made it (``actor``: a person or a machine) and what it models
(``behaviour``), so the classifier's labels can be scored against the truth. The traces are
drawn from a seeded ``random.Random``: the same seed gives the same trace, event for event.

Each behaviour is modelled on a documented one; the docstrings below give the source (the
URLs are those collected for docs/machine-clicks.md). Where no source gives a number (how
long people take to click, how many use Outlook for Windows), the number is our assumption
and says so. The rules in ``app/clicks/machines.py`` were not tuned to these traces; a trace
that a rule gets wrong is a finding to report, not a reason to bend the trace.

Times are seconds relative to the recipient's recorded delivery (negative: before it).
Nothing here imports Flask or touches a database: the bench replays the events.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PERSON = "person"
MACHINE = "machine"
HONEYPOT = -1  # ``Event.link`` of a request for the email's hidden honeypot link

# -- user agents ---------------------------------------------------------------------------
# People's browsers and mail clients, in the public forms their vendors' and the device tests'
# lists give (the forms docs/machine-clicks.md's false-positive tests name).
PEOPLE_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
)
# Outlook for Windows' probe before it hands the link to the browser.
OUTLOOK_PROBE_AGENT = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
# What gateways send while sweeping: a browser's user agent ("human-looking",
# https://github.com/warmbly/warmbly/issues/410).
GATEWAY_AGENTS: tuple[str, ...] = PEOPLE_AGENTS[:3]
HEADLESS_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
BARRACUDA_AGENT = "Barracuda Sentinel (EE)"
PREVIEW_AGENTS: tuple[str, ...] = (
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "WhatsApp/2.24.23.78 A",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) SkypeUriPreview Preview/0.5",
    "TelegramBot (like TwitterBot)",
)
PREFETCH_VALUES: tuple[tuple[str, str], ...] = (
    ("Sec-Purpose", "prefetch"),
    ("Sec-Purpose", "prefetch;prerender"),
    ("Sec-Purpose", "prefetch;anonymous-client-ip"),
    ("Purpose", "prefetch"),
)

# -- networks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gateway:
    """A security gateway: where its requests come from and how it treats links.

    ``listed``: whether app/clicks/data/scanner_networks.csv holds its range (the network
    rule can only know those). ``checks_at_click``: it rewrites links and fetches the target
    when the person clicks (Mimecast URL Protect, Proofpoint URL Defense:
    https://mimecastsupport.zendesk.com/hc/en-us/articles/34000676323603,
    https://support.vircom.com/support/solutions/articles/48000961469). ``isolates``: a
    person may browse through its network (Proofpoint browser isolation, Mimecast web
    security: https://answers.securityscientist.net/q/25068/).
    """

    name: str
    networks: tuple[str, ...]  # /24s the gateway's scanners use
    listed: bool
    agents: tuple[str, ...] = GATEWAY_AGENTS
    checks_at_click: bool = False
    isolates: bool = False


def listed_gateway(networks: Sequence[str]) -> Gateway:
    """Microsoft Exchange Online Protection, where Safe Links scans run: /24s inside the
    ranges the shipped CSV lists (``networks``: its IPv4 ranges; warmbly's observation that
    scans leave from them, `warmbly/warmbly` `tracking/scanner-networks.txt`)."""
    chosen = []
    for n, text in enumerate(networks):
        net = ipaddress.ip_network(text)
        base = int(net.network_address) + (n * 7 + 3) * 256
        chosen.append(f"{ipaddress.ip_address(base)}/24")
    return Gateway("eop_safe_links", tuple(chosen), listed=True)


# Gateways whose ranges the shipped list does not hold (research.md §1.5: the networks'
# owners as geoip2fast names them; Barracuda's from its published egress list, copied into
# warmbly's catalogue). The network rule cannot know these.
UNLISTED_GATEWAYS: tuple[Gateway, ...] = (
    Gateway(
        "mimecast",
        ("205.139.110.0/24", "207.211.30.0/24"),
        listed=False,
        checks_at_click=True,
        isolates=True,
    ),
    Gateway(
        "proofpoint",
        ("148.163.128.0/24", "67.231.144.0/24"),
        listed=False,
        checks_at_click=True,
        isolates=True,
    ),
    Gateway(
        "barracuda",
        ("209.222.82.0/24",),
        listed=False,
        agents=(BARRACUDA_AGENT, *GATEWAY_AGENTS),
    ),
    Gateway("cisco_ironport", ("68.232.128.0/24",), listed=False),
)
# Microsoft's cloud outside the listed mail ranges, where a Safe Links detonation arrived
# from (AS8075, https://github.com/emdash-cms/emdash/issues/3298). Any unlisted /24 serves:
# the rules only ask whether a network is listed.
MICROSOFT_CLOUD = ("20.42.65.0/24", "20.189.173.0/24")
# Chat apps' preview fetchers run in their owners' clouds (unlisted).
PREVIEW_CLOUDS = ("54.209.60.0/24", "3.88.172.0/24", "157.240.22.0/24")
# People at home and on mobile networks, and office NATs: public ranges no gateway owns.
HOME_NETWORKS = ("81.", "86.", "92.", "176.", "24.", "73.", "2a02:", "2600:")


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One request to a tracked link, as the redirector would see it, with its truth.

    ``link`` is the tracked link's index in document order (``HONEYPOT`` for the hidden
    link); ``at`` is seconds after the recipient's delivery. ``purpose`` is the header pair
    (name, value) of a speculative request, if any.
    """

    recipient: int
    link: int
    at: float
    method: str
    user_agent: str
    ip: str
    actor: str  # PERSON | MACHINE: the truth
    behaviour: str
    purpose: tuple[str, str] | None = None

    @property
    def human(self) -> bool:
        return self.actor == PERSON


@dataclass
class Trace:
    """A named trace: its events (in time order per recipient) over ``recipients``
    recipients of one email with ``links`` tracked links (plus a honeypot if ``honeypot``)."""

    name: str
    links: int
    recipients: int
    honeypot: bool
    events: list[Event] = field(default_factory=list)

    def share_machine(self) -> float:
        return sum(not e.human for e in self.events) / max(1, len(self.events))


# -- the behaviours --------------------------------------------------------------------------


class Builder:
    """Draws events for one trace. Every method documents the behaviour it models."""

    def __init__(
        self,
        seed: int,
        links: int,
        honeypot: bool,
        honeypot_index: int,
        listed_networks: Sequence[str],
    ) -> None:
        self.rng = random.Random(seed)
        self.links = links
        self.honeypot = honeypot
        # Where the hidden link sits among the links in document order (0: before the first).
        self.honeypot_index = max(0, min(links, honeypot_index))
        self.listed = listed_gateway(listed_networks)
        self.gateways = (self.listed, *UNLISTED_GATEWAYS)
        self.events: list[Event] = []
        # A campaign's clicks favour its first links (hero, first articles): a Zipf-like
        # weight per position. An assumption: click maps show it, no source gives numbers.
        self.weights = [1.0 / (n + 1) ** 0.8 for n in range(links)]

    # -- addresses --------------------------------------------------------------------

    def address_in(self, network: str) -> str:
        net = ipaddress.ip_network(network)
        host = self.rng.randrange(1, min(net.num_addresses - 1, 254))
        return str(net.network_address + host)

    def home_address(self) -> str:
        prefix = self.rng.choice(HOME_NETWORKS)
        if prefix.endswith(":"):
            groups = ":".join(f"{self.rng.randrange(0x10000):x}" for _ in range(7))
            return prefix + groups
        rest = ".".join(str(self.rng.randrange(1, 255)) for _ in range(3))
        return prefix + rest

    # -- people -------------------------------------------------------------------------

    def person_delay(self) -> float:
        """Seconds from delivery to a person's first click: log-normal, median 2 h, sigma
        1.8 (minutes to days, heavy tail). An assumption: research.md §6 found no published
        distribution; the rules look at delays under a minute only, so the tail's shape does
        not change a label."""
        return 7200.0 * math.exp(self.rng.gauss(0.0, 1.8))

    def pick_links(self, count: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < min(count, self.links):
            link = self.rng.choices(range(self.links), self.weights)[0]
            if link not in chosen:
                chosen.append(link)
        return chosen

    def person(
        self,
        recipient: int,
        *,
        start: float | None = None,
        count: int | None = None,
        gap: Callable[[], float] | None = None,
        ip: str | None = None,
        outlook_share: float = 0.0,
        behaviour: str = "person",
    ) -> list[float]:
        """A person's clicks: one to three links (70/20/10%, an assumption), each after
        reading the page the last one opened (log-normal gap, median 1 min), from one
        browser or mail app and one network.

        With probability ``outlook_share`` the person reads in Outlook for Windows, which
        sends ``HEAD`` before the browser's ``GET`` ("Outlook performs an HEAD request to
        the URL. Then the browser performs the GET request",
        https://github.com/cesargb/laravel-magiclink/issues/96): the HEAD is the mail
        client's, a machine event; the GET is the person's. Returns the click times.
        """
        rng = self.rng
        at = self.person_delay() if start is None else start
        n = count if count is not None else rng.choices((1, 2, 3), (0.7, 0.2, 0.1))[0]
        agent = rng.choice(PEOPLE_AGENTS)
        address = ip or self.home_address()
        outlook = rng.random() < outlook_share
        times = []
        for i, link in enumerate(self.pick_links(n)):
            if i:
                at += gap() if gap else 60.0 * math.exp(rng.gauss(0.0, 1.0))
            if outlook:
                self.add(recipient, link, at, "HEAD", OUTLOOK_PROBE_AGENT, address,
                         MACHINE, "outlook_head_probe")  # fmt: skip
                at += rng.uniform(0.2, 1.5)
            self.add(recipient, link, at, "GET", agent, address, PERSON, behaviour)
            times.append(at)
        return times

    def fast_person(self, recipient: int) -> list[float]:
        """A person who clicks within seconds of delivery: people open at once on push
        notifications, which makes timing alone unreliable
        (https://datainference.ai/spam_filter_detection.html). Drawn 2 to 20 s after
        delivery: no source gives the fastest a person gets from the notification to a
        link; 2 s is our guess."""
        return self.person(recipient, start=self.rng.uniform(2.0, 20.0), behaviour="fast_person")

    def power_user(self, recipient: int) -> list[float]:
        """A person who opens several links in tabs over tens of seconds: 4 to 12 links,
        a few seconds apart (log-normal gap, median 3 s). An assumption (no source counts
        tabs); customerminds' rule 1 exists because people clicking many links is
        ordinary (https://support.customerminds.com/hc/en-us/articles/10837243653533)."""
        count = self.rng.randint(4, min(12, self.links))
        return self.person(
            recipient,
            count=count,
            gap=lambda: 3.0 * math.exp(self.rng.gauss(0.0, 0.6)),
            behaviour="power_user",
        )

    def person_behind(self, recipient: int, gateway: Gateway, listed: bool) -> list[float]:
        """A person whose clicks leave through a gateway's network, from the same /24 as
        its scanners: Proofpoint and Mimecast isolate risky links with a person on the
        other end (https://answers.securityscientist.net/q/25068/; warmbly keeps their
        networks `probable` for that reason, `warmbly/warmbly`
        `tracking/scanner-networks.txt`). For a listed range (``listed``) this is a stress
        case: no source shows a person browsing from Exchange Online Protection's mail
        ranges, which the shipped list calls certain; it shows what a wrong listing
        would cost."""
        network = self.rng.choice(gateway.networks)
        return self.person(
            recipient,
            ip=self.address_in(network),
            behaviour="person_on_listed_gateway_net" if listed else "person_on_gateway_net",
        )

    # -- machines -----------------------------------------------------------------------

    def sweep(
        self,
        recipient: int,
        gateway: Gateway,
        *,
        head_first: bool = False,
        before_delivery: bool = False,
    ) -> None:
        """A gateway requesting every link of the email as it arrives: Safe Links scans
        URLs "prior to message delivery" (`MicrosoftDocs/defender-docs`
        `defender-office-365/safe-links-about.md`); scanners walk the links in document
        order, about a second apart (a Mautic user, mautic/mautic#9798), the hidden link
        included (Spotler: https://mailplus.spotler.help/hc/en-us/articles/360011295619).

        Starts 1 to 3 s after delivery (peers cut bot clicks at 1 to 5 s:
        https://www.suped.com/learn/email-deliverability/how-to-identify-and-filter-out-email-bot-clicks-from-newsletter-reports),
        or, with ``before_delivery``, ends 3 to 30 s before it: Safe Links' "Wait for URL
        scanning to complete before delivering the message" holds the mail until the scan
        ends (https://kulea.freshdesk.com/support/solutions/articles/17000117714 flags such
        events). ``head_first``: each link is asked with ``HEAD`` and then ``GET``
        ("HEAD requests make up a significant portion of all click-tracking traffic",
        https://github.com/civicrm/civicrm-core/pull/35328).
        """
        rng = self.rng
        order: list[int] = list(range(self.links))
        if self.honeypot:
            order.insert(self.honeypot_index, HONEYPOT)
        steps = [rng.uniform(0.4, 1.6) for _ in order]
        at = -sum(steps) - rng.uniform(3.0, 30.0) if before_delivery else rng.uniform(1.0, 3.0)
        address = self.address_in(rng.choice(gateway.networks))
        agent = rng.choice(gateway.agents)
        name = f"sweep_{gateway.name}" + ("_head_get" if head_first else "")
        if before_delivery:
            name += "_before_delivery"
        for link, step in zip(order, steps, strict=True):
            if head_first:
                self.add(recipient, link, at, "HEAD", agent, address, MACHINE, name)
                at += rng.uniform(0.05, 0.3)
            self.add(recipient, link, at, "GET", agent, address, MACHINE, name)
            at += step

    def rescan(self, recipient: int) -> None:
        """Safe Links coming back later: it detonates URLs without a valid reputation
        "asynchronously in the background" (safe-links-about.md); one such detonation came
        22 s after sending, as headless Chrome from Microsoft's cloud, outside the listed
        mail ranges (https://github.com/emdash-cms/emdash/issues/3298; its first, mangled
        GET fails the token check and never becomes a click). One or two links, 20 s to
        1 h after delivery (log-uniform). Only Safe Links: no source describes another
        gateway's later visit, apart from the click-time checks below."""
        rng = self.rng
        at = 20.0 * math.exp(rng.uniform(0.0, math.log(180.0)))
        address = self.address_in(rng.choice(MICROSOFT_CLOUD))
        for link in self.pick_links(rng.choice((1, 2))):
            self.add(recipient, link, at, "GET", HEADLESS_AGENT, address, MACHINE, "rescan")
            at += rng.uniform(0.5, 2.0)

    def click_time_check(self, recipient: int, gateway: Gateway, person_times: list[float],
                         links: list[int]) -> None:  # fmt: skip
        """A gateway that rewrote the links fetching the target when the person clicks
        (Mimecast URL Protect "checks at click time",
        https://mimecastsupport.zendesk.com/hc/en-us/articles/34000676323603; Proofpoint
        "sandboxes at click"). Modelled on a reported second click 12 s after a person's,
        from another address and system with the same Chrome version
        (https://github.com/resend/resend-node/issues/901): one GET 1 to 15 s after each
        of the person's clicks, from the gateway's network, with a browser's user agent."""
        rng = self.rng
        address = self.address_in(rng.choice(gateway.networks))
        agent = rng.choice(GATEWAY_AGENTS)
        for at, link in zip(person_times, links, strict=True):
            self.add(recipient, link, at + rng.uniform(1.0, 15.0), "GET", agent, address,
                     MACHINE, f"click_time_check_{gateway.name}")  # fmt: skip

    def preview(self, recipient: int, after: float) -> None:
        """A chat app drawing a preview of a link the person shared: Slack, Teams, WhatsApp,
        Discord... fetch it with their own user agents; Mailchimp counts "link preview
        generators" as bot activity
        (https://quickbooks.intuit.com/learn-support/en-us/help-article/other-articles/bot-activity-bot-filtering/L76xqczed_US_en_US).
        One link, minutes to hours after the person's click, from the app's cloud."""
        rng = self.rng
        at = after + 60.0 * math.exp(rng.uniform(0.0, math.log(240.0)))
        link = self.pick_links(1)[0]
        address = self.address_in(rng.choice(PREVIEW_CLOUDS))
        self.add(recipient, link, at, "GET", rng.choice(PREVIEW_AGENTS), address, MACHINE,
                 "link_preview")  # fmt: skip

    def prefetch(self, recipient: int, at: float) -> None:
        """A speculative request: a browser or webmail prefetching a link before anyone
        chose it, with ``Sec-Purpose: prefetch`` (or ``prefetch;prerender``, Chromium's
        ``prefetch;anonymous-client-ip``, legacy ``Purpose: prefetch``:
        https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose). From the
        person's network and browser, at a person's time."""
        rng = self.rng
        self.add(recipient, self.pick_links(1)[0], at, "GET", rng.choice(PEOPLE_AGENTS[:3]),
                 self.home_address(), MACHINE, "prefetch", rng.choice(PREFETCH_VALUES))  # fmt: skip

    # -- plumbing -----------------------------------------------------------------------

    def add(
        self,
        recipient: int,
        link: int,
        at: float,
        method: str,
        agent: str,
        ip: str,
        actor: str,
        behaviour: str,
        purpose: tuple[str, str] | None = None,
    ) -> None:
        self.events.append(Event(recipient, link, at, method, agent, ip, actor, behaviour, purpose))

    def links_of(self, recipient: int, times: list[float]) -> list[int]:
        found = {e.at: e.link for e in self.events if e.recipient == recipient and e.human}
        return [found[t] for t in times]

    def trace(self, name: str, recipients: int) -> Trace:
        events = sorted(self.events, key=lambda e: (e.recipient, e.at))
        return Trace(name, self.links, recipients, self.honeypot, events)


# -- the traces ------------------------------------------------------------------------------

TRACES = (
    "scanners",
    "people",
    "mixed",
    "hard_fast_person",
    "hard_power_user",
    "hard_person_on_gateway_net",
    "hard_person_on_listed_gateway_net",
    "hard_click_time_check",
)

# Shares of all clicks that machines make: about 65% over 1.8 bn emails (Omeda, Q2 2023,
# https://www.amediaoperator.com/newsletter/bots-account-for-the-majority-of-clicks-in-email/);
# about 75% in B2B (https://blog.omnivery.com/blog/nhi-is-getting-worse, a vendor's claim).
MACHINE_SHARE = 0.65
# Share of recipients who click at all. An assumption (a few percent is the usual order of
# a campaign's click rate; no source in research.md gives one for B2B).
CLICKERS = 0.08
# Share of people reading in Outlook for Windows (which probes with HEAD). An assumption.
OUTLOOK_SHARE = 0.2


def build(
    name: str,
    seed: int,
    *,
    links: int = 20,
    recipients: int = 3000,
    honeypot: bool = False,
    honeypot_index: int = 0,
    listed_networks: Sequence[str] = ("40.107.0.0/16",),
    machine_share: float = MACHINE_SHARE,
) -> Trace:
    """The trace ``name`` (one of ``TRACES``) for ``seed``: the same arguments give the same
    events. ``listed_networks`` are the shipped list's IPv4 ranges (the bench passes them,
    so this module needs no app import).

    - ``scanners``: every recipient's gateway at work (sweeps with and without HEAD, before
      and after delivery, re-scans, click-time checks) plus link previews and prefetches; no
      person's click.
    - ``people``: every recipient clicks as a person (no probes, no previews).
    - ``mixed``: a campaign: ``CLICKERS`` of the recipients click; gateways sweep some
      recipients' mail, chosen until machines make ``machine_share`` of all clicks.
    - ``hard_*``: people who look like machines (fast, many links, on a gateway's network),
      each with the gateway's own sweep of the same mail where the case implies one, and
      click-time checks (machines that look like the person).
    """
    b = Builder(seed, links, honeypot, honeypot_index, listed_networks)
    rng = b.rng
    unlisted = UNLISTED_GATEWAYS
    if name == "scanners":
        for r in range(recipients):
            gateway = rng.choice(b.gateways)
            kind = rng.random()
            if kind < 0.55:
                b.sweep(r, gateway, head_first=rng.random() < 0.3,
                        before_delivery=gateway.listed and rng.random() < 0.5)  # fmt: skip
                if gateway.listed and rng.random() < 0.3:
                    b.rescan(r)
            elif kind < 0.7:
                b.rescan(r)
            elif kind < 0.8:
                checker = rng.choice([g for g in unlisted if g.checks_at_click])
                b.click_time_check(r, checker, [b.person_delay()], b.pick_links(1))
            elif kind < 0.9:
                b.preview(r, b.person_delay())
            else:
                b.prefetch(r, b.person_delay())
    elif name == "people":
        for r in range(recipients):
            b.person(r)
    elif name == "hard_fast_person":
        for r in range(recipients):
            b.fast_person(r)
    elif name == "hard_power_user":
        for r in range(recipients):
            b.power_user(r)
    elif name in ("hard_person_on_gateway_net", "hard_person_on_listed_gateway_net"):
        listed = name == "hard_person_on_listed_gateway_net"
        for r in range(recipients):
            gateway = b.listed if listed else rng.choice([g for g in unlisted if g.isolates])
            b.sweep(r, gateway)
            b.person_behind(r, gateway, listed)
    elif name == "hard_click_time_check":
        for r in range(recipients):
            gateway = rng.choice([g for g in unlisted if g.checks_at_click])
            times = b.person(r)
            b.click_time_check(r, gateway, times, b.links_of(r, times))
    elif name == "mixed":
        _mixed(b, recipients, machine_share)
    else:
        raise ValueError(f"unknown trace {name!r}; one of {', '.join(TRACES)}")
    return b.trace(name, recipients)


def _mixed(b: Builder, recipients: int, machine_share: float) -> None:
    """People first, then gateways, recipient by recipient, until machines make
    ``machine_share`` of the clicks. People's hard cases at small shares (assumptions):
    2% click within seconds, 5% open many tabs, 5% are behind a gateway that isolates and
    checks links at click time (Mimecast, Proofpoint): they click through its network, and
    it fetches each link they click. A clicker shares a link in chat 5% of the time (a preview) and
    has a link prefetched 3% of the time."""
    rng = b.rng
    gateway_of: dict[int, Gateway] = {}
    for r in range(recipients):
        if rng.random() >= CLICKERS:
            continue
        kind = rng.random()
        if kind < 0.02:
            times = b.fast_person(r)
        elif kind < 0.07:
            times = b.power_user(r)
        elif kind < 0.12:
            gateway = rng.choice([g for g in UNLISTED_GATEWAYS if g.isolates])
            gateway_of[r] = gateway
            times = b.person_behind(r, gateway, listed=False)
            # Their gateway rewrote the links and fetches each at the person's click.
            b.click_time_check(r, gateway, times, b.links_of(r, times))
        else:
            times = b.person(r, outlook_share=OUTLOOK_SHARE)
        if rng.random() < 0.05:
            b.preview(r, times[-1])
        if rng.random() < 0.03:
            b.prefetch(r, times[0] - rng.uniform(1.0, 30.0))
    people = sum(e.human for e in b.events)
    wanted = machine_share / (1.0 - machine_share) * people
    order = list(range(recipients))
    rng.shuffle(order)
    for r in order:
        if len(b.events) - people >= wanted:
            break
        gateway = gateway_of.get(r) or rng.choice(b.gateways)
        b.sweep(r, gateway, head_first=rng.random() < 0.2,
                before_delivery=gateway.listed and rng.random() < 0.5)  # fmt: skip
        if gateway.listed and rng.random() < 0.2:
            b.rescan(r)
