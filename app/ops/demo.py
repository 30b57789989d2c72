"""The demo: a campaign with ten days of clicks and a user (``clickmap demo`` serves them).

The demo must show what Clickmap is for within a minute of ``make demo`` on a laptop with
nothing but SQLite, so it ships its own email (``app/demo_email/``: two variants, each with
an HTML and an AMP part, with a VML button, a mailto link and merge tags that stay
untracked) instead of depending on files a user may not have.

Clicks are made up but shaped like real ones: a few recipients click, a few links take most
of the clicks (Zipf-like, so every color of the heatmap shows), most clicks come in the
first hours after the send, and the devices and user agents are the usual mix. Machines
click too (``plan_machine_clicks``: gateway sweeps and link previews), so the people-only
view and its "left out as machine" panel have something to show. They all go in
through ``record_clicks``, the writer's own path, so the aggregates are exactly what a real
campaign would have. The random generator is seeded and click ids are derived from the
campaign, so running the demo again reuses the campaign and adds nothing twice.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.accounts import create_user, find_user, set_password
from app.clicks.conversions import record_conversion
from app.clicks.opens import OpenEvent, record_opens
from app.clicks.recording import ClickEvent, record_clicks
from app.ingest import campaigns
from app.ingest.rewriting import LinkRules
from app.models import Campaign, Click, Delivery, Placement, Variant
from app.tokens import token_codec
from app.vocabulary import HONEYPOT, PARTS

EMAIL_DIR = Path(__file__).resolve().parent / "demo_email"
DEMO_NAME = "Northwind Outfitters: spring sale (demo)"
DEMO_USER = "demo"
DEFAULT_TRACKING_BASE = "http://127.0.0.1:5000"
BATCH = 500

# How much each link draws clicks, relative to the hero button; matched against the
# destination. A long tail, spread so the heatmap shows every tier (they are bands of the
# top link's figure), down to a footer link nobody clicks.
POPULARITY: tuple[tuple[str, float], ...] = (
    ("utm_content=hero", 1.0),
    ("/p/linen-shirt", 0.66),
    ("/sale", 0.5),
    ("/p/trail-runner", 0.4),
    ("/women", 0.3),
    ("/p/rain-shell", 0.25),
    ("/men", 0.2),
    ("layering-guide", 0.12),
    ("ref=logo", 0.09),
    ("/stores", 0.06),
    ("instagram.com", 0.04),
    ("pinterest.com", 0.0),
)

# (device, share of clickers, user agents). The "other" agents are mailbox proxies and
# clients that do not say what they run on, as in real click logs.
DEVICE_MIX: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    (
        "desktop",
        0.44,
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko)",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 "
            "Thunderbird/115.10.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        ),
    ),
    (
        "mobile",
        0.41,
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.6367.82 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 "
            "Mobile Safari/537.36 com.google.android.gm",
        ),
    ),
    (
        "tablet",
        0.09,
        (
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148",
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36",
        ),
    ),
    (
        "other",
        0.06,
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
            "",
        ),
    ),
)


@dataclass(frozen=True)
class DemoSettings:
    """The size and shape of the made-up campaign."""

    recipients: int = 5000
    days: int = 10
    click_rate: float = 0.3  # share of recipients who click at least once
    amp_share: float = 0.2  # recipients whose client shows the AMP part
    seed: int = 20240415


@dataclass(frozen=True)
class DemoResult:
    campaign_id: int
    created: bool
    recipients: int
    clicks: int  # clicks in the plan
    clicks_added: int  # of which new in this run


def demo_variants() -> list[campaigns.VariantInput]:
    """The shipped email: variants A and B, each with HTML and AMP."""
    return [
        campaigns.VariantInput(
            name,
            (EMAIL_DIR / f"{name.lower()}.html").read_text(encoding="utf-8"),
            (EMAIL_DIR / f"{name.lower()}.amp.html").read_text(encoding="utf-8"),
        )
        for name in ("A", "B")
    ]


def recipient_ids(count: int) -> list[str]:
    return [f"reader{n:05d}@example.net" for n in range(1, count + 1)]


def find_campaign(session: Session) -> Campaign | None:
    """The demo campaign from an earlier run, if any."""
    return session.scalars(
        select(Campaign)
        .where(Campaign.name == DEMO_NAME, Campaign.deleted_at.is_(None))
        .order_by(Campaign.id.desc())
    ).first()


def _weights(placements: list[Placement], variant: str) -> list[float]:
    weights = []
    for placement in placements:
        destination = placement.destination or ""
        weight = next((w for key, w in POPULARITY if key in destination), 0.05)
        if variant == "B" and "utm_content=hero" in destination:
            weight *= 1.3  # the discount headline of variant B wins the A/B test
        weights.append(weight)
    return weights


def _delay(rng: random.Random, days: int) -> timedelta:
    """How long after the send a first click comes: mostly within hours, a long tail."""
    roll = rng.random()
    if roll < 0.55:
        hours = rng.expovariate(1 / 5)
    elif roll < 0.9:
        hours = rng.expovariate(1 / 40)
    else:
        hours = rng.uniform(0, days * 24)
    return timedelta(hours=min(hours, days * 24 - 1))


def plan_clicks(
    campaign: Campaign, recipients: dict[str, int], settings: DemoSettings, now: datetime
) -> list[ClickEvent]:
    """Every click of the demo, in a repeatable order (same campaign, same clicks)."""
    rng = random.Random(settings.seed)  # noqa: S311 (made-up data, repeatable on purpose)
    sent = campaign.created_at
    if sent.tzinfo is None:  # SQLite hands stored datetimes back naive; they are UTC
        sent = sent.replace(tzinfo=UTC)
    by_variant = {v.name: v for v in campaign.variants}
    tracked: dict[tuple[str, str], list[Placement]] = {}
    for variant in campaign.variants:
        for part in PARTS:
            # People never click the hidden honeypot link.
            tracked[(variant.name, part)] = [
                p for p in variant.placements if p.part == part and p.tracked and p.kind != HONEYPOT
            ]
    events: list[ClickEvent] = []
    devices = [d for d, _share, _agents in DEVICE_MIX]
    shares = [share for _d, share, _agents in DEVICE_MIX]
    agents = {d: a for d, _share, a in DEVICE_MIX}
    for index, recipient_id in enumerate(recipients.values()):
        variant = by_variant["A" if index % 2 == 0 else "B"]
        part = "amp" if rng.random() < settings.amp_share else "html"
        rate = settings.click_rate * (1.15 if variant.name == "B" else 1.0)
        if rng.random() >= rate:
            continue
        placements = tracked[(variant.name, part)]
        weights = _weights(placements, variant.name)
        device = rng.choices(devices, shares)[0]
        agent = rng.choice(agents[device])
        network = f"{rng.choice((198, 203))}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.0/24"
        clickable = sum(1 for w in weights if w > 0)
        links = min(clickable, 1 + int(rng.expovariate(1.4)))
        chosen: list[Placement] = []
        while len(chosen) < links:
            pick = rng.choices(placements, weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        moment = sent + _delay(rng, settings.days)
        for placement in chosen:
            repeats = 1 + (rng.random() < 0.25) + (rng.random() < 0.07)
            for _ in range(repeats):
                if moment < now:
                    events.append(
                        ClickEvent(
                            click_id=f"demo-{campaign.id}-{len(events):07d}",
                            clicked_at=moment,
                            campaign_id=campaign.id,
                            variant_id=variant.id,
                            part=part,
                            placement_id=placement.id,
                            recipient_id=recipient_id,
                            method="GET",
                            user_agent=agent,
                            ip_prefix=network,
                        )
                    )
                moment += timedelta(minutes=rng.uniform(0.2, 25))
    return events + plan_machine_clicks(campaign, recipients, settings, now)


# The machines' share of the demo: far below the field figures (most clicks in B2B mail),
# so the people's heatmap still has something to show, but enough that the switch and the
# "left out as machine" panel do too. docs/machine-clicks.md has the behaviours' sources.
GATEWAY_SHARE = 0.12  # recipients behind a gateway that scans every link at delivery
PREVIEW_SHARE = 0.03  # recipients who paste a link into a chat app that previews it
GATEWAY_AGENT = (  # Safe Links and its peers present themselves as a desktop browser
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
PREVIEW_AGENT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def plan_machine_clicks(
    campaign: Campaign, recipients: dict[str, int], settings: DemoSettings, now: datetime
) -> list[ClickEvent]:
    """The machines' clicks: a gateway's sweep of every link of the HTML part a second or
    three after delivery, each link probed with HEAD then fetched, from one of Microsoft's
    published mail networks (40.92.0.0/15); and chat-app link previews, hours later. From
    their own random stream, so the people's clicks stay what they were."""
    rng = random.Random(settings.seed + 1)  # noqa: S311 (made-up data, repeatable on purpose)
    sent = campaign.created_at
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    by_variant = {v.name: v for v in campaign.variants}
    events: list[ClickEvent] = []

    def add(
        variant: Variant, placement: Placement, recipient: int, at: datetime, **how: Any
    ) -> None:
        if at < now:
            events.append(
                ClickEvent(
                    click_id=f"demo-{campaign.id}-m{len(events):06d}",
                    clicked_at=at,
                    campaign_id=campaign.id,
                    variant_id=variant.id,
                    part=placement.part,
                    placement_id=placement.id,
                    recipient_id=recipient,
                    **how,
                )
            )

    for index, recipient_id in enumerate(recipients.values()):
        variant = by_variant["A" if index % 2 == 0 else "B"]
        links = [p for p in variant.placements if p.part == "html" and p.tracked]
        roll = rng.random()
        if roll < GATEWAY_SHARE:
            network = f"40.{rng.choice((92, 93))}.{rng.randrange(0, 256)}.0/24"
            moment = sent + timedelta(seconds=rng.uniform(1, 3))
            for placement in links:
                for method in ("HEAD", "GET"):
                    add(variant, placement, recipient_id, moment, method=method,
                        user_agent=GATEWAY_AGENT, ip_prefix=network)  # fmt: skip
                    moment += timedelta(milliseconds=rng.uniform(40, 250))
        elif roll < GATEWAY_SHARE + PREVIEW_SHARE and links:
            at = sent + timedelta(hours=rng.uniform(1, settings.days * 24 - 1))
            add(variant, links[0], recipient_id, at, method="GET",
                user_agent=PREVIEW_AGENT, ip_prefix="3.80.12.0/24")  # fmt: skip
    return events


