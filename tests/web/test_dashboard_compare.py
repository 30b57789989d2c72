"""The comparison page as a marketer reads it: two variants' figures, the verdict and the
rule, the per-link table, the two colored emails; and the API's answer for the same switches."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from app.clicks.recording import record_clicks
from app.ingest.campaigns import record_deliveries
from app.reports import abtest
from tests.factories import (
    T0,
    add_user,
    click_event,
    log_in,
    make_campaign,
    pdf_text,
    placement,
    recipients,
)

HOUR = timedelta(hours=1)


@pytest.fixture
def user_client(app: Flask, client: FlaskClient) -> FlaskClient:
    add_user(app)
    assert log_in(client).status_code == 302
    return client


@pytest.fixture
def campaign_id(session: Session) -> int:
    """A: 10 delivered, 3 human clickers (one of them on AMP) and a HEAD request; B: 8
    delivered, 5 clickers."""
    campaign = make_campaign(session, variants=("A", "B"))
    record_deliveries(session, campaign, "A", [f"a{i}" for i in range(10)], delivered_at=T0)
    record_deliveries(session, campaign, "B", [f"b{i}" for i in range(8)], delivered_at=T0)
    who = recipients(session, *(f"a{i}" for i in range(10)), *(f"b{i}" for i in range(8)))
    record_clicks(
        session,
        [
            click_event(placement(campaign, 0), who["a0"], T0 + HOUR),
            click_event(placement(campaign, 1), who["a0"], T0 + 3 * HOUR),
            click_event(placement(campaign, 0), who["a1"], T0 + 2 * HOUR),
            click_event(placement(campaign, 0, "amp"), who["a2"], T0 + 2 * HOUR),
            click_event(placement(campaign, 0), who["a3"], T0 + 4 * HOUR, method="HEAD"),
            *(
                click_event(placement(campaign, 0, variant=1), who[f"b{i}"], T0 + (i + 1) * HOUR)
                for i in range(4)
            ),
            click_event(placement(campaign, 1, variant=1), who["b4"], T0 + 5 * HOUR),
        ],
    )
    session.commit()
    return campaign.id


def soup(client: FlaskClient, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def figures(page: BeautifulSoup, arm: str) -> dict[str, str]:
    row = page.select_one(f'tr[data-arm="{arm}"]')
    assert isinstance(row, Tag)
    return {str(td["data-figure"]): td.get_text(strip=True) for td in row.select("td")}


def test_the_page_shows_both_arms_the_difference_and_the_rule(
    user_client: FlaskClient, campaign_id: int
) -> None:
    page = soup(user_client, f"/campaigns/{campaign_id}/compare")
    assert figures(page, "A") == {
        "delivered": "10",
        "unique": "3",
        "rate": "30.00%",
        "interval": "10.78% to 60.32%",
    }
    assert figures(page, "B") == {
        "delivered": "8",
        "unique": "5",
        "rate": "62.50%",
        "interval": "30.57% to 86.32%",
    }
    difference = page.select_one("tr[data-difference]")
    assert isinstance(difference, Tag)
    assert "+32.50 pts" in difference.get_text()
    assert "-11.53 to +63.10 pts" in difference.get_text()
    assert "p = 0.168" in difference.get_text(" ", strip=True)
    verdict = page.select_one("[data-verdict]")
    assert verdict is not None and verdict.get_text().startswith("No winner")
    assert [w.get_text() for w in page.select("[data-warning]")] == [
        "Fewer than 1,000 deliveries in variant A: wait before concluding.",
        "Fewer than 1,000 deliveries in variant B: wait before concluding.",
    ]
    rule = page.select_one("[data-decision-rule]")
    assert rule is not None and rule.get_text() == abtest.DECISION_RULE
    # The chart draws both intervals.
    assert {
        str(line["data-interval"]) for line in page.select("svg.rate-chart [data-interval]")
    } == {
        "A",
        "B",
    }
    rows = page.select("table.links-table tbody tr")
    assert len(rows) == 4
    first = [td.get_text(" ", strip=True) for td in rows[0].select("td")]
    assert first[0].startswith("Shop the sale") and first[1:6] == [
        "2",
        "20.00%",
        "4",
        "50.00%",
        "+30.00 pts",
    ]


def test_the_emails_are_the_heatmaps_sandboxed_frames(
    user_client: FlaskClient, campaign_id: int
) -> None:
    page = soup(user_client, f"/campaigns/{campaign_id}/compare?machines=include")
    frames = page.select("iframe")
    assert len(frames) == 2
    for frame, name in zip(frames, ("A", "B"), strict=True):
        assert frame.has_attr("sandbox") and not frame["sandbox"]
        src = str(frame["src"])
        assert src.startswith(f"/campaigns/{campaign_id}/email?")
        assert f"variant={name}" in src and "machines=include" in src
        assert user_client.get(src).status_code == 200
    assert figures(page, "A")["unique"] == "4"  # the HEAD request counts now


def test_the_variants_follow_the_query(user_client: FlaskClient, campaign_id: int) -> None:
    page = soup(user_client, f"/campaigns/{campaign_id}/compare?a=B&b=A")
    arms = [str(row["data-arm"]) for row in page.select("tr[data-arm]")]
    assert arms == ["B", "A"]
    difference = page.select_one("tr[data-difference]")
    assert difference is not None and "-32.50 pts" in difference.get_text()


def test_the_heatmap_links_to_the_comparison(user_client: FlaskClient, campaign_id: int) -> None:
    page = soup(user_client, f"/campaigns/{campaign_id}")
    link = page.find("a", string="Compare variants")
    assert isinstance(link, Tag) and link["href"] == f"/campaigns/{campaign_id}/compare"


def test_one_variant_gets_a_message_and_no_link(session: Session, user_client: FlaskClient) -> None:
    campaign = make_campaign(session)
    session.commit()
    page = soup(user_client, f"/campaigns/{campaign.id}/compare")
    message = page.select_one("[data-nothing-to-compare]")
    assert message is not None and "single variant" in message.get_text()
    heatmap = soup(user_client, f"/campaigns/{campaign.id}")
    assert heatmap.find("a", string="Compare variants") is None


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("a=Z", 404, "Not found"),
        ("b=Z", 404, "Not found"),
        ("a=A&b=A", 400, "cannot be shown"),
        ("machines=all", 400, "cannot be shown"),
    ],
)
def test_bad_choices_answer_the_friendly_error_page(
    user_client: FlaskClient, campaign_id: int, query: str, status: int, says: str
) -> None:
    response = user_client.get(f"/campaigns/{campaign_id}/compare?{query}")
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert says in response.get_data(as_text=True)


def test_an_unknown_campaign_is_not_found(user_client: FlaskClient) -> None:
    response = user_client.get("/campaigns/999999/compare")
    assert response.status_code == 404 and "Not found" in response.get_data(as_text=True)


def test_the_page_needs_a_login(client: FlaskClient, campaign_id: int) -> None:
    response = client.get(f"/campaigns/{campaign_id}/compare")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
def bearer(session: Session) -> dict[str, str]:
    token = create_api_token(session, "test")
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_gives_the_pages_figures(
    client: FlaskClient, bearer: dict[str, str], campaign_id: int
) -> None:
    response = client.get(f"/api/v1/campaigns/{campaign_id}/compare", headers=bearer)
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["a"] == {
        "name": "A",
        "deliveries": 10,
        "uniqueClickers": 3,
        "clickRate": 30.0,
        "interval": {"low": 10.7791, "high": 60.3222},
    }
    assert (body["b"]["uniqueClickers"], body["b"]["clickRate"]) == (5, 62.5)
    assert body["difference"] == 32.5
    assert body["interval"] == {"low": -11.5305, "high": 63.1043}
    assert body["pValue"] == pytest.approx(0.1679385)
    assert body["winner"] is None and body["significant"] is False
    assert body["verdict"].startswith("No winner")
    assert body["decisionRule"] == abtest.DECISION_RULE
    assert body["machineClicks"] == [1, 0]
    assert [link["text"] for link in body["links"]][:2] == ["Shop the sale", "New arrivals"]
    assert body["links"][0]["a"]["uniqueClickers"] == 2
    assert body["onlyA"] == [] and body["onlyB"] == []
    included = client.get(
        f"/api/v1/campaigns/{campaign_id}/compare?a=B&b=A&machines=include", headers=bearer
    ).json
    assert included is not None
    assert (included["a"]["name"], included["b"]["uniqueClickers"]) == ("B", 4)


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("a=Z", 404, "variant_not_found"),
        ("a=A&b=A", 400, "invalid_view"),
        ("machines=all", 422, "validation_failed"),
        ("a=", 422, "validation_failed"),
    ],
)
def test_the_api_refuses_bad_choices_in_json(
    client: FlaskClient,
    bearer: dict[str, str],
    campaign_id: int,
    query: str,
    status: int,
    code: str,
) -> None:
    response = client.get(f"/api/v1/campaigns/{campaign_id}/compare?{query}", headers=bearer)
    assert response.status_code == status
    assert response.json is not None and response.json["error"]["code"] == code


def test_the_api_says_why_there_is_nothing_to_compare(
    session: Session, client: FlaskClient, bearer: dict[str, str]
) -> None:
    campaign = make_campaign(session)
    session.commit()
    response = client.get(f"/api/v1/campaigns/{campaign.id}/compare", headers=bearer)
    assert response.status_code == 422
    assert response.json is not None
    assert response.json["error"]["code"] == "nothing_to_compare"
    assert client.get(f"/api/v1/campaigns/{campaign.id}/compare").status_code == 401


# -- the comparison on paper ------------------------------------------------------------------


def flat(text: str) -> str:
    return " ".join(text.split())


def squeezed(text: str) -> str:
    """Without any whitespace: pdftotext drops the spaces around a narrow sign (A − B)."""
    return "".join(text.split())


def test_the_pdf_holds_the_pages_figures(
    user_client: FlaskClient, campaign_id: int, tmp_path: Path
) -> None:
    """Every figure, sentence and per-link row the page shows is in the PDF's text (read by
    pdftotext), then both colored emails."""
    url = f"/campaigns/{campaign_id}/compare?b=A&a=B&machines=include"
    page = soup(user_client, url)
    link = page.select_one(".page-actions a[download]")
    assert link is not None
    assert link["href"] == f"/campaigns/{campaign_id}/compare.pdf?a=B&b=A&machines=include"
    response = user_client.get(str(link["href"]))
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert "comparison.pdf" in response.headers["Content-Disposition"]
    text = flat(pdf_text(response.data, tmp_path))
    for arm in ("A", "B"):
        row = page.select_one(f'tr[data-arm="{arm}"]')
        assert isinstance(row, Tag)
        assert flat(row.get_text(" ")) in text, arm
    difference = page.select_one("tr[data-difference]")
    assert isinstance(difference, Tag)
    for cell in difference.select("th, td"):
        assert squeezed(cell.get_text()) in squeezed(text)
    for selector in ("[data-verdict]", "[data-warning]", "[data-decision-rule]", ".verdict .muted"):
        found = page.select(selector)
        assert found, selector
        for element in found:
            assert flat(element.get_text(" ")) in text, selector
    assert "Fewer than 1,000 deliveries in variant A" in text
    rows = page.select("table.links-table tbody tr")
    assert rows
    for row in rows:
        # Long destinations may be cut on paper; the text and every figure are whole.
        cells = [flat(td.get_text(" ")) for td in row.select("td")]
        name = flat(row.select_one(".link-text").get_text(" "))  # type: ignore[union-attr]
        assert re.search(re.escape(name) + r".*?" + r"\s+".join(map(re.escape, cells[1:])), text)
    # The emails, colored by unique clickers: b's after a's, each on pages of its own.
    pages = pdf_text(response.data, tmp_path).split("\f")
    emails = [p for p in pages if "The email as sent" in p]
    assert [re.search(r"variant (\w+), HTML part", p).group(1) for p in emails][:1] == ["B"]  # type: ignore[union-attr]
    assert "variant A, HTML part" in emails[-1]
    assert "Variants B and A compared" in pages[0]


def test_the_pdf_needs_a_login_and_two_variants(
    client: FlaskClient, session: Session, campaign_id: int
) -> None:
    url = f"/campaigns/{campaign_id}/compare.pdf"
    response = client.get(url)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    single = make_campaign(session, variants=("A",))
    session.commit()
    add_user(client.application)
    assert log_in(client).status_code == 302
    assert client.get(f"/campaigns/{single.id}/compare.pdf").status_code == 422
    assert client.get(f"{url}?a=A&b=A").status_code == 400
    assert client.get(f"{url}?a=Z").status_code == 404


def test_the_api_gives_the_same_pdf(client: FlaskClient, bearer: dict[str, str], campaign_id: int,
                                    tmp_path: Path) -> None:  # fmt: skip
    headers = bearer
    url = f"/api/v1/campaigns/{campaign_id}/compare.pdf"
    response = client.get(url, headers=headers)
    assert response.status_code == 200 and response.data.startswith(b"%PDF-")
    assert "62.50%" in pdf_text(response.data, tmp_path)
    assert client.get(url).status_code == 401
    bad = client.get(f"{url}?a=A&b=A", headers=headers)
    assert (bad.status_code, bad.json["error"]["code"]) == (400, "invalid_view")  # type: ignore[index]
