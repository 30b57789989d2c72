"""The heatmap in a real Chromium: log in, switch views, read colors, and stay inert.

A live server (werkzeug, on a free port of 127.0.0.1; tests/browser/conftest.py) serves an
app seeded with the demo campaign. Colors and numbers are read from the page as the browser
computed them, inside the sandboxed email frame, and compared with the aggregates in the
database. A second campaign is an email full of scripts and event handlers; none of them may
run. A third points at images, fonts, stylesheets and prefetch hints on other hosts; the
page may load nothing from anywhere but Clickmap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.ingest import campaigns
from app.ingest.links import LinkRules
from app.models import (
    DELIVERED,
    Click,
    Conversion,
    Delivery,
    EmailOpen,
    MachineReasons,
    PartStats,
    Placement,
    PlacementStats,
    SentEmail,
    Variant,
)
from app.reports.heatmap import TIER_COLORS, tier_for
from app.reports.stats import HUMAN, REPORTED
from tests.factories import BROWSER_USER, Live, recording_server, sign_in

pytestmark = pytest.mark.browser


def rgb(hex_color: str) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def expected_badges(
    session: Session,
    campaign_id: int,
    variant: str,
    part: str,
    metric: str,
    machines: str = "exclude",
) -> dict[int, tuple[str, str]]:
    """position -> (tier color, badge text), from the aggregate tables directly: their
    human columns unless machine clicks are included."""
    counted = (
        (PlacementStats.human_total, PlacementStats.human_unique)
        if machines == "exclude"
        else (PlacementStats.total, PlacementStats.unique)
    )
    rows = session.execute(
        select(Placement.position, *counted)
        .join(Variant, Variant.id == Placement.variant_id)
        .outerjoin(PlacementStats, PlacementStats.placement_id == Placement.id)
        .where(Variant.campaign_id == campaign_id, Variant.name == variant,
               Placement.part == part, Placement.tracked.is_(True), REPORTED)
    ).all()  # fmt: skip
    values = {
        pos: (total or 0) if metric == "total" else (unique or 0) for pos, total, unique in rows
    }
    top = max(values.values())
    return {
        pos: (rgb(TIER_COLORS[tier_for(value, top)]), f"{value:,}") for pos, value in values.items()
    }


def read_badges(page: Any) -> dict[int, tuple[str, str]]:
    frame = page.frame(name="heatmap-frame")
    assert frame is not None
    frame.wait_for_load_state()
    found: dict[int, tuple[str, str]] = frame.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[id^="cm-"]')].map(e => [
            e.id.slice(3),
            [getComputedStyle(e).outlineColor,
             getComputedStyle(e, '::after').content.replace(/^"|"$/g, '')]]))"""
    )
    return {int(pos): (color, label) for pos, (color, label) in found.items()}


