"""The dashboard as a marketer uses it: log in, find a campaign, read its heatmap, drill down."""

from __future__ import annotations

import csv
import html
import io
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.clicks.recording import ClickEvent, record_clicks
from app.ingest.campaigns import (
    VariantInput,
    create_campaign,
    ensure_recipients,
    link_rules,
    record_deliveries,
)
from app.models import Click, Placement, PlacementChange
from app.reports import fetcher as fetching
from app.vocabulary import HONEYPOT
from app.web import dashboard
from tests.factories import (
    AuthActions,
    Recorder,
    add_user,
    click_event,
    csrf_from,
    log_in,
    pdf_text,
    recording_server,
)

HTML = """<!doctype html>
<html><head><title>Spring</title></head><body>
<a href="https://shop.example.com/sale">Shop the sale</a>
<p><a href="https://shop.example.com/blog">Read the blog</a></p>
<a href="https://shop.example.com/careers">Careers</a>
<a href="mailto:help@example.com">Mail us</a>
<script>alert(1)</script>
</body></html>"""

# Recipient ids and user agents come from outside, so some look like spreadsheet formulas.
RECIPIENTS = ['=HYPERLINK("http://evil.example","x")', "+123", "@SUM(A1)", "dan", "eve"]
RECIPIENTS += [f"r{i}" for i in range(5)]


@dataclass
class Seeded:
    campaign_id: int
    placements: list[int]  # tracked placements in email order: sale, blog, careers
    positions: list[int]