# Opens (docs/opens.md): most people who click saw the images first; some who never click
# open anyway; Apple Mail Privacy Protection fetches the pixel for a large share of
# mailboxes at delivery, and Gmail's proxy fetches it for its readers.
OPEN_SHARE_CLICKERS = 0.85  # the rest read with images blocked
OPEN_SHARE_OTHERS = 0.3
APPLE_PRIVACY_SHARE = 0.35
GMAIL_SHARE = 0.15
GMAIL_PROXY_AGENT = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
CONVERSION_SHARE = 0.12  # of the people who clicked
ORDER_VALUES = (24.5, 39.0, 59.9, 89.0, 129.0)


def plan_opens(
    campaign: Campaign,
    recipients: dict[str, int],
    clicks: list[ClickEvent],
    settings: DemoSettings,
    now: datetime,
) -> list[OpenEvent]:
    """The pixel's loads: Apple's prefetch at delivery, then people (or Gmail's proxy for
    them) some minutes before their first click, or at some time for those who never click.
    From their own random stream, so the clicks stay what they were."""
    rng = random.Random(settings.seed + 2)  # noqa: S311 (made-up data, repeatable on purpose)
    sent = campaign.created_at
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    by_variant = {v.name: v for v in campaign.variants}
    first_click: dict[int, ClickEvent] = {}
    for event in clicks:
        if "-m" not in event.click_id:  # people's clicks, not the machines'
            found = first_click.get(event.recipient_id)
            if found is None or event.clicked_at < found.clicked_at:
                first_click[event.recipient_id] = event
    opens: list[OpenEvent] = []

    def add(variant: Variant, recipient: int, at: datetime, agent: str, network: str) -> None:
        if at < now:
            opens.append(
                OpenEvent(f"demo-{campaign.id}-o{len(opens):06d}", at, campaign.id, variant.id,
                          "html", recipient, "GET", agent, network)
            )  # fmt: skip

    for index, recipient_id in enumerate(recipients.values()):
        variant = by_variant["A" if index % 2 == 0 else "B"]
        if rng.random() < APPLE_PRIVACY_SHARE:
            network = f"17.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.0/24"
            add(variant, recipient_id, sent + timedelta(seconds=rng.uniform(5, 90)),
                "Mozilla/5.0", network)  # fmt: skip
        clicked = first_click.get(recipient_id)
        if rng.random() >= (OPEN_SHARE_CLICKERS if clicked else OPEN_SHARE_OTHERS):
            continue
        if clicked is not None:
            at = max(sent, clicked.clicked_at - timedelta(minutes=rng.uniform(0.5, 10)))
            agent, network = clicked.user_agent, clicked.ip_prefix or "198.51.100.0/24"
        else:
            at = sent + _delay(rng, settings.days)
            agent, network = rng.choice(DEVICE_MIX[0][2]), "203.0.113.0/24"
        if rng.random() < GMAIL_SHARE:
            agent, network = GMAIL_PROXY_AGENT, "66.249.84.0/24"
        add(variant, recipient_id, at, agent, network)
    return opens


