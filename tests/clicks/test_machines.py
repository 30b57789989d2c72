"""The machine-click rules, each in both directions: the machine it exists to catch, and the
person closest to it that it must leave alone (docs/machine-clicks.md); and the scanner data
they read (app.clicks.scanners): the shipped networks and user-agent patterns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from app.clicks import machines, scanners
from app.clicks.machines import (
    ClickFacts,
    Context,
    Finding,
    Thresholds,
    Verdict,
    classify,
    classify_email,
)
from app.clicks.scanners import parse_networks

DELIVERED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# Real mail clients' and browsers' user agents: a person clicking in each must never be
# taken for a scanner by the user-agent rule.
PEOPLE = {
    # Outlook desktop (Windows) as the project's device tests already know it.
    "Outlook for Windows": (
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
    ),
    "Outlook for Windows (Word engine)": (
        "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.1; ms-office; MSOffice 16)"
    ),
    "new Outlook for Windows (WebView2)": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/136.0.0.0 Safari/537.36 Edg/136.0.0.0 OneOutlook/1.2025.516.400"
    ),
    "Outlook for Mac": "MacOutlook/16.89.24091630 (Intelx64 Mac OS X 14.7 (Build 23H124))",
    "Outlook for Mac (Microsoft- prefix)": (
        "Microsoft-MacOutlook/16.81.0 (Mac OS/13.6; Build/16.81.0)"
    ),
    "Outlook for iOS (Microsoft's documented agent)": "Outlook-iOS/2.0",
    "Outlook for Android (Microsoft's documented agent)": "Outlook-Android/2.0",
    "Outlook for iOS in-app browser": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Outlook-iOS/4.2531.0"
    ),
    "Apple Mail (macOS)": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    ),
    "Apple Mail (iOS)": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148"
    ),
    "Gmail app (Android web view)": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.100 Mobile Safari/537.36"
    ),
    "Safari on iOS (where iOS mail apps open links)": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
    ),
    "Google app (iOS)": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) GSA/333.0.680877564 Mobile/15E148 Safari/604.1"
    ),
    "Yahoo Mail app": (
        "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.58 Mobile "
        "Safari/537.36 YahooMobileMail/7.52.0 (Android Mail; 1835744)"
    ),
    "Thunderbird": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.3.1"
    ),
    "Spark": "Spark/3.19 (iPhone; iOS 18.0; Scale/3.00)",
    "Chrome on Windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    "Edge on Windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
    ),
    "Safari on macOS": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15"
    ),
    "Firefox on Linux": "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Samsung Internet": (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
    ),
    "Instagram in-app browser": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148 Instagram 334.0.4.32.98 (iPhone14,5; iOS 17_5; en_US)"
    ),
    "LinkedIn app in-app browser": (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36 "
        "[LinkedInApp]/9.29.8437"
    ),
}
PERSON_UA = PEOPLE["Chrome on Windows"]

# Scanners, previewers and probes, each as it introduces itself.
SCANNERS = {
    "Slack unfurl": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "X card": "Twitterbot/1.0",
    "Facebook preview": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp preview": "WhatsApp/2.23.20.0",
    "Telegram preview": "TelegramBot (like TwitterBot)",
    "Discord preview": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Skype preview": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "LinkedIn preview": (
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
    ),
    "Microsoft preview": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/119.0.0.0 Safari/537.36 Edg/119.0.0.0 MicrosoftPreview/2.0 "
        "+https://aka.ms/MicrosoftPreview"
    ),
    "Bing preview": (
        "Mozilla/5.0 (Windows; U; Windows NT 6.1; en-US) AppleWebKit/534+ (KHTML, like Gecko) "
        "BingPreview/1.0b"
    ),
    "Office link probe": "Microsoft Office Existence Discovery",
    "Barracuda": "Barracuda Sentinel (EE)",
    "headless Chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36"
    ),
    "python-requests": "python-requests/2.32.3",
    "curl": "curl/8.5.0",
}

# A network table for the tests, independent of the shipped one.
NETWORKS = parse_networks(
    [
        "# test table",
        "network,vendor,source,fetched,certainty",
        "40.107.0.0/16,Gateway A,https://example.com/a,2026-11-30,certain",
        "198.51.100.0/24,Isolating gateway,https://example.com/b,2026-11-30,likely",
        "203.0.113.128/25,Narrow gateway,https://example.com/c,2026-11-30,certain",
        "2001:db8::/32,Gateway A,https://example.com/a,2026-11-30,certain",
    ]
)


def click(
    seconds_after_delivery: float = 600.0,
    *,
    method: str = "GET",
    user_agent: str = PERSON_UA,
    ip_prefix: str | None = "192.0.2.0/24",
    purpose: str | None = None,
    placement_id: int = 1,
    recipient_id: int = 7,
    delivered: bool = True,
    honeypot: bool = False,
) -> ClickFacts:
    return ClickFacts(
        clicked_at=DELIVERED + timedelta(seconds=seconds_after_delivery),
        method=method,
        user_agent=user_agent,
        ip_prefix=ip_prefix,
        purpose=purpose,
        recipient_id=recipient_id,
        placement_id=placement_id,
        delivered_at=DELIVERED if delivered else None,
        honeypot=honeypot,
    )


def verdict(facts: ClickFacts, **context: object) -> Verdict:
    return classify(facts, Context(networks=NETWORKS, **context))  # type: ignore[arg-type]


# --- head -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("HEAD", Verdict("machine", ("head",), "certain")),
        ("head", Verdict("machine", ("head",), "certain")),
        ("GET", machines.HUMAN),
    ],
)
def test_head_is_a_machine_and_the_get_from_the_same_agent_is_not(
    method: str, expected: Verdict
) -> None:
    # Outlook probes a link with HEAD, then the browser follows it with GET
    assert verdict(click(method=method, user_agent=PEOPLE["Outlook for Windows"])) == expected


# --- prefetch -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "machine"),
    [
        ("prefetch", True),
        ("prefetch;prerender", True),
        ("prefetch;anonymous-client-ip", True),
        ("Prefetch", True),
        (None, False),
        ("", False),
    ],
)
def test_prefetch_and_prerender_are_machines_a_plain_request_is_not(
    purpose: str | None, machine: bool
) -> None:
    got = verdict(click(purpose=purpose))
    assert got == (Verdict("machine", ("prefetch",), "certain") if machine else machines.HUMAN)


# --- scanner_ua -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCANNERS))
def test_scanner_and_preview_agents_are_machines(name: str) -> None:
    assert verdict(click(user_agent=SCANNERS[name])) == Verdict(
        "machine", ("scanner_ua",), "certain"
    )


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_real_mail_clients_and_browsers_are_not_scanners(name: str) -> None:
    assert not scanners.is_scanner_agent(PEOPLE[name])
    assert verdict(click(user_agent=PEOPLE[name])) == machines.HUMAN


def test_no_user_agent_is_not_a_scanner_by_itself() -> None:
    assert verdict(click(user_agent="")) == machines.HUMAN


def test_own_agents_carry_a_source() -> None:
    for pattern, source in scanners.OWN_SCANNER_AGENTS:
        assert pattern and source.startswith(("http://", "https://"))


# --- scanner_network ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        # inside a certain range: decides alone, at any time
        ("40.107.3.0/24", Verdict("machine", ("scanner_network",), "certain")),
        ("2001:db8:1::/48", Verdict("machine", ("scanner_network",), "certain")),
        # beside it
        ("40.108.3.0/24", machines.HUMAN),
        ("2001:db9::/48", machines.HUMAN),
        # a likely range (the gateway also carries people) and a range narrower than the
        # stored /24 (others share the rest): a person clicking minutes later stays human
        ("198.51.100.0/24", machines.HUMAN),
        ("203.0.113.0/24", machines.HUMAN),
        (None, machines.HUMAN),
        ("not a network", machines.HUMAN),
    ],
)
def test_network_minutes_after_delivery(prefix: str | None, expected: Verdict) -> None:
    assert verdict(click(600, ip_prefix=prefix)) == expected


@pytest.mark.parametrize("prefix", ["198.51.100.0/24", "203.0.113.0/24"])
def test_a_network_that_carries_people_only_backs_other_signals(prefix: str) -> None:
    # 20 s after delivery: too slow for ``too_soon`` alone, but inside the corroborated window
    assert verdict(click(20, ip_prefix=prefix)) == Verdict(
        "machine", ("scanner_network", "too_soon"), "likely"
    )
    # with a decisive signal it joins the reasons
    assert verdict(click(600, ip_prefix=prefix, method="HEAD")) == Verdict(
        "machine", ("head", "scanner_network"), "certain"
    )
    # without a delivery time there is nothing to back
    assert verdict(click(20, ip_prefix=prefix, delivered=False)) == machines.HUMAN


def test_shipped_networks_load_with_sources_and_dates() -> None:
    table = scanners.shipped_networks()
    assert table.entries
    for entry in table.entries:
        assert entry.source.startswith("https://")
        assert entry.fetched
    # Exchange Online Protection is a mail-filtering network: a click from it is a machine
    eop = click(600, ip_prefix="40.107.3.0/24")
    assert classify(eop) == Verdict("machine", ("scanner_network",), "certain")
    # an iCloud Private Relay egress network and Google's are never labelled by network
    for prefix in ("172.224.226.0/24", "66.249.84.0/24", "2a01:111:f402::/48"):
        assert classify(click(600, ip_prefix=prefix)) == machines.HUMAN


@pytest.mark.parametrize(
    "line",
    [
        "10.0.0.0/8,X,https://example.com,2026-11-30,maybe",
        "10.0.0.0/8,X,https://example.com,30.11.2026,certain",
        "10.0.0.0/8,X,,2026-11-30,certain",
        "10.0.0.0/33,X,https://example.com,2026-11-30,certain",
    ],
)
def test_a_malformed_network_line_fails_loudly(line: str) -> None:
    with pytest.raises(ValueError):
        parse_networks(["network,vendor,source,fetched,certainty", line])


# --- before_delivery and too_soon -----------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-30, Verdict("machine", ("before_delivery",), "likely")),
        (-3, Verdict("machine", ("before_delivery",), "likely")),
        (-1, Verdict("machine", ("too_soon",), "likely")),  # within the clock skew
        (0.5, Verdict("machine", ("too_soon",), "likely")),
        (1.0, Verdict("machine", ("too_soon",), "likely")),
        (2.0, machines.HUMAN),  # a person on push notifications, 2 s after delivery
        (45, machines.HUMAN),
        (3 * 3600, machines.HUMAN),
    ],
)
def test_timing_against_delivery(seconds: float, expected: Verdict) -> None:
    assert verdict(click(seconds)) == expected


def test_timing_needs_a_delivery_time() -> None:
    assert verdict(click(-30, delivered=False)) == machines.HUMAN
    assert verdict(click(0.2, delivered=False)) == machines.HUMAN


def test_timing_thresholds_are_settings() -> None:
    patient = Thresholds(too_soon_seconds=0.0, delivery_skew_seconds=60)
    assert verdict(click(0.5), thresholds=patient) == machines.HUMAN
    assert verdict(click(-30), thresholds=patient) == machines.HUMAN
    assert verdict(click(-90), thresholds=patient).reasons == ("before_delivery",)


# --- sweep ----------------------------------------------------------------------------------


def labels(verdicts: list[Verdict]) -> list[str]:
    return [v.label for v in verdicts]


def test_a_gateway_sweep_of_every_link_is_a_machine_a_fast_person_is_not() -> None:
    # the person: one link, 2 s after delivery
    person = [click(2.0, placement_id=3)]
    assert labels(classify_email(person, link_count=6)) == ["human"]
    # the gateway: all six links, 1-3 s after delivery, a few hundred ms apart
    scan = [click(1.0 + 0.4 * i, placement_id=i + 1) for i in range(6)]
    verdicts = classify_email(scan, link_count=6)
    assert labels(verdicts) == ["machine"] * 6
    assert verdicts[0] == Verdict("machine", ("too_soon", "sweep"), "likely")
    assert verdicts[-1] == Verdict("machine", ("sweep",), "likely")


def test_a_person_clicking_many_links_over_minutes_is_human() -> None:
    clicks = [click(300 + 45 * i, placement_id=i + 1) for i in range(6)]
    assert labels(classify_email(clicks, link_count=6)) == ["human"] * 6


def test_a_person_clicking_a_few_links_quickly_is_human() -> None:
    clicks = [click(900 + i, placement_id=i + 1) for i in range(3)]  # 3 of 6 links, 1 s apart
    assert labels(classify_email(clicks, link_count=6)) == ["human"] * 3


def test_after_a_sweep_the_persons_later_click_survives() -> None:
    scan = [click(3600 + 0.5 * i, placement_id=i + 1) for i in range(5)]
    later = click(3600 + 5 * 60, placement_id=2)
    verdicts = classify_email([*scan, later], link_count=5)
    assert labels(verdicts) == ["machine"] * 5 + ["human"]


def test_only_the_first_link_count_clicks_of_a_sweep_are_flagged() -> None:
    scan = [click(3600 + 0.5 * i, placement_id=i + 1) for i in range(4)]
    person = click(3600 + 2 + 3, placement_id=1)  # within the burst gap, one click too many
    verdicts = classify_email([*scan, person], link_count=4)
    assert labels(verdicts) == ["machine"] * 4 + ["human"]


def test_a_sweep_probing_each_link_with_head_first_is_caught_whole() -> None:
    # HEAD then GET per link: the HEADs do not use up the sweep's share of clicks
    scan = [
        click(3600 + 0.5 * i, method="HEAD" if i % 2 == 0 else "GET", placement_id=i // 2 + 1)
        for i in range(8)
    ]
    later = click(3600 + 6, placement_id=1)  # within the burst gap, after all four GETs
    verdicts = classify_email([*scan, later], link_count=4)
    assert labels(verdicts) == ["machine"] * 8 + ["human"]
    assert verdicts[0].reasons == ("head", "sweep")
    assert verdicts[1].reasons == ("sweep",)


def test_only_the_first_sweep_counts() -> None:
    first = [click(3600 + 0.5 * i, placement_id=i + 1) for i in range(4)]
    tabs = [click(7200 + 0.5 * i, placement_id=i + 1) for i in range(4)]
    findings = machines.sweep([*first, *tabs], link_count=4)
    assert [f is not None for f in findings] == [True] * 4 + [False] * 4


def test_input_order_does_not_matter() -> None:
    scan = [click(3600 + 0.5 * i, placement_id=i + 1) for i in range(4)]
    later = click(4000, placement_id=1)
    shuffled = [later, scan[2], scan[0], scan[3], scan[1]]
    assert labels(classify_email(shuffled, link_count=4)) == ["human"] + ["machine"] * 4


def test_recipients_are_judged_apart() -> None:
    # two recipients each clicking two of four links in the same seconds: no one swept
    clicks = [click(3600 + 0.5 * i, placement_id=i + 1, recipient_id=7 + i % 2) for i in range(4)]
    assert labels(classify_email(clicks, link_count=4)) == ["human"] * 4
    # each recipient's first sweep is found, whoever else clicked in between
    scans = [
        click(3600 + 0.5 * i, placement_id=i // 2 + 1, recipient_id=7 + i % 2) for i in range(8)
    ]
    assert labels(classify_email(scans, link_count=4)) == ["machine"] * 8
    # a honeypot click marks its own recipient's burst only
    trap = click(3600 + 1, placement_id=99, recipient_id=9, honeypot=True)
    verdicts = classify_email([*clicks, trap], link_count=4)
    assert labels(verdicts) == ["human"] * 4 + ["machine"]


@pytest.mark.parametrize(("link_count", "swept"), [(2, False), (3, True), (10, False)])
def test_a_sweep_needs_most_links_and_at_least_three(link_count: int, swept: bool) -> None:
    # three distinct links in one burst: all of a 3-link email, a third of a 10-link one;
    # a 2-link email is never swept (a person clicking both is ordinary)
    clicks = [click(3600 + 0.5 * i, placement_id=(i % link_count) + 1) for i in range(3)]
    findings = machines.sweep(clicks, link_count=link_count)
    assert any(f is not None for f in findings) is swept


# --- honeypot -------------------------------------------------------------------------------


def test_a_honeypot_click_marks_its_sweep_certain() -> None:
    walk = [click(3600 + 0.7 * i, placement_id=i + 1) for i in range(3)]
    trap = click(3600 + 2.8, placement_id=99, honeypot=True)
    later = click(3600 + 600, placement_id=1)
    verdicts = classify_email([*walk, trap, later], link_count=10)
    assert [v.certainty for v in verdicts] == ["certain"] * 4 + [None]
    assert verdicts[0].reasons == ("honeypot",)
    assert labels(verdicts) == ["machine"] * 4 + ["human"]


def test_without_the_honeypot_the_same_clicks_are_people() -> None:
    walk = [click(3600 + 0.7 * i, placement_id=i + 1) for i in range(3)]
    assert labels(classify_email(walk, link_count=10)) == ["human"] * 3


def test_a_honeypot_click_alone_is_a_machine() -> None:
    trap = click(60, placement_id=99, honeypot=True)
    assert classify_email([trap], link_count=4) == [Verdict("machine", ("honeypot",), "certain")]


# --- echo -----------------------------------------------------------------------------------

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def test_a_gateway_checking_the_link_at_the_click_is_an_echo() -> None:
    """The person follows a link; 12 s later the same link is fetched again for the same
    recipient, from another system: the gateway's check. The person stays human."""
    person = click(3600, placement_id=2)
    check = click(3612, placement_id=2, user_agent=CHROME_ON_WINDOWS, ip_prefix="198.51.100.0/24")
    assert classify_email([check, person], link_count=6) == [
        Verdict("machine", ("echo",), "likely"),
        machines.HUMAN,
    ]


