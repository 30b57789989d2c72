"""Campaign registration and personalization, on each database."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Unprocessable
from app.ingest.campaigns import (
    AMP_SIZE_LIMIT,
    Personalizer,
    VariantInput,
    create_campaign,
    ensure_recipients,
    record_deliveries,
)
from app.ingest.rewriting import LinkRules
from app.models import Delivery, Placement, Recipient
from app.tokens import TokenCodec
from app.vocabulary import HONEYPOT
from tests.factories import make_campaign

AMP_HEAD = (
    '<!doctype html><html ⚡4email data-css-strict><head><meta charset="utf-8">'
    '<script async src="https://cdn.ampproject.org/v0.js"></script>'
    "<style amp4email-boilerplate>body{visibility:hidden}</style></head><body>"
)


def _amp(links: int, filler: int) -> str:
    body = "".join(f'<a href="https://example.com/{i}">x</a>' for i in range(links))
    return AMP_HEAD + body + "<p>" + "y" * filler + "</p></body></html>"


def test_amp_part_over_the_client_limit_is_reported(session: Session) -> None:
    # Close to the limit before rewriting; tracked URLs push it over.
    links = 2000
    amp = _amp(links, AMP_SIZE_LIMIT - len(_amp(links, 0)) - 10)
    assert len(amp.encode()) < AMP_SIZE_LIMIT
    created = create_campaign(
        session,
        "Big",
        [VariantInput("A", "<p>hi</p>", amp)],
        rules=LinkRules(),
        max_part_bytes=5_000_000,
    )
    assert len(created.warnings) == 1
    assert "200,000-byte limit" in created.warnings[0]
    small = create_campaign(
        session,
        "Small",
        [VariantInput("A", "<p>hi</p>", _amp(3, 100))],
        rules=LinkRules(),
        max_part_bytes=5_000_000,
    )
    assert small.warnings == []


def test_do_not_track_and_opt_out_rules_apply(session: Session) -> None:
    html = (
        '<a href="https://intranet.example.org/x">a</a>'
        '<a href="https://shop.example.com/" data-clickmap-notrack>b</a>'
        '<a href="https://shop.example.com/">c</a>'
    )
    created = create_campaign(
        session,
        "Rules",
        [VariantInput("A", html)],
        rules=LinkRules(do_not_track=("example.org",)),
        max_part_bytes=5_000_000,
    )
    reasons = [p.skip_reason for p in created.campaign.variants[0].placements if p.kind != HONEYPOT]
    assert reasons == ["do_not_track", "opt_out", None]


def test_recipient_ids_map_once(session: Session) -> None:
    first = ensure_recipients(session, ["a@example.com", "b@example.com", "a@example.com"])
    again = ensure_recipients(session, ["b@example.com", "c@example.com"])
    assert first["b@example.com"] == again["b@example.com"]
    assert len({*first.values(), *again.values()}) == 3
    assert session.scalar(select(func.count()).select_from(Recipient)) == 3


def test_a_send_to_twenty_thousand_recipients_is_recorded_whole(session: Session) -> None:
    # Four bound parameters a row: one statement for all of them would pass PostgreSQL's
    # limit of 65,535 and lose the whole send.
    campaign = make_campaign(session)
    ids = [f"r{n}@example.com" for n in range(20_000)]
    assert record_deliveries(session, campaign, "A", ids) == 20_000
    assert record_deliveries(session, campaign, "A", ids[:10]) == 0  # idempotent
    stored = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign.id)
    )
    assert stored == 20_000


@pytest.mark.parametrize("bad", ["", "   ", "x" * 256])
def test_bad_recipient_ids_are_refused(session: Session, bad: str) -> None:
    with pytest.raises(Unprocessable, match="recipient ids"):
        ensure_recipients(session, ["ok", bad])
    assert session.scalar(select(func.count()).select_from(Recipient)) == 0


def test_personalized_tokens_point_at_their_placements(session: Session) -> None:
    html = "".join(f'<a href="https://example.com/{i}">link {i}</a>' for i in range(5))
    created = create_campaign(
        session, "T", [VariantInput("A", html)], rules=LinkRules(), max_part_bytes=5_000_000
    )
    variant = created.campaign.variants[0]
    codec = TokenCodec(["k" * 40])
    engine = Personalizer(codec, "https://t.example.com", LinkRules())
    [email] = list(engine.personalize(session, variant, ["r-1"]))
    tokens = re.findall(r"https://t\.example\.com/c/([\w.-]+)", email["html"])
    positions = [codec.decode(t).position for t in tokens]
    # The hidden honeypot link comes first in the email, at the position after the last link.
    assert positions == [5, 0, 1, 2, 3, 4]
    placements = session.scalars(
        select(Placement).where(Placement.variant_id == variant.id).order_by(Placement.position)
    ).all()
    assert [(p.kind, p.destination) for p in placements] == [
        *(("a", f"https://example.com/{i}") for i in range(5)),
        ("honeypot", "https://example.com/0"),
    ]


# --- the honeypot link ---------------------------------------------------------------------

HONEYPOT_EMAIL = """<!doctype html>
<html><head><title>Spring</title></head>
<body style="margin:0">
<p><a href="mailto:help@example.com">Write to us</a></p>
<p><a href="https://shop.example.com/sale">Shop the sale</a></p>
<p><a href="https://shop.example.com/new">New arrivals</a></p>
</body></html>"""


def test_the_personalized_html_opens_with_one_hidden_honeypot_link(session: Session) -> None:
    created = create_campaign(
        session,
        "T",
        [VariantInput("A", HONEYPOT_EMAIL, _amp(1, 10))],
        rules=LinkRules(),
        max_part_bytes=5_000_000,
        utm={"utm_source": "mail"},
    )
    variant = created.campaign.variants[0]
    [honeypot] = [p for p in variant.placements if p.kind == HONEYPOT]
    # One past the sender's three links, leading where their first tracked link leads.
    assert (honeypot.part, honeypot.position, honeypot.tracked) == ("html", 3, True)
    assert honeypot.location == "https://shop.example.com/sale?utm_source=mail"
    assert [p.part for p in variant.placements if p.kind == HONEYPOT] == ["html"]

    codec = TokenCodec(["k" * 40])
    engine = Personalizer(codec, "https://t.example.com", LinkRules())
    [email] = list(engine.personalize(session, variant, ["r-1"]))
    soup = BeautifulSoup(email["html"], "lxml")
    links = soup.find_all("a", href=re.compile(r"^https://t\.example\.com/c/"))
    positions = [codec.decode(str(a["href"]).rsplit("/", 1)[1]).position for a in links]
    # The honeypot comes first; the sender's links keep their positions.
    assert positions == [3, 1, 2]
    first = links[0]
    assert soup.body is not None and soup.body.find("a") is first  # before every other link
    assert (first["aria-hidden"], first["tabindex"], first.get_text()) == ("true", "-1", "")
    wrapper = first.parent
    assert wrapper is not None and wrapper.name == "div" and wrapper["aria-hidden"] == "true"
    for element in (wrapper, first):
        style = str(element["style"]).replace(" ", "")
        assert "display:none" in style and "mso-hide:all" in style
    # Apart from the honeypot, the email is the sender's with only the tracked URLs replaced.
    html = email["html"]
    assert html is not None
    without = re.sub(r"<div aria-hidden=\"true\".*?</a></div>", "", html, count=1)
    masked = re.sub(r"https://t\.example\.com/c/[\w.-]+", "URL", without)
    assert masked == HONEYPOT_EMAIL.replace("https://shop.example.com/sale", "URL").replace(
        "https://shop.example.com/new", "URL"
    )
    assert "aria-hidden" not in (email["amp"] or "")  # the AMP part gets none


def test_a_part_without_tracked_links_gets_no_honeypot(session: Session) -> None:
    created = create_campaign(
        session,
        "T",
        [VariantInput("A", '<body><a href="mailto:help@example.com">Write</a></body>')],
        rules=LinkRules(),
        max_part_bytes=5_000_000,
    )
    variant = created.campaign.variants[0]
    assert [p.kind for p in variant.placements] == ["a"]
    engine = Personalizer(TokenCodec(["k" * 40]), "https://t.example.com", LinkRules())
    [email] = list(engine.personalize(session, variant, ["r-1"]))
    assert email["html"] == variant.html