def read_table(page: Any) -> dict[int, tuple[str, str]]:
    rows: dict[str, list[str]] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('tr[id^="row-"]')].map(r =>
            [r.id.slice(4), [...r.querySelectorAll('td.num')].map(c => c.textContent.trim())]))"""
    )
    # Cells: rank, clicks, unique, rate.
    return {int(pos): (cells[1], cells[2]) for pos, cells in rows.items()}


def switch(page: Any, name: str, value: str) -> None:
    with page.expect_navigation():
        page.select_option(f"form.controls select[name={name}]", value)


def test_heatmap_colors_and_numbers_follow_the_view(
    live: Live, page: Any, session: Session
) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}")
    steps = [
        (None, None, "A", "html", "total", "exclude"),
        ("metric", "unique", "A", "html", "unique", "exclude"),
        ("variant", "B", "B", "html", "unique", "exclude"),
        ("part", "amp", "B", "amp", "unique", "exclude"),
        ("metric", "total", "B", "amp", "total", "exclude"),
        ("machines", "include", "B", "amp", "total", "include"),
    ]
    tiers_seen: set[str] = set()
    for control, value, variant, part, metric, machines in steps:
        if control is not None and value is not None:
            switch(page, control, value)
        assert f"variant={variant}" in page.url or variant == "A"
        expected = expected_badges(session, live.campaign_id, variant, part, metric, machines)
        assert read_badges(page) == expected, (variant, part, metric)
        tiers_seen |= {color for color, _label in expected.values()}
        table = read_table(page)
        assert set(table) == set(expected)
        column = 0 if metric == "total" else 1
        for position, (_color, label) in expected.items():
            assert table[position][column] == label
    assert len(tiers_seen) >= 5


def test_the_demo_opens_on_people_and_says_what_machines_were_left_out(
    live: Live, page: Any, session: Session
) -> None:
    """The demo seeds scanner sweeps, HEAD probes and link previews: the heatmap counts
    people by default, and its panel gives the machine clicks it left out, by reason,
    matching the database; including them brings the page's total up to every click."""
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}")
    variant = session.scalars(
        select(Variant).where(Variant.campaign_id == live.campaign_id, Variant.name == "A")
    ).one()
    part = session.get(PartStats, (live.campaign_id, variant.id, "html"))
    assert part is not None and part.total > part.human_total > 0
    figures = page.locator(".summary .figure dd").all_inner_texts()
    assert figures[1] == f"{part.human_total:,}"
    panel = page.locator("[data-machines]")
    machine = part.total - part.human_total
    assert f"{machine:,} clicks left out as machine" in panel.locator("h2").inner_text()
    reasons = dict(
        session.execute(
            select(MachineReasons.reason, MachineReasons.clicks).where(
                MachineReasons.variant_id == variant.id, MachineReasons.part == "html"
            )
        ).all()
    )
    shown = {
        item.get_attribute("data-reason"): item.locator("strong").inner_text()
        for item in panel.locator("li").all()
    }
    assert shown == {reason: f"{n:,}" for reason, n in reasons.items() if n}
    assert {"sweep", "head", "scanner_ua"} <= set(shown)
    with page.expect_navigation():
        panel.get_by_role("link", name="Include machine clicks").click()
    assert "machines=include" in page.url
    assert page.locator(".summary .figure dd").all_inner_texts()[1] == f"{part.total:,}"
    assert "labelled machine" in page.locator("[data-machines] h2").inner_text()


def test_a_link_marked_as_cta_is_what_ctas_only_lists(
    live: Live, page: Any, session: Session
) -> None:
    """Rename the demo's second-ranked link and mark it as a CTA from its row's edit form:
    back on the same view, the row carries the new name; "CTAs only" then lists that row
    alone, while the email keeps every link's badge."""
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}?metric=unique")
    row = page.locator('tr[id^="row-"]').nth(1)
    row_id = row.get_attribute("id")
    row.locator("details.link-edit summary").click()
    row.locator("input[name=label]").fill("Spring <hero> button")
    row.locator("input[name=cta]").check()
    with page.expect_navigation():
        row.get_by_role("button", name="Save").click()
    assert page.url.endswith(f"?metric=unique#{row_id}")
    saved = page.locator(f"#{row_id}")
    assert saved.locator(".link-text").inner_text() == "Spring <hero> button"
    assert saved.locator(".cta-badge").inner_text() == "CTA"
    badges = read_badges(page)
    switch(page, "ctas", "only")
    assert "ctas=only" in page.url and "metric=unique" in page.url
    rows = page.locator('tr[id^="row-"]')
    assert rows.count() == 1
    assert rows.first.get_attribute("id") == row_id
    assert rows.first.locator(".link-text").inner_text() == "Spring <hero> button"
    assert read_badges(page) == badges
    session.expire_all()  # the seed's objects: read what the server stored since
    placement = session.scalars(
        select(Placement).where(
            Placement.campaign_id == live.campaign_id, Placement.label.is_not(None)
        )
    ).one()
    assert (placement.label, placement.cta) == ("Spring <hero> button", True)
    # The history says who did it, reached from the heatmap's header.
    with page.expect_navigation():
        page.get_by_role("link", name="Link changes").click()
    assert page.url.endswith(f"/campaigns/{live.campaign_id}/changes")
    changes = page.locator(".changes-table tbody tr")
    assert changes.count() == 2
    shown = [changes.nth(n).locator("td").all_inner_texts() for n in range(2)]
    assert {row[1] for row in shown} == {BROWSER_USER}
    assert {row[3] for row in shown} == {
        "Call to action: not a CTA → CTA",
        "Name: no name → “Spring <hero> button”",
    }
    assert all(row[2].startswith("Spring <hero> button") for row in shown)