def test_people_following_a_link_again_are_not_echoes() -> None:
    """The same browser again within seconds (a double click, a reload), another browser
    minutes later, another link at once from another device: all people."""
    first = click(3600, placement_id=2)
    again = click(3603, placement_id=2)
    desktop_later = click(3600 + 300, placement_id=2, user_agent=CHROME_ON_WINDOWS)
    other_link = click(3605, placement_id=3, user_agent=CHROME_ON_WINDOWS)
    clicks = [first, again, desktop_later, other_link]
    assert labels(classify_email(clicks, link_count=6)) == ["human"] * 4


def test_outlooks_probe_then_the_browser_is_no_echo() -> None:
    """Office's HEAD probe is the machine; the browser's GET right after it is the person."""
    probe = click(3600, method="HEAD", user_agent="Microsoft Office Existence Discovery")
    person = click(3600.4)
    assert labels(classify_email([probe, person], link_count=6)) == ["machine", "human"]


def test_a_fast_person_after_a_sweep_is_no_echo() -> None:
    """A sweep at delivery, then the person, 10 s later, on one of the swept links from
    another browser: the earlier click was a machine's, so the person's is no echo."""
    scan = [
        click(1.5 + 0.3 * i, placement_id=i + 1, user_agent=CHROME_ON_WINDOWS) for i in range(5)
    ]
    person = click(12, placement_id=2)
    assert labels(classify_email([*scan, person], link_count=5)) == ["machine"] * 5 + ["human"]


def test_echo_is_a_setting() -> None:
    person = click(3600, placement_id=2)
    check = click(3612, placement_id=2, user_agent=CHROME_ON_WINDOWS)
    off = Thresholds(echo_seconds=0)
    assert labels(classify_email([person, check], link_count=6, thresholds=off)) == ["human"] * 2
    short = Thresholds(echo_seconds=10)
    assert labels(classify_email([person, check], link_count=6, thresholds=short)) == ["human"] * 2


# --- combining ------------------------------------------------------------------------------


def test_reasons_follow_the_rule_order_and_certain_wins() -> None:
    facts = click(-30, method="HEAD", user_agent=SCANNERS["python-requests"])
    got = verdict(facts, sequence=(Finding("sweep", "likely"),))
    assert got == Verdict("machine", ("head", "scanner_ua", "before_delivery", "sweep"), "certain")
    assert set(got.reasons) <= set(machines.REASONS)


def test_the_facts_are_immutable() -> None:
    facts = click()
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.method = "HEAD"  # type: ignore[misc]