def seed(app: Flask, name: str = "Spring sale", clicks: bool = True) -> Seeded:
    """A campaign delivered to 10 recipients; blog: 5 clicks by 3 people, sale: 2 by 2."""
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        created = create_campaign(
            s,
            name,
            [VariantInput("A", HTML)],
            rules=link_rules(app),
            max_part_bytes=app.config["MAX_PART_BYTES"],
        )
        campaign = created.campaign
        start = datetime.now(UTC) - timedelta(hours=3)
        # Delivered before the clicks: a click before its delivery is a machine's.
        record_deliveries(s, campaign, "A", RECIPIENTS, delivered_at=start - timedelta(hours=1))
        tracked = s.scalars(
            select(Placement)
            .where(Placement.campaign_id == campaign.id, Placement.tracked.is_(True))
            .where(Placement.kind != HONEYPOT)
            .order_by(Placement.position)
        ).all()
        sale, blog, _careers = tracked
        ids = ensure_recipients(s, RECIPIENTS)
        plan = [
            (blog, RECIPIENTS[0], "-evil agent"),
            (blog, RECIPIENTS[0], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
            (blog, RECIPIENTS[1], "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"),
            (blog, RECIPIENTS[2], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
            (blog, RECIPIENTS[2], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
            (sale, RECIPIENTS[0], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
            (sale, RECIPIENTS[3], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
        ]
        if clicks:
            events = [
                ClickEvent(
                    click_id=f"{campaign.id}-{n}",
                    clicked_at=start + timedelta(minutes=n),
                    campaign_id=campaign.id,
                    variant_id=placement.variant_id,
                    part="html",
                    placement_id=placement.id,
                    recipient_id=ids[recipient],
                    method="GET",
                    user_agent=agent,
                    ip_prefix=None,
                )
                for n, (placement, recipient, agent) in enumerate(plan)
            ]
            record_clicks(s, events)
        s.commit()
        return Seeded(campaign.id, [p.id for p in tracked], [p.position for p in tracked])


@pytest.fixture
def user_client(app: Flask, client: FlaskClient) -> FlaskClient:
    add_user(app)
    assert log_in(client).status_code == 302
    return client


def soup_of(response: TestResponse) -> BeautifulSoup:
    return soup_of_text(response.get_data(as_text=True))


def soup_of_text(text: str) -> BeautifulSoup:
    return BeautifulSoup(text, "html.parser")


def cells(row: Tag) -> list[str]:
    return [" ".join(cell.get_text(" ").split()) for cell in row.find_all(["td", "th"])]


# -- logging in and out -------------------------------------------------------------------------


def test_login_and_logout(auth: AuthActions, client: FlaskClient) -> None:
    auth.add_user()
    assert client.get("/").headers["Location"] == "/login?next=/"
    assert auth.login(next="/").headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "ana" in home.get_data(as_text=True)
    out = auth.logout()
    assert out.status_code == 302
    assert out.headers["Location"] == "/login"
    assert "You have been logged out" in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_is_not_a_get(user_client: FlaskClient) -> None:
    assert user_client.get("/logout").status_code == 405
    assert user_client.get("/").status_code == 200


def test_login_form_needs_its_csrf_token(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    client.get("/login")
    form = {"username": "ana", "password": "correct horse battery"}
    missing = client.post("/login", data=form)
    assert missing.status_code == 400
    assert "expired" in missing.get_data(as_text=True)
    wrong = client.post("/login", data={**form, "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert client.get("/").status_code == 302  # still logged out


def test_login_without_a_session_cookie_is_refused(app: Flask) -> None:
    add_user(app)
    client = app.test_client(use_cookies=False)
    response = client.post(
        "/login", data={"username": "ana", "password": "correct horse battery", "csrf_token": "x"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("token", [None, "", "forged", "A" * 43])
def test_logout_needs_the_sessions_token(user_client: FlaskClient, token: str | None) -> None:
    data = {} if token is None else {"csrf_token": token}
    assert user_client.post("/logout", data=data).status_code == 400
    assert user_client.get("/").status_code == 200  # still logged in


def test_csrf_token_may_come_in_a_header(user_client: FlaskClient) -> None:
    token = csrf_from(user_client.get("/").get_data(as_text=True))
    assert user_client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 302
    assert user_client.get("/").status_code == 302


# -- campaign list ------------------------------------------------------------------------------


def test_campaign_list_shows_figures(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    with app.extensions["clickmap.sessionmaker"]() as s:  # and a link checker's HEAD
        link = s.get(Placement, seeded.placements[0])
        assert link is not None
        probe = click_event(link, ensure_recipients(s, RECIPIENTS[:1])[RECIPIENTS[0]],
                            datetime.now(UTC), method="HEAD")  # fmt: skip
        record_clicks(s, [probe])
        s.commit()
    page = soup_of(user_client.get("/campaigns"))
    rows = page.select("table.campaigns tbody tr")
    assert len(rows) == 1
    name, created, *figures = cells(rows[0])
    assert name == "Spring sale"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", created)
    # delivered, clicks, unique clickers (any link), click rate: people's; machines left out
    assert figures == ["10", "7", "4", "40.0%", "1"]
    link = rows[0].find("a")
    assert link is not None
    assert link["href"] == f"/campaigns/{seeded.campaign_id}"


def test_campaign_list_search_and_paging(
    app: Flask, user_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "CAMPAIGNS_PER_PAGE", 2)
    for name in ("Autumn news", "Spring sale", "Summer sale"):
        seed(app, name, clicks=False)

    def names(url: str) -> list[str]:
        return [cells(row)[0] for row in soup_of(user_client.get(url)).select("tbody tr")]

    assert names("/campaigns") == ["Summer sale", "Spring sale"]  # newest first
    assert names("/campaigns?page=2") == ["Autumn news"]
    first = user_client.get("/campaigns").get_data(as_text=True)
    assert "Page 1 of 2" in first
    assert 'href="/campaigns?page=2"' in first
    assert names("/campaigns?q=SALE") == ["Summer sale", "Spring sale"]
    assert names("/campaigns?q=news") == ["Autumn news"]
    assert names("/campaigns?q=%25") == []  # a LIKE wildcard is a plain character
    searched = user_client.get("/campaigns?q=sale").get_data(as_text=True)
    assert "Page 1" not in searched  # one page only: no pager
    empty = user_client.get("/campaigns?q=zzz").get_data(as_text=True)
    assert "No campaign name contains" in empty


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", "99999999999"])
def test_campaign_list_refuses_bad_pages(user_client: FlaskClient, page: str) -> None:
    response = user_client.get(f"/campaigns?page={page}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"


def test_search_is_escaped(app: Flask, user_client: FlaskClient) -> None:
    seed(app, "<b>bold</b>", clicks=False)
    body = user_client.get("/campaigns?q=<script>").get_data(as_text=True)
    assert "<script>" not in body.replace('<script src="/static/clickmap.js" defer></script>', "")
    listed = user_client.get("/campaigns").get_data(as_text=True)
    assert "&lt;b&gt;bold&lt;/b&gt;" in listed


# -- the heatmap page ---------------------------------------------------------------------------


def ranked(page: BeautifulSoup) -> list[list[str]]:
    return [cells(row) for row in page.select("table.ranked tbody tr")]


def test_heatmap_ranks_links_by_total(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    response = user_client.get(f"/campaigns/{seeded.campaign_id}")
    assert response.status_code == 200
    page = soup_of(response)
    rows = ranked(page)
    # rank, link, total, unique, rate, share (+ percent bar), first, last, details
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[1].split(" #")[0] for row in rows] == ["Read the blog", "Shop the sale", "Careers"]
    assert [row[2:8] for row in rows] == [
        # Three people started on the blog; of them, one went on to the sale.
        ["5", "3", "30.0%", "71.4%", "3", "2"],
        ["2", "2", "20.0%", "28.6%", "1", "2"],
        ["0", "0", "0.0%", "0.0%", "0", "0"],
    ]
    figures = [dd.get_text(strip=True) for dd in page.select(".figures dd")]
    # delivered, clicks, unique clickers, click rate, bounced, complaints
    assert figures == ["10", "7", "4", "40.0%"]
    assert "https://shop.example.com/blog" in rows[0][1]
    skipped = page.select(".skipped tbody tr")
    assert len(skipped) == 1
    assert "mailto:help@example.com" in cells(skipped[0])[1]
    assert len(page.select(".legend-items li")) == 6
    assert len(page.select(".charts svg")) == 2


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ("metric=unique", ["Read the blog", "Shop the sale", "Careers"]),
        ("sort=position", ["Shop the sale", "Read the blog", "Careers"]),
        ("metric=rate&sort=position", ["Shop the sale", "Read the blog", "Careers"]),
        ("device=mobile", ["Read the blog", "Shop the sale", "Careers"]),
    ],
)
def test_heatmap_follows_the_query(
    app: Flask, user_client: FlaskClient, query: str, order: list[str]
) -> None:
    seeded = seed(app)
    page = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}?{query}"))
    assert [row[1].split(" #")[0] for row in ranked(page)] == order


def test_heatmap_device_filter_changes_the_numbers(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    page = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}?device=mobile"))
    assert ranked(page)[0][2:4] == ["1", "1"]
    selected = page.select_one('select[name="device"] option[selected]')
    assert selected is not None
    assert selected["value"] == "mobile"


def test_heatmap_lists_the_campaigns_clients_and_narrows_to_one(
    app: Flask, user_client: FlaskClient
) -> None:
    """The client and country choices are the campaign's own, with their clicks; picking
    one narrows the figures and keeps the choice selected."""
    seeded = seed(app)
    page = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}"))
    clients = [o.get_text(strip=True) for o in page.select('select[name="client"] option')]
    # People's clicks only: the "-evil agent" click is no browser's, so its client is unknown.
    assert clients == ["All clients", "Chrome (5)", "In-app browser (1)", "Unknown (1)"]
    countries = [o.get_text(strip=True) for o in page.select('select[name="country"] option')]
    assert countries == ["All countries", "Unknown (7)"]  # the seed's clicks have no address
    narrowed = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}?client=In-app+browser"))
    assert ranked(narrowed)[0][2:4] == ["1", "1"]
    selected = narrowed.select_one('select[name="client"] option[selected]')
    assert selected is not None and selected["value"] == "In-app browser"
    summary = narrowed.select_one(".view-summary")
    assert summary is not None and "Client: In-app browser" in summary.get_text(" ", strip=True)


def test_drill_down_says_who_clicks_the_link(app: Flask, user_client: FlaskClient) -> None:
    """By device, client and country: the link's human clicks and clickers, as stored."""
    seeded = seed(app)
    blog = seeded.placements[1]
    page = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}/links/{blog}"))
    head = page.select_one("#breakdown-title")
    assert head is not None and "5 human clicks by 3 recipients" in head.get_text(" ")
    tables = {
        name: [cells(row) for row in page.select(f"table.breakdown-{name} tbody tr")]
        for name in ("device", "client", "country")
    }
    with app.extensions["clickmap.sessionmaker"]() as s:
        for name, column in (("device", Click.device), ("client", Click.client)):
            stored = s.execute(
                select(column, func.count(), func.count(Click.recipient_id.distinct()))
                .where(Click.placement_id == blog, Click.label == "human")
                .group_by(column)
            ).all()
            shown = {row[0]: (int(row[1]), int(row[2])) for row in tables[name]}
            assert shown == {
                (value.capitalize() if name == "device" else value) if value else "Unknown": (
                    int(n), int(people),
                )
                for value, n, people in stored
            }  # fmt: skip
    assert tables["device"][0] == ["Desktop", "3", "2", "60.0%"]
    assert tables["country"] == [["Unknown", "5", "3", "100.0%"]]


def test_heatmap_frame_is_sandboxed_and_rows_target_it(
    app: Flask, user_client: FlaskClient
) -> None:
    seeded = seed(app)
    cid = seeded.campaign_id
    page = soup_of(user_client.get(f"/campaigns/{cid}?metric=unique&period=7d"))
    frame = page.find("iframe")
    assert isinstance(frame, Tag)
    assert frame.has_attr("sandbox")
    assert not frame["sandbox"]  # no allow-scripts, no allow-same-origin: nothing at all
    assert frame["name"] == "heatmap-frame"
    src = str(frame["src"])
    assert src.startswith(f"/campaigns/{cid}/email?")
    assert "metric=unique" in src
    assert "period=7d" in src
    row_links = page.select("table.ranked a[target=heatmap-frame]")
    blog = seeded.positions[1]
    assert row_links[0]["href"] == f"{src}#cm-{blog}"
    details = page.select("table.ranked td.actions a")
    assert str(details[0]["href"]).startswith(f"/campaigns/{cid}/links/{seeded.placements[1]}?")
    pdf = page.find("a", string=re.compile("Download PDF"))
    assert isinstance(pdf, Tag)
    assert pdf["href"] == f"/campaigns/{cid}/report.pdf?" + src.split("?", 1)[1]


def test_heatmap_page_has_a_strict_csp(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    response = user_client.get(f"/campaigns/{seeded.campaign_id}")
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_data(as_text=True)
    # The charts' own styles run by nonce; their scripts are gone.
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce is not None
    assert f'<style nonce="{nonce.group(1)}"' in body
    assert body.count("<script") == 1  # our static file only


def test_email_route_is_a_scriptless_sandbox(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    response = user_client.get(f"/campaigns/{seeded.campaign_id}/email?metric=unique")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;")
    assert "allow-scripts" not in csp
    assert "allow-same-origin" not in csp
    assert "default-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    body = response.get_data(as_text=True)
    for position in seeded.positions:
        assert f'id="cm-{position}"' in body
    assert ":target" in body


@pytest.mark.parametrize(
    "query",
    ["metric=bogus", "part=pdf", "period=1y", "sort=random", "device=fridge",
     "period=custom&start=2025-02-30", "period=custom&start=2025-03-02&end=2025-03-01"],
)  # fmt: skip
def test_bad_view_parameters_answer_a_400_page(
    app: Flask, user_client: FlaskClient, query: str
) -> None:
    seeded = seed(app, clicks=False)
    for route in ("", "/email"):
        response = user_client.get(f"/campaigns/{seeded.campaign_id}{route}?{query}")
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        assert "cannot be shown" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/campaigns/999999", "/campaigns/999999/email", "/campaigns/{cid}?variant=Z",
     "/campaigns/{cid}?part=amp", "/campaigns/999999/links/1", "/campaigns/{cid}/links/999999",
     "/campaigns/{cid}/links/999999/clicks.csv"],
)  # fmt: skip
def test_unknown_things_answer_a_404_page(app: Flask, user_client: FlaskClient, path: str) -> None:
    seeded = seed(app, clicks=False)
    response = user_client.get(path.format(cid=seeded.campaign_id))
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)


# -- drill-down -----------------------------------------------------------------------------------


def test_drill_down_pages_through_clicks(
    app: Flask, user_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "CLICKS_PER_PAGE", 2)
    seeded = seed(app)
    url = f"/campaigns/{seeded.campaign_id}/links/{seeded.placements[1]}?metric=unique"
    first = soup_of(user_client.get(url))
    assert "5 clicks" in first.get_text()
    assert "Page 1 of 3" in first.get_text()
    rows = [cells(row) for row in first.select("table.clicks tbody tr")]
    # Newest first: the last two clicks on the blog link were by recipient @SUM(A1).
    assert [row[0] for row in rows] == ["@SUM(A1)", "@SUM(A1)"]
    assert rows[0][2:6] == ["Desktop", "Chrome", "—", "GET"]  # no address: no country
    next_link = first.find("a", rel="next")
    assert isinstance(next_link, Tag)
    assert "page=2" in str(next_link["href"])
    assert "metric=unique" in str(next_link["href"])  # the heatmap view is kept
    back = first.select_one(".crumbs a:nth-of-type(2)")
    assert back is not None
    assert back["href"] == f"/campaigns/{seeded.campaign_id}?metric=unique"
    last = soup_of(user_client.get(url + "&page=3"))
    assert [cells(row)[0] for row in last.select("table.clicks tbody tr")] == [RECIPIENTS[0]]


def test_the_honeypot_has_no_drill_down(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    with app.extensions["clickmap.sessionmaker"]() as s:
        honeypot = s.scalars(
            select(Placement.id).where(
                Placement.campaign_id == seeded.campaign_id, Placement.kind == HONEYPOT
            )
        ).one()
    url = f"/campaigns/{seeded.campaign_id}/links/{honeypot}"
    assert user_client.get(url).status_code == 404
    assert user_client.get(url + "/clicks.csv").status_code == 404


def test_drill_down_ignores_url_for_specials(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    url = f"/campaigns/{seeded.campaign_id}/links/{seeded.placements[1]}"
    response = user_client.get(url + "?_external=1&_scheme=javascript&campaign_id=5")
    assert response.status_code == 200
    assert "javascript:" not in response.get_data(as_text=True)


def test_clicks_csv_is_streamed_and_formula_safe(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app, name='Spring "sale"/../x')
    url = f"/campaigns/{seeded.campaign_id}/links/{seeded.placements[1]}/clicks.csv"
    response = user_client.get(url)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    expected = r'attachment; filename="clickmap-\d+-spring-sale-x-link-html-\d+-clicks\.csv"'
    assert re.fullmatch(expected, disposition)
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == [
        "recipient",
        "clicked_at",
        "device",
        "client",
        "method",
        "user_agent",
        "label",
        "reasons",
        "country",
    ]
    assert {row[6] for row in table[1:]} == {"human"}
    assert len(table) == 6
    recipients = [row[0] for row in table[1:]]
    assert recipients == [
        "'@SUM(A1)",
        "'@SUM(A1)",
        "'+123",
        "'" + RECIPIENTS[0],
        "'" + RECIPIENTS[0],
    ]
    assert table[-1][5] == "'-evil agent"
    assert datetime.fromisoformat(table[1][1]) > datetime.fromisoformat(table[-1][1])


def test_csv_cell() -> None:
    assert dashboard.csv_cell("=1+2") == "'=1+2"
    assert dashboard.csv_cell("\t=x") == "'\t=x"
    assert dashboard.csv_cell("plain") == "plain"
    assert dashboard.csv_cell(None) == ""


def test_report_partial_renders_for_print_without_a_request(app: Flask) -> None:
    """The PDF renders _heatmap_report.html on its own: no links, no forms, no request."""
    from flask import render_template

    from app.db import get_session
    from app.reports.heatmap import ViewParams, build_view

    seeded = seed(app)
    with app.app_context():
        view = build_view(get_session(), seeded.campaign_id, ViewParams(metric="unique"))
        html = render_template("_heatmap_report.html", view=view, for_print=True)
    page = BeautifulSoup(html, "html.parser")
    assert page.find("a") is None
    assert page.find("form") is None
    assert page.find("script") is None
    assert "nonce" not in html
    assert [row[1].split(" #")[0] for row in ranked(page)] == [
        "Read the blog", "Shop the sale", "Careers",
    ]  # fmt: skip
    assert "Unique clickers" in page.get_text()


# -- the email's remote images --------------------------------------------------------------------


@pytest.fixture
def image_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 answering every GET with a small SVG, noting each."""
    with recording_server() as found:
        yield found


def pretend_public(app: Flask, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the proxy reach the test server as if 127.0.0.1 were a public host."""
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")

    def resolve(host: str, port: int, *_args: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    policy = replace(fetching.fetch_policy(app, "EMAIL_REMOTE_IMAGES"), ports=frozenset({port}))
    app.extensions[dashboard.EMAIL_ASSETS] = fetching.RemoteCache(policy, resolver=resolve)


def seed_email(app: Flask, html: str) -> int:
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        created = create_campaign(
            s, "Images", [VariantInput("A", html)],
            rules=link_rules(app), max_part_bytes=app.config["MAX_PART_BYTES"],
        )  # fmt: skip
        s.commit()
        return created.campaign.id


_ASSET = re.compile(r"/campaigns/\d+/email/asset\?u=[^\"'\s)]+")


def asset_urls(body: str) -> list[str]:
    return [html.unescape(found) for found in _ASSET.findall(body)]


def frame_client(app: Flask) -> FlaskClient:
    """What the sandboxed frame is to the server: a client that sends no cookie."""
    return app.test_client(use_cookies=False)


def images_email(port: int) -> str:
    return (
        "<!doctype html><html><head>"
        f'<link rel="stylesheet" href="http://images.example.com:{port}/mail.css">'
        f'<link rel="prefetch" href="http://images.example.com:{port}/next">'
        f"<style>body{{background:url(http://images.example.com:{port}/bg.svg)}}</style>"
        "</head><body>"
        f'<img src="http://images.example.com:{port}/logo.svg" alt="Logo">'
        '<a href="https://shop.example.com/sale">Shop the sale</a></body></html>'
    )


def test_the_email_frame_loads_images_only_through_our_proxy(
    app: Flask, user_client: FlaskClient, image_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    port, hits = image_server
    pretend_public(app, port, monkeypatch)
    campaign_id = seed_email(app, images_email(port))
    response = user_client.get(f"/campaigns/{campaign_id}/email")
    csp = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data:;" in csp and "font-src 'self' data:;" in csp
    assert "http:" not in csp and "https:" not in csp
    assert response.headers["X-DNS-Prefetch-Control"] == "off"
    body = response.get_data(as_text=True)
    assert "images.example.com" not in body
    assert "<link" not in body
    urls = asset_urls(body)
    assert len(urls) == 2  # the background and the logo
    assert hits == []  # showing the email fetched nothing
    # The sandboxed frame sends no cookie: the signed address alone is enough.
    frame = frame_client(app)
    for url in urls:
        image = frame.get(url)
        assert image.status_code == 200
        assert image.mimetype == "image/svg+xml"
        assert image.data == Recorder.body
        assert image.headers["Content-Security-Policy"].startswith("sandbox;")
        assert "Set-Cookie" not in image.headers
    assert frame.get(urls[1]).data == Recorder.body
    assert sorted(hits) == [f"images.example.com:{port} /{name}" for name in ("bg.svg", "logo.svg")]


def test_the_proxy_serves_only_addresses_it_signed_for_a_live_session(
    app: Flask, user_client: FlaskClient, image_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    port, hits = image_server
    pretend_public(app, port, monkeypatch)
    campaign_id = seed_email(app, images_email(port))
    other_id = seed_email(app, "<p>Another email</p>")
    page = user_client.get(f"/campaigns/{campaign_id}/email").get_data(as_text=True)
    [background, logo] = asset_urls(page)
    frame = frame_client(app)
    signed = logo.split("?u=", 1)[1]
    session_cookie = app.session_interface.get_signing_serializer(app).dumps(  # type: ignore[attr-defined]
        [campaign_id, 1, 0, f"http://images.example.com:{port}/secret.svg"]
    )
    refused = [
        f"/campaigns/{campaign_id}/email/asset",
        f"/campaigns/{campaign_id}/email/asset?u=http://images.example.com:{port}/logo.svg",
        f"/campaigns/{campaign_id}/email/asset?u={signed[:-2]}xx",
        f"/campaigns/{other_id}/email/asset?u={signed}",  # signed for another campaign
        f"/campaigns/{campaign_id}/email/asset?u={session_cookie}",  # another signature's salt
    ]
    for url in refused:
        assert frame.get(url).status_code == 404, url
    assert frame.get(logo).status_code == 200
    # Logging out ends the session, and with it every image address it was given.
    token = csrf_from(user_client.get("/").get_data(as_text=True))
    assert user_client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert frame.get(logo).status_code == 404
    assert frame.get(background).status_code == 404
    assert hits == [f"images.example.com:{port} /logo.svg"]


def test_refused_images_answer_an_invisible_placeholder(
    app: Flask, user_client: FlaskClient, image_server: tuple[int, list[str]]
) -> None:
    port, hits = image_server
    tracked = app.config["TRACKING_BASE_URL"]
    campaign_id = seed_email(
        app,
        f'<img src="http://127.0.0.1:{port}/intranet.png"><img src="http://10.1.2.3/x.png">'
        f'<img src="{tracked}/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA">'
        f'<img src="{tracked}/o/open.gif">',
    )
    body = user_client.get(f"/campaigns/{campaign_id}/email").get_data(as_text=True)
    urls = asset_urls(body)
    assert len(urls) == 4
    for url in urls:
        answer = frame_client(app).get(url)
        assert answer.status_code == 200
        assert answer.data == fetching.PLACEHOLDER
        assert answer.mimetype == "image/svg+xml"
    assert hits == []


def test_remote_images_can_be_left_out_of_the_email_frame(
    app: Flask, user_client: FlaskClient, image_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    port, hits = image_server
    pretend_public(app, port, monkeypatch)
    campaign_id = seed_email(app, images_email(port))
    before = asset_urls(user_client.get(f"/campaigns/{campaign_id}/email").get_data(as_text=True))
    app.config["EMAIL_REMOTE_IMAGES"] = False
    body = user_client.get(f"/campaigns/{campaign_id}/email").get_data(as_text=True)
    assert asset_urls(body) == []
    assert "images.example.com" not in body and "Logo" in body
    # An address handed out before the switch fetches nothing either.
    assert frame_client(app).get(before[1]).data == fetching.PLACEHOLDER
    assert hits == []


@pytest.mark.parametrize("big", [2**31, 2**63, 2**64 + 1, 10**30])
def test_ids_past_the_database_range_are_404_pages(user_client: FlaskClient, big: int) -> None:
    for url in (
        f"/campaigns/{big}",
        f"/campaigns/{big}/email",
        f"/campaigns/{big}/report.pdf",
        f"/campaigns/1/links/{big}",
        f"/campaigns/1/links/{big}/clicks.csv",
    ):
        response = user_client.get(url)
        assert response.status_code == 404, url
        assert b"<html" in response.data.lower() or b"<!doctype" in response.data.lower()


# -- naming links and marking CTAs ---------------------------------------------------------------


def edit_link(client: FlaskClient, campaign_id: int, placement_id: int, query: str = "",
              **form: str) -> TestResponse:  # fmt: skip
    """Submit a link's edit form as the heatmap page renders it (with the page's token)."""
    page = client.get(f"/campaigns/{campaign_id}?{query}").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), **form}
    url = f"/campaigns/{campaign_id}/links/{placement_id}/settings"
    return client.post(f"{url}?{query}" if query else url, data=data)


def test_renaming_and_marking_a_cta_shows_on_the_page_and_is_recorded(
    app: Flask, user_client: FlaskClient
) -> None:
    seeded = seed(app)
    cid, careers = seeded.campaign_id, seeded.placements[2]
    name = "<script>alert(1)</script> Join us"
    query = "metric=unique&sort=position"
    response = edit_link(user_client, cid, careers, query, label=name, cta="on")
    assert response.status_code == 302
    # Back to the same view, at the link's row.
    assert response.headers["Location"] == f"/campaigns/{cid}?{query}#row-{seeded.positions[2]}"
    body = user_client.get(response.headers["Location"]).get_data(as_text=True)
    assert html.escape(name, quote=False) in body and name not in body
    row = soup_of_text(body).select_one(f"#row-{seeded.positions[2]}")
    assert row is not None and "is-cta" in (row.get("class") or [])
    # Nobody clicked it: 0% of the delivered, under the 10% guideline.
    assert "Under the 10% CTA guideline" in row.get_text(" ")
    with app.extensions["clickmap.sessionmaker"]() as s:
        changes = s.scalars(select(PlacementChange).order_by(PlacementChange.field)).all()
        assert [(c.username, c.field, c.old_value, c.new_value) for c in changes] == [
            ("ana", "cta", "false", "true"),
            ("ana", "label", None, name),
        ]
        assert all(c.changed_at > datetime.now(UTC) - timedelta(minutes=5) for c in changes)


def test_ctas_only_lists_the_marked_links(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    cid = seeded.campaign_id
    assert edit_link(user_client, cid, seeded.placements[0], cta="on").status_code == 302
    page = soup_of(user_client.get(f"/campaigns/{cid}?ctas=only"))
    assert [row[1].split(" #")[0] for row in ranked(page)] == ["Shop the sale CTA"]
    # 2 clickers of 10 delivered: 20%, above the guideline.
    assert not page.select("[data-below-guideline]")
    figures = [dd.get_text(strip=True) for dd in page.select(".figures dd")]
    assert figures == ["10", "7", "4", "40.0%"]  # the summary stays the whole part's
    selected = page.select_one('select[name="ctas"] option[selected]')
    assert selected is not None and selected["value"] == "only"


def test_clearing_the_name_and_the_flag(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    cid, sale = seeded.campaign_id, seeded.placements[0]
    edit_link(user_client, cid, sale, label="Hero", cta="on")
    assert edit_link(user_client, cid, sale, label="  ").status_code == 302  # box unticked
    page = soup_of(user_client.get(f"/campaigns/{cid}?sort=position"))
    assert ranked(page)[0][1].startswith("Shop the sale #")


def test_link_edits_need_the_csrf_token(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    url = f"/campaigns/{seeded.campaign_id}/links/{seeded.placements[0]}/settings"
    for data in ({"label": "Forged", "cta": "on"}, {"label": "Forged", "csrf_token": "x"}):
        assert user_client.post(url, data=data).status_code == 400
    with app.extensions["clickmap.sessionmaker"]() as s:
        assert s.scalars(select(PlacementChange)).all() == []
        link = s.get(Placement, seeded.placements[0])
        assert link is not None and (link.label, link.cta) == (None, False)


def test_link_edits_need_a_login(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app)
    url = f"/campaigns/{seeded.campaign_id}/links/{seeded.placements[0]}/settings"
    response = client.post(url, data={"label": "x"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    with app.extensions["clickmap.sessionmaker"]() as s:
        assert s.scalars(select(PlacementChange)).all() == []


def test_link_edits_of_unknown_links_are_not_found(app: Flask, user_client: FlaskClient) -> None:
    seeded, other = seed(app), seed(app, "Other", clicks=False)
    token = csrf_from(user_client.get("/").get_data(as_text=True))
    for cid, pid in [
        (seeded.campaign_id, other.placements[0]),
        (seeded.campaign_id, 2**31 - 1),
        (2**31 - 1, seeded.placements[0]),
    ]:
        url = f"/campaigns/{cid}/links/{pid}/settings"
        assert user_client.post(url, data={"csrf_token": token, "label": "x"}).status_code == 404


def test_an_over_long_name_is_refused_and_nothing_changes(
    app: Flask, user_client: FlaskClient
) -> None:
    seeded = seed(app)
    response = edit_link(user_client, seeded.campaign_id, seeded.placements[0], label="x" * 201)
    assert response.status_code == 400
    assert "at most 200 characters" in response.get_data(as_text=True)


def test_the_link_changes_page_lists_who_changed_what_and_when(
    app: Flask, user_client: FlaskClient
) -> None:
    from app.accounts import check_api_token, create_api_token
    from app.ingest.placements import mark_cta

    seeded = seed(app)
    cid, careers = seeded.campaign_id, seeded.placements[2]
    url = f"/campaigns/{cid}/changes"
    heatmap = soup_of(user_client.get(f"/campaigns/{cid}"))
    assert heatmap.select_one(f'.page-actions a[href="{url}"]') is not None
    assert soup_of(user_client.get(url)).select_one("[data-no-changes]") is not None
    edit_link(user_client, cid, careers, label="<b>Join</b> us", cta="on")
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = check_api_token(s, create_api_token(s, "my-esp"))
        assert token is not None
        mark_cta(s, cid, careers, False, token)
        s.commit()
    rows = [cells(row) for row in soup_of(user_client.get(url)).select(".changes-table tbody tr")]
    assert [row[1:] for row in rows] == [
        [
            "API token my-esp",
            f"<b>Join</b> us Variant A · HTML · #{seeded.positions[2]} · “Careers”",
            "Call to action: CTA → not a CTA",
        ],
        [
            "ana",
            f"<b>Join</b> us Variant A · HTML · #{seeded.positions[2]} · “Careers”",
            "Call to action: not a CTA → CTA",
        ],
        [
            "ana",
            f"<b>Join</b> us Variant A · HTML · #{seeded.positions[2]} · “Careers”",
            "Name: no name → “<b>Join</b> us”",
        ],
    ]
    assert "<b>Join</b>" not in user_client.get(url).get_data(as_text=True)  # escaped
    assert user_client.get(f"{url}?cursor=nope").status_code == 400
    assert user_client.get(f"/campaigns/{2**31 - 1}/changes").status_code == 404


def test_the_link_changes_page_needs_a_login(app: Flask, client: FlaskClient) -> None:
    seeded = seed(app)
    response = client.get(f"/campaigns/{seeded.campaign_id}/changes")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_grouping_by_destination_merges_rows(app: Flask, user_client: FlaskClient) -> None:
    seeded = seed(app)
    page = soup_of(user_client.get(f"/campaigns/{seeded.campaign_id}?group=destination"))
    # Each destination is linked once in this email: the rows are the links, without forms.
    assert len(ranked(page)) == 3
    assert not page.select("form[action*='/settings']")
    title = page.select_one("#ranking-title")
    assert title is not None and "3 destinations" in title.get_text(" ")


def test_the_pdf_shows_the_name_and_the_cta_flag(
    app: Flask, user_client: FlaskClient, tmp_path: Path
) -> None:
    seeded = seed(app)
    cid = seeded.campaign_id
    edit_link(user_client, cid, seeded.placements[2], label="Join our team", cta="on")
    response = user_client.get(f"/campaigns/{cid}/report.pdf?ctas=only")
    assert response.status_code == 200
    text = " ".join(pdf_text(response.data, tmp_path).split())
    assert "Join our team" in text
    assert "Under the 10% CTA guideline" in text
    assert "Read the blog" not in text.split("Join our team")[-1]  # only the CTA is listed
    assert "1 tracked link marked as CTA" in text
