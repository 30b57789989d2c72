"""Which clicks a machine made: named rules over what a click's request said and when.

Security gateways (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda, Cisco) and
link previewers request every link of the mail they see; counted as people, they inflate click
rates and paint the whole heatmap. Every click gets a ``Verdict``: ``human`` or ``machine``,
the names of the rules that fired and a certainty (``certain`` or ``likely``).

The rules are pure functions of a ``ClickFacts`` (one click, as stored, plus its delivery
time), or of one recipient's ordered clicks on one email for the rules that need the sequence
(``sweep``, ``honeypot``). They run off the redirect path, in the writer: the redirector never
changes its answer for a suspected machine (a gateway that gets no redirect may hold or block
the mail, and Mimecast throttles a link after 50 clicks in 5 s). No Flask, no database.

The data the network and user-agent rules match against is ``app.clicks.scanners``.

Each rule returns a ``Finding`` or None. A finding is *decisive* when it may label a click on
its own; a non-decisive one (a network that also carries people) only backs another signal.
docs/machine-clicks.md gives every rule's source, threshold and known false positives.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from app.clicks.scanners import Certainty, NetworkTable, is_scanner_agent, shipped_networks

Label = Literal["human", "machine"]

# The reason names a verdict can carry, one per rule; stable, since they are stored.
HEAD = "head"
PREFETCH = "prefetch"
SCANNER_UA = "scanner_ua"
SCANNER_NETWORK = "scanner_network"
BEFORE_DELIVERY = "before_delivery"
TOO_SOON = "too_soon"
SWEEP = "sweep"
HONEYPOT = "honeypot"
ECHO = "echo"
REASONS: tuple[str, ...] = (
    HEAD,
    PREFETCH,
    SCANNER_UA,
    SCANNER_NETWORK,
    BEFORE_DELIVERY,
    TOO_SOON,
    SWEEP,
    HONEYPOT,
    ECHO,
)


def stored_reasons(joined: str) -> tuple[str, ...]:
    """The reason names of a click as ``click.reasons`` stores them (comma-separated, ''
    for a human)."""
    return tuple(reason for reason in joined.split(",") if reason)


@dataclass(frozen=True, slots=True)
class ClickFacts:
    """What the rules may know about one click: the stored click plus its delivery.

    ``ip_prefix`` is the stored, truncated network (IPv4 /24, IPv6 /48), never an address.
    ``purpose`` is the value of the request's ``Sec-Purpose`` or ``Purpose`` header, if any.
    ``delivered_at`` is when the sender recorded the email's delivery to this recipient.
    ``honeypot`` is true for a click on the email's hidden honeypot link.
    """

    clicked_at: datetime  # aware, UTC
    method: str
    user_agent: str
    ip_prefix: str | None
    purpose: str | None
    recipient_id: int
    placement_id: int
    delivered_at: datetime | None = None
    honeypot: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's evidence that a machine made a click.

    ``decisive`` findings may label a click alone; the others only back a decisive one or
    widen the delivery window (``Thresholds.corroborated_window_seconds``).
    """

    reason: str
    certainty: Certainty
    decisive: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    """A click's label, the rules behind it (in ``REASONS`` order) and how sure they are.

    A human verdict has no reasons and no certainty: "human" means no rule fired.
    """

    label: Label
    reasons: tuple[str, ...] = ()
    certainty: Certainty | None = None