def record_demo_conversions(
    session: Session, clicks: list[ClickEvent], settings: DemoSettings
) -> None:
    """Orders from some of the people who clicked, against their first click (idempotent:
    the order ids are derived from the clicks)."""
    rng = random.Random(settings.seed + 3)  # noqa: S311 (made-up data, repeatable on purpose)
    seen: set[int] = set()
    for event in clicks:
        if "-m" in event.click_id or event.recipient_id in seen:
            continue
        seen.add(event.recipient_id)
        if rng.random() < CONVERSION_SHARE:
            value = Decimal(str(rng.choice(ORDER_VALUES)))
            record_conversion(
                session, event.click_id, f"order-{event.click_id}", value, "USD",
                event.clicked_at + timedelta(minutes=rng.uniform(2, 30)),
            )  # fmt: skip


def _batches(events: list[ClickEvent], show_progress: bool) -> Iterator[list[ClickEvent]]:
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    if not show_progress:
        yield from batches
        return
    with click.progressbar(length=len(events), label="recording clicks", file=sys.stderr) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def seed(
    session: Session,
    *,
    rules: LinkRules,
    max_part_bytes: int,
    settings: DemoSettings | None = None,
    now: datetime | None = None,
    show_progress: bool = False,
    commit: Callable[[], None] | None = None,
) -> DemoResult:
    """Create (or reuse) the demo campaign with its deliveries and clicks. Idempotent.

    ``commit`` is called after each batch of clicks so a large seed does not hold one long
    transaction; without it the caller commits once at the end.
    """
    settings = settings or DemoSettings()
    now = now or datetime.now(UTC)
    campaign = find_campaign(session)
    created = campaign is None
    if campaign is None:
        campaign = campaigns.create_campaign(
            session,
            DEMO_NAME,
            demo_variants(),
            rules=rules,
            max_part_bytes=max_part_bytes,
            utm={"utm_source": "newsletter", "utm_campaign": "spring-sale"},
        ).campaign
        # The send happened ``days`` ago, on the hour, so the charts show the whole story.
        sent = (now - timedelta(days=settings.days)).replace(minute=0, second=0, microsecond=0)
        campaign.created_at = sent
        session.flush()
    ids = recipient_ids(settings.recipients)
    for name, share in (("A", ids[0::2]), ("B", ids[1::2])):
        for start in range(0, len(share), BATCH):
            campaigns.record_deliveries(session, campaign, name, share[start : start + BATCH])
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(delivered_at=campaign.created_at)
    )
    mapping = campaigns.ensure_recipients(session, ids)
    events = plan_clicks(campaign, {ext: mapping[ext] for ext in ids}, settings, now)
    stored = session.scalar(
        select(func.count()).select_from(Click).where(Click.campaign_id == campaign.id)
    )
    added = 0
    if stored != len(events):
        if commit is not None:
            commit()
        for batch in _batches(events, show_progress):
            added += record_clicks(session, batch)
            if commit is not None:
                commit()
    # The funnel's other steps: who was sent which variant, the pixel's loads, the orders.
    by_variant = {v.name: v for v in campaign.variants}
    record_sent = campaigns.record_sent
    record_sent(session, by_variant["A"], [mapping[ext] for ext in ids[0::2]])
    record_sent(session, by_variant["B"], [mapping[ext] for ext in ids[1::2]])
    opens = plan_opens(campaign, {ext: mapping[ext] for ext in ids}, events, settings, now)
    for start in range(0, len(opens), BATCH):
        record_opens(session, opens[start : start + BATCH])
    record_demo_conversions(session, events, settings)
    return DemoResult(campaign.id, created, len(ids), len(events), added)