def test_scripts_in_the_email_never_run(live: Live, page: Any) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.hostile_id}")
    frame = page.frame(name="heatmap-frame")
    assert frame is not None
    frame.wait_for_load_state()
    page.wait_for_timeout(500)  # let anything that would fire, fire

    # Try the interactive ones too: hover, click, a javascript: link, a form.
    frame.hover("text=First link")
    frame.click("#js", no_wait_after=True)
    frame.click("#submit", no_wait_after=True)
    page.wait_for_timeout(500)

    assert live.pwned == []
    assert page.title() != "pwned"
    assert page.evaluate("() => window.pwned") is None
    assert frame.evaluate("() => [document.title, window.pwned === undefined]") == [
        "Hostile",
        True,
    ]
    # Chromium reports what it blocked ("Blocked form submission to '/pwned/form'...",
    # "Refused to execute inline script..."): fine. A message of the email's own is not.
    assert not [m for m in messages if m.startswith("pwned")]
    # The tracked links still got their colors and badges.
    assert {pos for pos in read_badges(page)} == {0, 2}


# Everything here points away from Clickmap: OTHER is a server on 127.0.0.2 (another
# address, another port: a host on the marketer's network), the rest are names that never
# resolve, and TRACKED is Clickmap's own tracking base (a tracked link and an open pixel).
REMOTE_EMAIL = """<!doctype html>
<html><head><meta charset="utf-8"><title>Remote</title>
<meta http-equiv="refresh" content="1;url=OTHER/refresh">
<link rel="stylesheet" href="OTHER/style.css">
<link rel="prefetch" href="OTHER/prefetch">
<link rel="preload" as="image" href="OTHER/preload.png">
<link rel="modulepreload" href="OTHER/module.js">
<link rel="prerender" href="OTHER/prerender">
<link rel="preconnect" href="OTHER">
<link rel="dns-prefetch" href="//dns.clickmap-test.invalid">
<link rel="icon" href="OTHER/favicon.ico">
<style>
@import url("OTHER/import.css");
body { background: #fff url(OTHER/body.png) }
@font-face { font-family: Brand; src: url(http://fonts.clickmap-test.invalid/brand.woff2) }
h1 { font-family: Brand, Arial }
.hero { background-image: image-set("OTHER/hero.png" 1x) }
</style></head>
<body background="OTHER/attribute.png">
<h1>Remote</h1>
<img id="logo" src="OTHER/logo.png" srcset="OTHER/logo-2x.png 2x" alt="Logo" width="20">
<picture><source srcset="http://images.clickmap-test.invalid/a.webp" type="image/webp">
<img src="https://images.clickmap-test.invalid/a.png" width="20"></picture>
<table background="OTHER/table.png"><tr>
<td style="background-image:url('OTHER/cell.png')" class="hero">Cell</td></tr></table>
<div style="background:url(//127.0.0.2:PORT/protocol-relative.png)">Text</div>
<svg width="10" height="10"><image href="OTHER/svg.png" width="10" height="10"/></svg>
<video poster="OTHER/poster.png" src="OTHER/video.mp4"></video>
<audio src="OTHER/audio.mp3" autoplay></audio>
<iframe src="OTHER/frame.html"></iframe>
<object data="OTHER/object.swf"></object>
<embed src="OTHER/embed.swf">
<input type="image" src="OTHER/input.png">
<img src="TRACKED/o/open-pixel.gif" width="1">
<img src="TRACKED/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" width="1">
<p><a href="https://shop.example.com/sale" ping="OTHER/ping">Shop the sale</a></p>
</body></html>
"""


@pytest.fixture
def elsewhere() -> Iterator[tuple[int, list[str]]]:
    """A web server on 127.0.0.2 that notes every request it gets."""
    with recording_server("127.0.0.2") as found:
        yield found