HUMAN = Verdict("human")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The rules' settings. The defaults are the safe side of every published figure:
    a person is never labelled by timing alone unless no person could have been that fast.
    """

    # ``too_soon``: a click this soon after delivery is a machine (likely). Peers use 1-5 s
    # after *send*; after *delivery* a person still has to get, open and read the email.
    # A click up to ``delivery_skew_seconds`` before delivery counts as at delivery. 0: off.
    too_soon_seconds: float = 1.0
    # ``before_delivery``: how far a click may precede the recorded delivery before it counts
    # (the sender's clock and ours differ a little).
    delivery_skew_seconds: float = 2.0
    # A non-decisive network match turns into a machine (likely) when the click is this
    # soon after delivery: gateways scan at delivery, a person behind the same network
    # clicks minutes later.
    corroborated_window_seconds: float = 60.0
    # ``sweep`` and ``honeypot``: clicks at most this far apart belong to one burst.
    sweep_gap_seconds: float = 5.0
    # ``sweep``: a burst is a sweep when it covers at least this share of the email's
    # tracked links ...
    sweep_share: float = 0.8
    # ... and at least this many of them (an email with fewer links is never swept).
    sweep_min_links: int = 3
    # ``echo``: a second request for a link the recipient just followed, this soon and from
    # another user agent, is the gateway checking it at the click (12 s seen). 0: off.
    echo_seconds: float = 30.0


DEFAULT_THRESHOLDS = Thresholds()


# --- the rules: one click -------------------------------------------------------------------


def head(facts: ClickFacts) -> Finding | None:
    """A ``HEAD`` request: no browser navigates with HEAD, link checkers and Outlook's probe
    before the browser's GET do (https://github.com/cesargb/laravel-magiclink/issues/96;
    CiviCRM discards them: https://github.com/civicrm/civicrm-core/pull/35328). Certain."""
    return Finding(HEAD, "certain") if facts.method.upper() == "HEAD" else None


def prefetch(facts: ClickFacts) -> Finding | None:
    """A speculative request: ``Sec-Purpose: prefetch`` (and ``prefetch;prerender``) or
    Chrome's legacy ``Purpose: prefetch``, sent before anyone chose to follow the link
    (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose). Certain."""
    value = (facts.purpose or "").lower()
    return Finding(PREFETCH, "certain") if "prefetch" in value or "prerender" in value else None


def scanner_ua(facts: ClickFacts) -> Finding | None:
    """A user agent that says it is a bot, scanner, HTTP library or link previewer
    (Slackbot, Twitterbot, facebookexternalhit, WhatsApp, Discordbot, SkypeUriPreview,
    LinkedInBot, BingPreview, MicrosoftPreview, HeadlessChrome, python-requests, curl ...):
    the patterns of https://github.com/monperrus/crawler-user-agents plus
    ``OWN_SCANNER_AGENTS``. Certain: a person's browser never sends these."""
    return Finding(SCANNER_UA, "certain") if is_scanner_agent(facts.user_agent) else None


def scanner_network(facts: ClickFacts, networks: NetworkTable | None = None) -> Finding | None:
    """A click from a security gateway's published network (``scanner_networks.csv``:
    Microsoft 365 endpoint set 10 at https://endpoints.office.com/endpoints/worldwide,
    Barracuda's ranges at https://campus.barracuda.com/product/essentials/doc/78810332/).

    Decisive and certain only when a ``certain`` range holds the whole stored network; a
    ``likely`` range, or one narrower than the stored /24 or /48 (other tenants share the
    rest), only backs another signal.
    """
    match = (networks or shipped_networks()).match(facts.ip_prefix)
    if match is None:
        return None
    if match.whole and match.entry.certainty == "certain":
        return Finding(SCANNER_NETWORK, "certain")
    return Finding(SCANNER_NETWORK, "likely", decisive=False)


def _since_delivery(facts: ClickFacts) -> timedelta | None:
    return None if facts.delivered_at is None else facts.clicked_at - facts.delivered_at


