"""The funnel on each database: every figure equals a count of the stored rows, and the page,
the API and the PDF show the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from app.clicks.conversions import record_conversion
from app.clicks.opens import OpenEvent, record_opens
from app.clicks.recording import record_clicks
from app.ingest.campaigns import record_deliveries, record_sent
from app.models import Campaign, Click, Conversion, Delivery, EmailOpen, Placement, SentEmail
from app.reports.funnel import build_funnel, rate
from app.vocabulary import HONEYPOT
from tests.factories import AGENTS, AuthActions, click_event, make_campaign, pdf_text, placement

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GMAIL_PROXY = "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"


def _seed(session: Session) -> Campaign:
    """Variant A: 10 personalized, 8 delivered; opens by people, Gmail's proxy and Apple's
    prefetch; human clicks by r0-r3 (r3 without any open), a scanner's click by r7; two
    orders from r0's click, one from r1's. Variant B: 4 personalized, 4 delivered, one
    human open and no click."""
    campaign = make_campaign(session, variants=("A", "B"))
    a, b = campaign.variants
    names = [f"r{i}" for i in range(10)]
    from app.ingest.campaigns import ensure_recipients

    ids = ensure_recipients(session, names)
    record_sent(session, a, ids.values())
    record_sent(session, b, [ids[n] for n in names[:4]])
    record_deliveries(session, campaign, "A", names[:8], delivered_at=T0)
    record_deliveries(session, campaign, "B", names[:4], delivered_at=T0)
    n = iter(range(1000))

    def opened(variant: Any, who: str, agent: str, minutes: int) -> OpenEvent:
        return OpenEvent(
            f"open{next(n):028d}", T0 + timedelta(minutes=minutes), campaign.id, variant.id,
            "html", ids[who], "GET", agent, None,
        )  # fmt: skip

    record_opens(
        session,
        [
            opened(a, "r0", AGENTS["desktop"], 5),
            opened(a, "r0", AGENTS["desktop"], 6),
            opened(a, "r1", GMAIL_PROXY, 7),
            opened(a, "r2", "Mozilla/5.0", 1),  # Apple's prefetch ...
            opened(a, "r2", AGENTS["mobile"], 50),  # ... then r2 reads it
            opened(a, "r4", AGENTS["mobile"], 9),  # opens, never clicks
            opened(a, "r5", "Mozilla/5.0", 1),  # only Apple's prefetch
            opened(b, "r0", AGENTS["desktop"], 3),
        ],
    )
    link = placement(campaign, 0)
    events = [
        click_event(link, ids[who], T0 + timedelta(hours=1, minutes=i * 7))
        for i, who in enumerate(["r0", "r1", "r2", "r3"])
    ]
    events.append(click_event(link, ids["r7"], T0 + timedelta(hours=2), device="other"))
    record_clicks(session, events)
    session.flush()
    record_conversion(session, events[0].click_id, "o-1", Decimal("10.50"), "EUR")
    record_conversion(session, events[0].click_id, "o-2", Decimal("5"), "EUR")
    record_conversion(session, events[1].click_id, "o-3")
    session.commit()
    return campaign


def _counted(session: Session, variant_id: int, human_only: bool) -> dict[str, Any]:
    """The funnel's figures, counted from the raw rows."""
    labels = ("human", "proxy") if human_only else ("human", "proxy", "machine")
    viewers = set(
        session.scalars(
            select(EmailOpen.recipient_id).where(
                EmailOpen.variant_id == variant_id, EmailOpen.label.in_(labels)
            )
        )
    )
    clickers = set(
        session.scalars(
            select(Click.recipient_id)
            .join(Placement, Placement.id == Click.placement_id)
            .where(
                Click.variant_id == variant_id,
                Placement.kind != HONEYPOT,
                *([Click.label == "human"] if human_only else []),
            )
        )
    )

    def count(model: Any) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.variant_id == variant_id)
            )
            or 0
        )

    return {
        "sent": count(SentEmail),
        "delivered": count(Delivery),
        "viewed": len(viewers),
        "clicked": len(clickers),
        "converted": len(
            set(
                session.scalars(
                    select(Conversion.recipient_id).where(Conversion.variant_id == variant_id)
                )
            )
        ),
        "opened_not_clicked": len(viewers - clickers),
    }