def tracked_urls(
    app: Flask, session: Session, variant: Variant, external_id: str
) -> dict[int, str]:
    """One recipient's tracked URLs of the HTML part, by placement position (read from each
    token, since the hidden honeypot link comes first in the email)."""
    from app.ingest.campaigns import personalizer

    email = next(personalizer(app).personalize(session, variant, [external_id]))
    base = app.config["TRACKING_BASE_URL"] + "/c/"
    found = re.findall(re.escape(base) + r"[A-Za-z0-9_.~-]+", email["html"] or "")
    codec = token_codec(app)
    return {codec.decode(url[len(base) :]).position: url for url in found}


def ensure_user(session: Session, password: str) -> None:
    """Create the demo user, or give it ``password`` if it exists from an earlier run."""
    if find_user(session, DEMO_USER) is None:
        create_user(session, DEMO_USER, password)
    else:
        set_password(session, DEMO_USER, password)


@dataclass(frozen=True)
class SampleLink:
    recipient: str
    variant: str
    text: str
    url: str


def sample_links(app: Flask, session: Session, campaign: Campaign) -> list[SampleLink]:
    """The tracked URLs of the two most popular links, for the first few recipients."""
    found = []
    for index, external in enumerate(recipient_ids(3)):
        variant = campaigns.get_variant(campaign, "A" if index % 2 == 0 else "B")
        placements = [
            p for p in variant.placements if p.part == "html" and p.tracked and p.kind != HONEYPOT
        ]
        urls = tracked_urls(app, session, variant, external)
        for placement in placements:
            if any(key in (placement.destination or "") for key, _w in POPULARITY[:2]):
                found.append(
                    SampleLink(
                        external, variant.name, placement.text, urls.get(placement.position, "?")
                    )
                )
    return found