def before_delivery(
    facts: ClickFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A click before the email's delivery was recorded (by more than the allowed clock
    skew): Safe Links can hold a message until its scan ends, so the scan lands before the
    delivered event (https://kulea.freshdesk.com/support/solutions/articles/17000117714).
    Likely, not certain: a sender that records deliveries late would move real clicks here.
    """
    since = _since_delivery(facts)
    if since is None or since >= -timedelta(seconds=thresholds.delivery_skew_seconds):
        return None
    return Finding(BEFORE_DELIVERY, "likely")


def too_soon(facts: ClickFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Finding | None:
    """A click within ``too_soon_seconds`` after delivery, faster than a person can get,
    open and read an email (https://www.suped.com/learn/email-deliverability/how-to-identify-and-filter-out-email-bot-clicks-from-newsletter-reports:
    under 1 s of delivery). Likely: timing alone is unreliable
    (https://datainference.ai/spam_filter_detection.html), hence the tight default.
    """
    since = _since_delivery(facts)
    if since is None or thresholds.too_soon_seconds <= 0:
        return None
    if since < -timedelta(seconds=thresholds.delivery_skew_seconds):
        return None  # before delivery is the other rule's
    if since > timedelta(seconds=thresholds.too_soon_seconds):
        return None
    return Finding(TOO_SOON, "likely")


# --- the rules: one recipient's clicks on one email -----------------------------------------


def _bursts(clicks: Sequence[ClickFacts], gap_seconds: float) -> list[list[int]]:
    """Indexes of ``clicks`` grouped into bursts, recipient by recipient: in time order, a
    click joins the previous burst when it is the same recipient's and came at most
    ``gap_seconds`` after that burst's last click."""
    order = sorted(range(len(clicks)), key=lambda i: (clicks[i].recipient_id, clicks[i].clicked_at))
    gap = timedelta(seconds=gap_seconds)
    bursts: list[list[int]] = []
    for i in order:
        last = clicks[bursts[-1][-1]] if bursts else None
        if (
            last is not None
            and last.recipient_id == clicks[i].recipient_id
            and clicks[i].clicked_at - last.clicked_at <= gap
        ):
            bursts[-1].append(i)
        else:
            bursts.append([i])
    return bursts


def sweep(
    clicks: Sequence[ClickFacts],
    link_count: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding | None]:
    """The clicks on one email (any order, any recipients), each recipient's judged
    together: per click, a ``sweep`` finding or None.

    A sweep is a burst of clicks (each at most ``sweep_gap_seconds`` after the previous)
    covering most of the email's ``link_count`` tracked links (``sweep_share``, and at
    least ``sweep_min_links``). Only the first sweep counts, and only its first
    ``link_count`` navigations (HEAD and prefetch requests aside): a gateway scans once, at
    delivery, so a person's later clicks, even quick ones, stay human (customerminds' rules
    1 and 2: https://support.customerminds.com/hc/en-us/articles/10837243653533).
    Likely: a person opening every link in tabs would look the same.
    """
    findings: list[Finding | None] = [None] * len(clicks)
    needed = max(thresholds.sweep_min_links, math.ceil(thresholds.sweep_share * link_count))
    if link_count < thresholds.sweep_min_links:
        return findings
    swept: set[int] = set()  # recipients whose first sweep is found
    for burst in _bursts(clicks, thresholds.sweep_gap_seconds):
        recipient = clicks[burst[0]].recipient_id
        links = {clicks[i].placement_id for i in burst if not clicks[i].honeypot}
        if recipient not in swept and len(links) >= needed:
            swept.add(recipient)
            navigations = 0
            for i in burst:
                if navigations == link_count:
                    break
                findings[i] = Finding(SWEEP, "likely")
                # HEAD and prefetch requests are machines by their own rules and come in
                # pairs with a GET; only navigations use up the sweep's share of clicks.
                if head(clicks[i]) is None and prefetch(clicks[i]) is None:
                    navigations += 1
    return findings


def honeypot(
    clicks: Sequence[ClickFacts], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[Finding | None]:
    """The clicks on one email (any order, any recipients): the burst of a recipient's
    clicks holding a click on the hidden honeypot link is a machine, certain. Nobody can
    see the link, so whatever clicked it was walking the links
    (https://mailplus.spotler.help/hc/en-us/articles/360011295619: a bot "with 100%
    certainty"); the clicks around it, as close as a sweep's, are the same walk.
    """
    findings: list[Finding | None] = [None] * len(clicks)
    for burst in _bursts(clicks, thresholds.sweep_gap_seconds):
        if any(clicks[i].honeypot for i in burst):
            for i in burst:
                findings[i] = Finding(HONEYPOT, "certain")
    return findings


def _navigation(facts: ClickFacts) -> bool:
    """A request that follows the link (not a HEAD probe, not a prefetch)."""
    return head(facts) is None and prefetch(facts) is None


def echo(
    clicks: Sequence[ClickFacts],
    human: Sequence[bool],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding | None]:
    """The clicks on one email (any order, any recipients) and whether the other rules
    left each human: per click, an ``echo`` finding or None.

    A navigation is an echo when the same recipient followed the same link, at most
    ``echo_seconds`` earlier, from another user agent, and that earlier click was judged
    human. That is a gateway which rewrote the link checking the target when the person
    clicks (Mimecast URL Protect "checks at click time":
    https://mimecastsupport.zendesk.com/hc/en-us/articles/34000676323603; a second click 12 s
    after a person's, from another address and system:
    https://github.com/resend/resend-node/issues/901). A person following a link again
    within seconds does it from the same browser. Likely. Which of the two requests is the
    gateway's cannot be told; the later is labelled, so the link counts the person's click
    and the person once either way. An earlier machine click (a sweep at delivery) never
    makes a fast person's click an echo.
    """
    findings: list[Finding | None] = [None] * len(clicks)
    if thresholds.echo_seconds <= 0:
        return findings
    window = timedelta(seconds=thresholds.echo_seconds)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, facts in enumerate(clicks):
        if human[i] and _navigation(facts):
            groups.setdefault((facts.recipient_id, facts.placement_id), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: clicks[i].clicked_at)
        kept: list[int] = []  # the human navigations so far
        for j in members:
            later = clicks[j]
            if any(
                clicks[i].user_agent != later.user_agent
                and later.clicked_at - clicks[i].clicked_at <= window
                for i in kept
            ):
                findings[j] = Finding(ECHO, "likely")
            else:
                kept.append(j)
    return findings


# --- combining ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What ``classify`` needs beyond the click: settings, the network table (None: the
    shipped one) and what the sequence rules (``sweep``, ``honeypot``) found for this click.
    """

    thresholds: Thresholds = DEFAULT_THRESHOLDS
    networks: NetworkTable | None = None
    sequence: tuple[Finding, ...] = ()


DEFAULT_CONTEXT = Context()


def classify(facts: ClickFacts, context: Context = DEFAULT_CONTEXT) -> Verdict:
    """The verdict for one click: every rule's finding, combined.

    Machine when a decisive finding fired: certain if any finding is certain, else likely.
    A non-decisive finding (a network that also carries people) labels nothing alone; it
    joins a decisive finding's reasons, or makes the click a likely machine when the click
    came within ``corroborated_window_seconds`` of delivery (``too_soon``, widened).
    """
    thresholds = context.thresholds
    findings = [
        finding
        for finding in (
            head(facts),
            prefetch(facts),
            scanner_ua(facts),
            scanner_network(facts, context.networks),
            before_delivery(facts, thresholds),
            too_soon(facts, thresholds),
            *context.sequence,
        )
        if finding is not None
    ]
    decisive = [f for f in findings if f.decisive]
    if not decisive and findings:
        widened = too_soon(
            facts,
            dataclasses.replace(
                thresholds, too_soon_seconds=thresholds.corroborated_window_seconds
            ),
        )
        if widened is not None:
            decisive = [widened]
            findings.append(widened)
    if not decisive:
        return HUMAN
    reasons = {f.reason for f in findings}
    certainty: Certainty = (
        "certain" if any(f.certainty == "certain" for f in decisive) else "likely"
    )
    return Verdict("machine", tuple(r for r in REASONS if r in reasons), certainty)


def classify_email(
    clicks: Sequence[ClickFacts],
    link_count: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    networks: NetworkTable | None = None,
) -> list[Verdict]:
    """Verdicts for the clicks on one email (any order, any recipients; the result follows
    ``clicks``): the sequence rules run over each recipient's clicks, then ``classify`` per
    click, then ``echo`` over the clicks still human.
    ``link_count`` is the email's tracked links, the honeypot excluded."""
    swept = sweep(clicks, link_count, thresholds)
    trapped = honeypot(clicks, thresholds)
    sequence = [
        tuple(f for f in (swept[i], trapped[i]) if f is not None) for i in range(len(clicks))
    ]
    verdicts = [
        classify(facts, Context(thresholds, networks, sequence[i]))
        for i, facts in enumerate(clicks)
    ]
    echoes = echo(clicks, [v.label == "human" for v in verdicts], thresholds)
    for i, finding in enumerate(echoes):
        if finding is not None:
            verdicts[i] = classify(
                clicks[i], Context(thresholds, networks, (*sequence[i], finding))
            )
    return verdicts