@pytest.mark.parametrize("human_only", [True, False])
def test_the_funnel_equals_the_database_counts(session: Session, human_only: bool) -> None:
    campaign = _seed(session)
    funnel = build_funnel(session, campaign.id, human_only=human_only)
    for variant, row in zip(campaign.variants, funnel.variants, strict=True):
        assert row.variant == variant.name
        counted = _counted(session, variant.id, human_only)
        assert {key: getattr(row, key) for key in counted} == counted
    a = funnel.variants[0]
    assert (a.sent, a.delivered, a.viewed, a.clicked, a.converted) == (
        (10, 8, 4, 4, 2) if human_only else (10, 8, 5, 5, 2)
    )
    # r4; with machines included r5 too (Apple's prefetch is r5's only open)
    assert a.opened_not_clicked == (1 if human_only else 2)
    assert a.revenue == {"EUR": "15.5"}
    assert a.opens == {"total": 7, "human": 4, "proxy": 1, "machine": 2}
    assert a.click_rate == rate(a.clicked, 8) and a.click_to_open_rate == rate(a.clicked, a.viewed)
    steps = {step: (count, r) for step, count, r in a.steps}
    assert steps["delivered"] == (8, 80.0)
    assert steps["converted"] == (2, rate(2, a.clicked))
    total = funnel.total
    assert total.sent == 14 and total.delivered == 12 and total.viewed == a.viewed + 1
    assert total.revenue == {"EUR": "15.5"}


@pytest.fixture
def bearer(app: Flask) -> dict[str, str]:
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "test")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


def test_page_api_and_pdf_show_the_same_funnel(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    session: Session,
    bearer: dict[str, str],
    tmp_path: Path,
) -> None:
    campaign = _seed(session)
    funnel = build_funnel(session, campaign.id)
    answer = client.get(f"/api/v1/campaigns/{campaign.id}/funnel", headers=bearer)
    assert answer.status_code == 200, answer.json
    a = answer.json["variants"][0]
    row = funnel.variants[0]
    assert (a["sent"], a["delivered"], a["viewed"], a["clicked"], a["converted"]) == (
        row.sent, row.delivered, row.viewed, row.clicked, row.converted,
    )  # fmt: skip
    assert a["openedNotClicked"] == row.opened_not_clicked
    assert a["clickToOpenRate"] == round(row.click_to_open_rate or 0, 2)
    assert a["revenue"] == {"EUR": "15.5"}
    assert answer.json["total"]["variant"] is None
    machines = client.get(
        f"/api/v1/campaigns/{campaign.id}/funnel?machines=include", headers=bearer
    ).json
    assert machines["variants"][0]["viewed"] == 5
    bad = client.get(f"/api/v1/campaigns/{campaign.id}/funnel?machines=maybe", headers=bearer)
    assert bad.status_code == 422 and bad.json["error"]["code"] == "validation_failed"
    heatmap = client.get(
        f"/api/v1/campaigns/{campaign.id}/heatmap?metric=revenue", headers=bearer
    ).json
    first = next(e for e in heatmap["clicks"] if e["element"]["position"] == 0)
    assert (first["conversions"], first["revenue"], heatmap["currency"]) == (3, "15.5", "EUR")
    assert first["tier"] == "red"

    auth.add_user()
    auth.login()
    page = client.get(f"/campaigns/{campaign.id}?metric=conversions").get_data(as_text=True)
    assert "data-funnel" in page and "Click-to-open" in page
    assert 'data-step="viewed">4<br>' in page
    assert 'data-figure="opened-not-clicked">1<' in page
    assert "15.5 EUR" in page
    drill = client.get(f"/campaigns/{campaign.id}/links/{placement(campaign, 0).id}").get_data(
        as_text=True
    )
    assert "3 conversions" in drill or "2 conversions worth 15.5 EUR" in drill
    pdf = client.get(f"/campaigns/{campaign.id}/report.pdf")
    assert pdf.status_code == 200
    text = pdf_text(pdf.data, tmp_path)
    assert "funnel, people only" in text.lower() and "click-to-open" in text.lower()
    assert "15.5 EUR" in text