def test_the_email_loads_nothing_from_outside_clickmap(
    live: Live, page: Any, session: Session, elsewhere: tuple[int, list[str]]
) -> None:
    port, hits = elsewhere
    email = (
        REMOTE_EMAIL.replace("OTHER", f"http://127.0.0.2:{port}")
        .replace("PORT", str(port))
        .replace("TRACKED", live.app.config["TRACKING_BASE_URL"])
    )
    remote = campaigns.create_campaign(
        session, "Remote", [campaigns.VariantInput("A", email)],
        rules=LinkRules(), max_part_bytes=live.app.config["MAX_PART_BYTES"],
    ).campaign  # fmt: skip
    session.commit()
    requested: list[str] = []
    images: list[str] = []
    answered: dict[str, int] = {}
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "request",
        lambda request: (
            images.append(request.url)
            if request.resource_type == "image" and request.frame.name == "heatmap-frame"
            else None
        ),
    )
    page.on("response", lambda response: answered.__setitem__(response.url, response.status))
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{remote.id}")
    frame = page.frame(name="heatmap-frame")
    assert frame is not None
    frame.wait_for_load_state()
    page.wait_for_timeout(1500)  # the email's refresh would have fired after one second

    outside = [
        url for url in requested
        if not url.startswith(live.url + "/") and not url.startswith(("data:", "about:"))
    ]  # fmt: skip
    assert outside == []
    assert hits == []  # nor did the server fetch anything from the marketer's network
    # Images and the font went through the proxy (a font's answer, the placeholder, is
    # dropped by the browser's font checks before any response is reported).
    proxied = [url for url in requested if "/email/asset?u=" in url]
    assert set(images) <= set(proxied) and len(images) >= 8, requested
    assert {answered.get(url) for url in images} == {200}
    # The email is still shown, its link colored, and the proxied images are images (the
    # placeholder here: none of those hosts is a public one).
    assert frame.url.startswith(f"{live.url}/campaigns/{remote.id}/email")
    assert set(read_badges(page)) == {0}
    widths = frame.evaluate(
        "() => [...document.images].filter(i => i.src.includes('/email/asset?u='))"
        ".map(i => i.complete && i.naturalWidth > 0)"
    )
    assert widths and all(widths)


def test_the_funnel_on_the_page_counts_what_the_database_holds(
    live: Live, page: Any, session: Session
) -> None:
    """Sent, delivered, viewed, clicked and converted for the demo's variant A, as the page
    shows them, equal counts made here straight from the rows they stand for: emails
    personalized, deliveries still delivered, people with a human or proxy open, people with
    a human click, people with an order."""
    sign_in(page, live)
    page.goto(f"{live.url}/campaigns/{live.campaign_id}")
    variant = session.scalars(
        select(Variant).where(Variant.campaign_id == live.campaign_id, Variant.name == "A")
    ).one()

    def people(column: Any, *where: Any) -> int:
        return int(session.scalar(select(func.count(column.distinct())).where(*where)) or 0)

    expected = {
        "sent": people(SentEmail.recipient_id, SentEmail.variant_id == variant.id),
        "delivered": people(
            Delivery.recipient_id, Delivery.variant_id == variant.id, Delivery.status == DELIVERED
        ),
        "viewed": people(
            EmailOpen.recipient_id,
            EmailOpen.variant_id == variant.id,
            EmailOpen.label.in_(("human", "proxy")),
        ),
        "clicked": people(Click.recipient_id, Click.variant_id == variant.id, Click.label == HUMAN),
        "converted": people(Conversion.recipient_id, Conversion.variant_id == variant.id),
    }
    assert all(expected.values()), expected  # the demo seeds every step
    row = page.locator('[data-funnel] tr[data-variant="A"]')
    shown = {
        step: row.locator(f'td[data-step="{step}"]').inner_text().split("\n")[0].strip()
        for step in expected
    }
    assert shown == {step: f"{n:,}" for step, n in expected.items()}
    rate = row.locator('td[data-figure="click-rate"]').inner_text().strip()
    assert rate == f"{expected['clicked'] / expected['delivered'] * 100:.1f}%"
