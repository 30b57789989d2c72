"""The JSON API, end to end on each database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from app.ingest.campaigns import PIXEL_AFTER, PIXEL_BEFORE
from app.ingest.campaigns import ensure_recipients as ensure
from app.ingest.rewriting import HONEYPOT_AFTER, HONEYPOT_BEFORE
from app.models import ApiToken, Campaign, Delivery, Placement, Recipient
from app.tokens import token_codec
from app.vocabulary import HONEYPOT
from tests.factories import empty_tables, make_app

HTML = """<!DOCTYPE html>
<html><body>
<a href="https://shop.example.com/sale?utm_x=1&amp;b=2#top">Sale</a>
<a HREF='mailto:help@example.com'>Mail us</a>
<a href="{{unsubscribe_url}}">Unsubscribe</a>
<a href="https://shop.example.com/sale?utm_x=1&amp;b=2#top"><img alt="Banner"></a>
</body></html>"""
AMP = """<!doctype html><html ⚡4email data-css-strict><head><meta charset="utf-8">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp4email-boilerplate>body{visibility:hidden}</style></head>
<body><a href="https://shop.example.com/amp">AMP link</a></body></html>"""


BINARY = "".join(map(chr, range(1, 12))) + "<a>"  # control characters: a binary file


def sender_links(session: Session, campaign_id: int) -> list[Placement]:
    """The campaign's tracked HTML links as the sender wrote them (the hidden honeypot
    aside), in email order."""
    return list(
        session.scalars(
            select(Placement)
            .where(Placement.campaign_id == campaign_id, Placement.part == "html")
            .where(Placement.tracked, Placement.kind != HONEYPOT)
            .order_by(Placement.position)
        )
    )


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        token = create_api_token(s, "test")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


def _create(client: FlaskClient, auth: dict[str, str], **body: Any) -> Any:
    payload = {"name": "Spring", "variants": [{"name": "A", "html": HTML, "amp": AMP}]}
    payload.update(body)
    return client.post("/api/v1/campaigns", json=payload, headers=auth)


def test_create_returns_catalog_with_reasons(client: FlaskClient, auth: dict[str, str]) -> None:
    response = _create(client, auth)
    assert response.status_code == 201
    links = response.json["variants"][0]["links"]
    html = [link for link in links if link["part"] == "html"]
    assert [(link["tracked"], link["skip_reason"]) for link in html] == [
        (True, None),
        (False, "mailto"),
        (False, "merge_tag"),
        (True, None),
    ]
    assert html[0]["destination"] == "https://shop.example.com/sale?utm_x=1&b=2#top"
    assert html[3]["text"] == "Banner"
    amp = [link for link in links if link["part"] == "amp"]
    assert [link["destination"] for link in amp] == ["https://shop.example.com/amp"]


def test_personalize_rewrites_only_tracked_links(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    campaign_id = _create(client, auth).json["id"]
    response = client.post(
        f"/api/v1/campaigns/{campaign_id}/variants/A/personalize",
        json={"recipients": ["alice@example.com", "bob@example.com"]},
        headers=auth,
    )
    assert response.status_code == 200
    emails = response.json["emails"]
    assert [e["recipient"] for e in emails] == ["alice@example.com", "bob@example.com"]
    # The two tracked links, after the hidden honeypot link that opens the body.
    urls = re.findall(r"https://t\.example\.com/c/[\w.-]+", emails[0]["html"])
    assert len(urls) == 3
    assert "mailto:help@example.com" in emails[0]["html"]
    assert "{{unsubscribe_url}}" in emails[0]["html"]
    # Only the URLs differ between recipients and from the original, once the open pixel
    # and the honeypot link that open the body are set aside.
    masked = re.sub(r"https://t\.example\.com/[co]/[\w.-]+", "URL", emails[0]["html"])
    pixel = PIXEL_BEFORE["html"] + "URL" + PIXEL_AFTER["html"]
    honeypot = HONEYPOT_BEFORE + "URL" + HONEYPOT_AFTER
    assert masked == HTML.replace(
        "https://shop.example.com/sale?utm_x=1&amp;b=2#top", "URL"
    ).replace("<body>", "<body>" + pixel + honeypot)
    assert emails[0]["html"] != emails[1]["html"]
    assert "alice" not in emails[0]["html"]
    assert re.findall(r"https://t\.example\.com/c/[\w.-]+", emails[0]["amp"])
    # Each token decodes to this recipient's placement.
    codec = token_codec(app)
    decoded = codec.decode(urls[2].rsplit("/", 1)[1])
    assert decoded.part == "html" and decoded.position == 3


def test_personalize_amp_links_are_https_even_with_http_base(
    backends: Any, backend: str, tmp_path: Any
) -> None:
    app = make_app(backends.url(backend), tmp_path, TRACKING_BASE_URL="http://localhost:5000")
    client = app.test_client()
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "t")
        s.commit()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        cid = _create(client, headers).json["id"]
        email = client.post(
            f"/api/v1/campaigns/{cid}/variants/A/personalize",
            json={"recipients": ["r1"]},
            headers=headers,
        ).json["emails"][0]
        assert "http://localhost:5000/c/" in email["html"]
        assert "https://localhost:5000/c/" in email["amp"]
        assert "http://localhost" not in email["amp"]
    finally:
        from app.db import get_engine

        empty_tables(app)
        get_engine(app).dispose()


def test_deliveries_are_idempotent(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    cid = _create(client, auth).json["id"]
    for _ in range(2):
        response = client.post(
            f"/api/v1/campaigns/{cid}/deliveries",
            json={"variant": "A", "recipients": ["a", "b", "b", "c"]},
            headers=auth,
        )
        assert response.status_code == 200
    assert session.scalar(select(func.count()).select_from(Delivery)) == 3
    assert session.scalar(select(func.count()).select_from(Recipient)) == 3


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "variants": [{"name": "A", "html": ""}]}, 422, "not_html"),
        ({"name": "x", "variants": [{"name": "A", "html": "just words"}]}, 422, "not_html"),
        ({"name": "x", "variants": [{"name": "A", "html": BINARY}]}, 422, "not_html"),
        ({"name": "x", "variants": []}, 422, "validation_failed"),
        ({"name": "", "variants": [{"name": "A", "html": HTML}]}, 422, "validation_failed"),
        (
            {"name": "x", "variants": [{"name": "A", "html": HTML}, {"name": "A", "html": HTML}]},
            422,
            "invalid_variant",
        ),
        ({"name": "x", "variants": [{"name": "A", "html": 5}]}, 422, "validation_failed"),
        (
            {"name": "x", "variants": [{"name": "A", "html": HTML}, {"name": "B", "html": ""}]},
            422,
            "not_html",
        ),
        (
            {"name": "x", "variants": [{"name": "A", "html": "<p>" + "x" * 6_000_000}]},
            413,
            "part_too_large",
        ),
    ],
)
def test_bad_campaigns_get_clear_errors_and_write_nothing(
    client: FlaskClient,
    auth: dict[str, str],
    session: Session,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = client.post("/api/v1/campaigns", json=body, headers=auth)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    assert session.scalar(select(func.count()).select_from(Placement)) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ("<html>", "text/html", 415, "unsupported_media_type"),
        ("{}", None, 415, "unsupported_media_type"),
        ("<html>", "application/json", 400, "invalid_json"),
        (b'{"name": "\xff"}', "application/json", 400, "invalid_json"),
        ('{"name": "x", "variants": [', "application/json", 400, "invalid_json"),
        ("[1, 2]", "application/json", 422, "validation_failed"),
    ],
)
def test_not_json_body(
    client: FlaskClient,
    auth: dict[str, str],
    data: str | bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    response = client.post("/api/v1/campaigns", data=data, headers=auth, content_type=content_type)
    assert response.status_code == status
    assert response.json["error"]["code"] == code


# -- what used to answer 500: each is a clean 4xx in the one error shape ---------------------


@pytest.mark.parametrize("utm", [["utm_source"], "utm_source=x", 5, {"utm_source": 1}, {"x": "y"}])
def test_utm_of_the_wrong_shape_is_422(client: FlaskClient, auth: dict[str, str], utm: Any) -> None:
    response = _create(client, auth, utm=utm)
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["field"].startswith("utm")


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("name", {"name": "\ud800"}),
        ("variants.0.name", {"variants": [{"name": "A\udfff", "html": HTML}]}),
        ("variants.0.html", {"variants": [{"name": "A", "html": HTML + "\ud83d"}]}),
    ],
)
def test_lone_surrogates_are_400(
    client: FlaskClient, auth: dict[str, str], session: Session, field: str, body: dict[str, Any]
) -> None:
    payload = {"name": "Spring", "variants": [{"name": "A", "html": HTML}], **body}
    # json.dumps writes lone surrogates as \ud800 escapes, as a hostile client would.
    response = client.post(
        "/api/v1/campaigns", data=json.dumps(payload), headers=auth, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_unicode"
    assert field in response.json["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("name", {"name": "a\x00b"}),
        ("variants.0.html", {"variants": [{"name": "A", "html": HTML + "\x00"}]}),
        ("utm.utm_source", {"utm": {"utm_source": "\x00"}}),
    ],
)
def test_nul_characters_are_400_on_every_database(
    client: FlaskClient, auth: dict[str, str], session: Session, field: str, body: dict[str, Any]
) -> None:
    """PostgreSQL text cannot hold U+0000: refused up front, on SQLite as well."""
    payload = {"name": "Spring", "variants": [{"name": "A", "html": HTML}], **body}
    response = client.post("/api/v1/campaigns", json=payload, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_unicode"
    assert field in response.json["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_a_nul_in_a_recipient_id_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    cid = _create(client, auth).json["id"]
    response = client.post(
        f"/api/v1/campaigns/{cid}/deliveries",
        json={"variant": "A", "recipients": ["ok", "a\x00"]},
        headers=auth,
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_unicode"


def test_a_lone_surrogate_in_a_recipient_id_is_400(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    cid = _create(client, auth).json["id"]
    response = client.post(
        f"/api/v1/campaigns/{cid}/variants/A/personalize",
        data=json.dumps({"recipients": ["ok", "\udc00"]}),
        headers=auth,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_unicode"
    assert session.scalar(select(func.count()).select_from(Recipient)) == 0


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_50000_deep_is_400(
    client: FlaskClient, auth: dict[str, str], opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    data = opening * 50_000 + "1" + closing * 50_000
    response = client.post(
        "/api/v1/campaigns", data=data, headers=auth, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "json_too_deep"


def test_json_nested_just_past_the_limit_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    payload: Any = "x"
    for _ in range(40):
        payload = [payload]
    response = _create(client, auth, utm=payload)
    assert response.json["error"]["code"] == "json_too_deep"


def test_more_links_than_a_token_can_address_is_refused_at_create(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    links = "".join(f'<a href="https://e.example/{n}">{n}</a>' for n in range(70_000))
    response = _create(client, auth, variants=[{"name": "A", "html": f"<p>{links}</p>"}])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "too_many_links"
    assert "70,000 links" in response.json["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0


@pytest.mark.parametrize("campaign_id", [2**31, 2**63, 2**64 + 5, 10**30, 0])
def test_ids_past_the_database_range_are_404(
    client: FlaskClient, auth: dict[str, str], campaign_id: int
) -> None:
    for url in (
        f"/api/v1/campaigns/{campaign_id}",
        f"/api/v1/campaigns/{campaign_id}/heatmap",
        f"/api/v1/campaigns/{campaign_id}/report.pdf",
    ):
        response = client.get(url, headers=auth)
        assert response.status_code == 404, url
        assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("name", [None, 123, {}, True, [], {"a": 1}])
def test_a_name_that_is_not_a_string_is_422(
    client: FlaskClient, auth: dict[str, str], session: Session, name: Any
) -> None:
    response = _create(client, auth, name=name)
    assert response.status_code == 422
    assert response.json["error"]["details"] == [
        {"field": "name", "message": "Input should be a valid string", "type": "string_type"}
    ]
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_unknown_fields_are_named(client: FlaskClient, auth: dict[str, str]) -> None:
    response = _create(client, auth, varients=[])
    assert response.status_code == 422
    assert [d["field"] for d in response.json["error"]["details"]] == ["varients"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/campaigns/999999", "campaign_not_found"),
        ("/api/v1/campaigns/{id}/variants/Z/personalize", "variant_not_found"),
        ("/api/v1/campaigns/999999/variants/A/personalize", "campaign_not_found"),
    ],
)
def test_unknown_ids_are_404(
    client: FlaskClient, auth: dict[str, str], path: str, code: str
) -> None:
    cid = _create(client, auth).json["id"]
    url = path.replace("{id}", str(cid))
    if url.endswith("personalize"):
        response = client.post(url, json={"recipients": ["a"]}, headers=auth)
    else:
        response = client.get(url, headers=auth)
    assert response.status_code == 404
    assert response.json["error"]["code"] == code


def test_batch_limit(client: FlaskClient, auth: dict[str, str]) -> None:
    cid = _create(client, auth).json["id"]
    response = client.post(
        f"/api/v1/campaigns/{cid}/variants/A/personalize",
        json={"recipients": [f"r{i}" for i in range(1001)]},
        headers=auth,
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "batch_too_large"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer cm_" + "x" * 43],
)
def test_api_needs_a_valid_token(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, url in [("get", "/api/v1/campaigns/1"), ("post", "/api/v1/campaigns")]:
        response = getattr(client, method)(url, headers=headers, json={})
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


def test_a_token_records_its_last_use(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    assert session.scalars(select(ApiToken.last_used_at)).one() is None
    assert client.get("/api/v1/campaigns/1", headers=auth).status_code == 404
    assert session.scalars(select(ApiToken.last_used_at)).one() is not None


def test_the_401_says_what_is_wrong(client: FlaskClient) -> None:
    missing = client.get("/api/v1/campaigns/1").json
    invalid = client.get("/api/v1/campaigns/1", headers={"Authorization": "Bearer cm_no"}).json
    assert missing["error"]["message"] == "send an API token as 'Authorization: Bearer <token>'"
    assert invalid["error"]["message"] == "the API token is not valid"


def test_oversized_body_is_refused(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post(
        "/api/v1/campaigns", data="x" * 5000, headers=auth, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json["error"]["code"]


def test_heatmap_json_uses_the_shared_tier_rule(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    from datetime import UTC, datetime

    from app.clicks.recording import ClickEvent, record_clicks
    from app.reports.heatmap import tier_for

    cid = _create(client, auth).json["id"]
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        placements = sender_links(s, cid)
        ids = list(ensure(s, ["r1", "r2", "r3"]).values())
        events = [
            ClickEvent(
                f"c{i}",
                datetime.now(UTC),
                cid,
                p.variant_id,
                "html",
                p.id,
                rid,
                "GET",
                "Mozilla/5.0",
                None,
            )
            for i, (p, rid) in enumerate(
                [
                    (placements[0], ids[0]),
                    (placements[0], ids[1]),
                    (placements[0], ids[1]),
                    (placements[1], ids[2]),
                ]
            )
        ]
        record_clicks(s, events)
        s.commit()
    response = client.get(f"/api/v1/campaigns/{cid}/heatmap?metric=unique", headers=auth)
    assert response.status_code == 200
    body = response.json
    assert (body["totalClicks"], body["uniqueClickers"], body["deliveries"]) == (4, 3, 0)
    assert body["clickRate"] is None  # nothing delivered: no rate, rather than a division by 0
    by_position = {entry["element"]["position"]: entry for entry in body["clicks"]}
    first, second = by_position[placements[0].position], by_position[placements[1].position]
    assert (first["count"], first["unique"], second["unique"]) == (3, 2, 1)
    assert (first["percentage"], second["percentage"]) == (75.0, 25.0)
    assert first["tier"] == tier_for(2, 2) == "red"
    assert second["tier"] == tier_for(1, 2) == "yellow"
    # Every tracked link, in email order, with a reference to find it in the sent HTML.
    assert [entry["element"]["position"] for entry in body["clicks"]] == [0, 3]
    assert first["element"]["placementId"] == placements[0].id
    assert first["element"]["kind"] == "a"
    assert client.get(f"/api/v1/campaigns/{cid}/heatmap").status_code == 401
    bad = client.get(f"/api/v1/campaigns/{cid}/heatmap?metric=nope", headers=auth)
    assert bad.status_code == 422
    assert bad.json["error"]["details"][0]["field"] == "query.metric"


# -- the heatmap data endpoints ---------------------------------------------------------------


@pytest.fixture
def clicked(app: Flask, client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    """A campaign whose first link r1 clicked six times in six seconds (a burst) and r2 once,
    and whose last tracked link r3 clicked once; two recipients delivered."""
    from datetime import UTC, datetime, timedelta

    from tests.factories import click

    cid = _create(client, auth).json["id"]
    client.post(
        f"/api/v1/campaigns/{cid}/deliveries",
        json={"variant": "A", "recipients": ["r1", "r2"]},
        headers=auth,
    )
    # After the deliveries just recorded: a click before its delivery is a machine's.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with app.extensions["clickmap.sessionmaker"]() as s:
        links = sender_links(s, cid)
        ids = ensure(s, ["r1", "r2", "r3"])
        for n in range(6):
            click(s, links[0], ids["r1"], start + timedelta(seconds=n))
        click(s, links[0], ids["r2"], start + timedelta(minutes=5), device="mobile")
        click(s, links[1], ids["r3"], start + timedelta(minutes=6))
        s.commit()
    return {"id": cid, "first": links[0].id, "positions": [p.position for p in links]}


def test_elements_rank_the_most_clicked_links(
    client: FlaskClient, auth: dict[str, str], clicked: dict[str, Any]
) -> None:
    url = f"/api/v1/campaigns/{clicked['id']}/heatmap/elements"
    body = client.get(url + "?limit=1", headers=auth).json
    [top] = body["elements"]
    assert (top["element"]["placementId"], top["count"], top["unique"]) == (clicked["first"], 7, 2)
    assert top["clickRate"] == 100.0  # 2 unique clickers of 2 delivered
    assert top["element"]["selector"] == "body > a:nth-of-type(1)"
    by_position = client.get(url + "?sort=position", headers=auth).json["elements"]
    assert [e["element"]["position"] for e in by_position] == clicked["positions"]
    mobile = client.get(url + "?device=mobile", headers=auth).json["elements"]
    assert [(e["count"], e["unique"]) for e in mobile] == [(1, 1), (0, 0)]
    assert client.get(url + "?limit=51", headers=auth).status_code == 422


def test_elements_never_list_the_honeypot_even_once_it_is_clicked(
    app: Flask, client: FlaskClient, auth: dict[str, str], clicked: dict[str, Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.factories import click

    url = f"/api/v1/campaigns/{clicked['id']}/heatmap/elements?sort=position"
    before = client.get(url, headers=auth).json["elements"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        [honeypot] = s.scalars(
            select(Placement).where(Placement.campaign_id == clicked["id"])
            .where(Placement.kind == HONEYPOT)
        ).all()  # fmt: skip
        for n in range(6):  # a burst, too
            click(s, honeypot, ensure(s, ["r1"])["r1"], datetime.now(UTC) + timedelta(seconds=n))
        s.commit()
        honeypot_id = honeypot.id
    after = client.get(url, headers=auth).json["elements"]
    assert after == before
    assert honeypot_id not in {e["element"]["placementId"] for e in after}
    repeats = f"/api/v1/campaigns/{clicked['id']}/heatmap/repeat-clicks"
    bursts = client.get(repeats, headers=auth).json["repeatClicks"]
    assert [b["element"]["placementId"] for b in bursts] == [clicked["first"]]


def test_repeat_clicks_find_the_burst(
    client: FlaskClient, auth: dict[str, str], clicked: dict[str, Any]
) -> None:
    url = f"/api/v1/campaigns/{clicked['id']}/heatmap/repeat-clicks"
    body = client.get(url, headers=auth).json
    [burst] = body["repeatClicks"]
    assert burst["element"]["placementId"] == clicked["first"]
    assert (burst["count"], burst["recipients"], burst["maxClicks"]) == (1, 1, 6)
    assert (burst["avgClicks"], burst["severity"]) == (6.0, "medium")
    assert (body["minClicks"], body["windowSeconds"]) == (5, 10.0)
    assert client.get(url + "?minClicks=7", headers=auth).json["repeatClicks"] == []


def test_raw_clicks_page_by_cursor(
    client: FlaskClient, auth: dict[str, str], clicked: dict[str, Any]
) -> None:
    from app.reports.exports import decode_cursor, encode_cursor

    url = f"/api/v1/campaigns/{clicked['id']}/heatmap/clicks?limit=3"
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=auth).json
        seen += [c["clickId"] for c in page["clicks"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        # A time and a row id, nothing else: no recipient id can ride in a URL. (Searching
        # it for "r1" fails by chance, when the encoded time happens to spell it.)
        assert cursor == encode_cursor(*decode_cursor(cursor))
    assert len(seen) == len(set(seen)) == 8
    first = client.get(url, headers=auth).json["clicks"][0]
    assert (first["recipient"], first["variant"], first["part"]) == ("r1", "A", "html")
    bad = client.get(url + "&cursor=not-a-cursor", headers=auth)
    assert (bad.status_code, bad.json["error"]["code"]) == (400, "invalid_cursor")


def test_machine_clicks_are_left_out_unless_included(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """A person's click, a HEAD probe and a link preview: the figures count the person, the
    window says what was left out and why, and ``machines=include`` counts all three."""
    from datetime import UTC, datetime, timedelta

    from app.clicks.recording import record_clicks
    from tests.factories import click_event

    cid = _create(client, auth).json["id"]
    client.post(
        f"/api/v1/campaigns/{cid}/deliveries",
        json={"variant": "A", "recipients": ["r1", "r2", "r3"]},
        headers=auth,
    )
    later = datetime.now(UTC) + timedelta(minutes=5)
    with app.extensions["clickmap.sessionmaker"]() as s:
        links = sender_links(s, cid)
        ids = ensure(s, ["r1", "r2", "r3"])
        record_clicks(
            s,
            [
                click_event(links[0], ids["r1"], later),
                click_event(links[0], ids["r2"], later, method="HEAD"),
                click_event(links[1], ids["r3"], later, user_agent="Slackbot 1.0"),
            ],
        )
        s.commit()
    url = f"/api/v1/campaigns/{cid}/heatmap"
    people = client.get(url, headers=auth).json
    assert (people["totalClicks"], people["uniqueClickers"], people["machines"]) == (
        1,
        1,
        "exclude",
    )
    assert people["machineClicks"] == {"count": 2, "reasons": {"head": 1, "scanner_ua": 1}}
    assert [e["count"] for e in people["clicks"]] == [1, 0]
    everyone = client.get(url + "?machines=include", headers=auth).json
    assert (everyone["totalClicks"], everyone["uniqueClickers"]) == (3, 3)
    assert everyone["machineClicks"]["count"] == 2
    listed = client.get(url + "/clicks?machines=include", headers=auth).json["clicks"]
    assert sorted((c["label"], tuple(c["reasons"]), c["certainty"]) for c in listed) == [
        ("human", (), None),
        ("machine", ("head",), "certain"),
        ("machine", ("scanner_ua",), "certain"),
    ]
    assert [c["label"] for c in client.get(url + "/clicks", headers=auth).json["clicks"]] == [
        "human"
    ]
    bad = client.get(url + "?machines=maybe", headers=auth)
    assert (bad.status_code, bad.json["error"]["code"]) == (422, "validation_failed")


def test_client_and_country_narrow_every_figure(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """``client`` and ``country`` pick a segment, the window names it and the data the
    countries come from, and a value outside the vocabulary is refused with its field."""
    from datetime import UTC, datetime, timedelta

    from app.clicks.recording import record_clicks
    from tests.factories import click_event

    outlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)"
    cid = _create(client, auth).json["id"]
    later = datetime.now(UTC) + timedelta(minutes=5)
    with app.extensions["clickmap.sessionmaker"]() as s:
        links = sender_links(s, cid)
        ids = ensure(s, ["r1", "r2", "r3"])
        us, japan, hour = "8.8.8.0/24", "1.0.16.0/24", timedelta(hours=1)
        record_clicks(
            s,
            [
                click_event(links[0], ids["r1"], later, user_agent=outlook, ip_prefix=us),
                click_event(links[0], ids["r1"], later + hour, user_agent=outlook, ip_prefix=us),
                click_event(links[1], ids["r2"], later, user_agent=outlook, ip_prefix=japan),
                click_event(links[1], ids["r3"], later, ip_prefix=japan),
            ],
        )
        s.commit()
    url = f"/api/v1/campaigns/{cid}/heatmap"
    us = client.get(url + "?country=US", headers=auth).json
    assert (us["totalClicks"], us["uniqueClickers"], us["country"], us["client"]) == (
        2, 1, "US", None,
    )  # fmt: skip
    assert [e["count"] for e in us["clicks"]][:2] == [2, 0]
    assert us["countryData"].startswith("iptocc ")
    both = client.get(url + "?client=Outlook&country=JP", headers=auth).json
    assert (both["totalClicks"], both["uniqueClickers"]) == (1, 1)
    outlook_only = client.get(url + "/elements?client=Outlook&sort=position", headers=auth).json
    assert [e["count"] for e in outlook_only["elements"]][:2] == [2, 1]
    listed = client.get(url + "/clicks?country=JP", headers=auth).json["clicks"]
    assert sorted((c["country"], c["client"]) for c in listed) == [
        ("JP", "Chrome"),
        ("JP", "Outlook"),
    ]
    for bad in ("client=Lotus%20Notes", "country=usa"):
        refused = client.get(f"{url}?{bad}", headers=auth)
        assert refused.status_code == 422
        assert refused.json["error"]["details"][0]["field"] == "query." + bad.split("=")[0]


def test_a_delivery_reported_late_relabels_the_clicks_before_it(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """A click stored before its delivery was known is human; the delivery, reported
    afterwards with a later ``deliveredAt``, makes it a machine (a gateway scans before it
    delivers), and the figures follow at once. A time that cannot be a delivery is 422."""
    from datetime import UTC, datetime, timedelta

    from app.clicks.recording import record_clicks
    from tests.factories import click_event

    cid = _create(client, auth).json["id"]
    scanned = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    with app.extensions["clickmap.sessionmaker"]() as s:
        link = sender_links(s, cid)[0]
        record_clicks(s, [click_event(link, ensure(s, ["r1"])["r1"], scanned)])
        s.commit()
    url = f"/api/v1/campaigns/{cid}/heatmap"
    assert client.get(url, headers=auth).json["totalClicks"] == 1
    delivered = (scanned + timedelta(minutes=2)).isoformat()
    response = client.post(
        f"/api/v1/campaigns/{cid}/deliveries",
        json={"variant": "A", "recipients": ["r1"], "deliveredAt": delivered},
        headers=auth,
    )
    assert response.status_code == 200
    body = client.get(url, headers=auth).json
    assert (body["totalClicks"], body["machineClicks"]) == (
        0,
        {"count": 1, "reasons": {"before_delivery": 1}},
    )
    for bad in ("0001-01-01T00:00:00+14:00", "2026-05-04T09:00:00"):
        refused = client.post(
            f"/api/v1/campaigns/{cid}/deliveries",
            json={"variant": "A", "recipients": ["r2"], "deliveredAt": bad},
            headers=auth,
        )
        assert refused.status_code == 422, bad


def test_each_link_says_how_many_people_clicked_it_first_and_last(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """r1 clicks the first link, then the second ten minutes later; r2 only the second; a
    link checker's HEAD on the first link changes nothing among people."""
    from datetime import UTC, datetime, timedelta

    from app.clicks.recording import record_clicks
    from tests.factories import click_event

    cid = _create(client, auth).json["id"]
    client.post(
        f"/api/v1/campaigns/{cid}/deliveries",
        json={"variant": "A", "recipients": ["r1", "r2"]},
        headers=auth,
    )
    later = datetime.now(UTC) + timedelta(minutes=5)
    with app.extensions["clickmap.sessionmaker"]() as s:
        links = sender_links(s, cid)
        ids = ensure(s, ["r1", "r2"])
        record_clicks(
            s,
            [
                click_event(links[0], ids["r1"], later),
                click_event(links[1], ids["r1"], later + timedelta(minutes=10)),
                click_event(links[1], ids["r2"], later + timedelta(minutes=1)),
                click_event(links[0], ids["r2"], later + timedelta(minutes=20), method="HEAD"),
            ],
        )
        s.commit()
    url = f"/api/v1/campaigns/{cid}/heatmap"
    people = client.get(url, headers=auth).json["clicks"]
    assert [(e["firstClicks"], e["lastClicks"]) for e in people] == [(1, 0), (1, 2)]
    everyone = client.get(url + "?machines=include", headers=auth).json["clicks"]
    assert [(e["firstClicks"], e["lastClicks"]) for e in everyone] == [(1, 1), (1, 1)]


def test_guessing_tokens_is_throttled_per_network(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    app.config["LOGIN_NETWORK_ATTEMPTS"] = 3
    guess = {"Authorization": "Bearer cm_" + "x" * 43}
    here = {"REMOTE_ADDR": "198.51.100.7"}
    statuses = [
        client.get("/api/v1/campaigns/1", headers=guess, environ_base=here).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    refused = client.get("/api/v1/campaigns/1", headers=guess, environ_base=here)
    assert refused.json["error"]["code"] == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) > 0
    # Another network is not affected, and a valid token is never refused.
    elsewhere = {"REMOTE_ADDR": "203.0.113.9"}
    assert (
        client.get("/api/v1/campaigns/1", headers=guess, environ_base=elsewhere).status_code == 401
    )
    assert client.get("/api/v1/campaigns/1", headers=auth, environ_base=here).status_code == 404


def test_heatmap_json_names_ctas_flags_them_and_groups_destinations(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.accounts import create_user
    from app.clicks.recording import ClickEvent, record_clicks
    from app.ingest.campaigns import record_deliveries
    from app.ingest.placements import mark_cta, rename_placement

    cid = _create(client, auth).json["id"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        first, second = sender_links(s, cid)
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        now = datetime.now(UTC)
        # Delivered an hour before the clicks: a click within a second of it is a machine's.
        delivered = now - timedelta(hours=1)
        record_deliveries(s, campaign, "A", [f"r{n}" for n in range(1, 11)], delivered_at=delivered)
        ids = ensure(s, ["r1", "r2", "r3"])
        plan = [(first, "r1"), (first, "r2"), (second, "r1"), (second, "r3")]
        agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"
        events = [
            ClickEvent(f"g{i}", now, cid, p.variant_id, "html", p.id, ids[who], "GET", agent, None)
            for i, (p, who) in enumerate(plan)
        ]
        record_clicks(s, events)
        ana = create_user(s, "ana", "correct horse battery")
        rename_placement(s, cid, second.id, "Banner <img>", ana)
        mark_cta(s, cid, second.id, True, ana)
        s.commit()
    url = f"/api/v1/campaigns/{cid}/heatmap"
    body = client.get(f"{url}?ctas=only", headers=auth).json
    assert (body["ctas"], body["group"], body["uniqueClickers"]) == ("only", "link", 3)
    [entry] = body["clicks"]
    assert (entry["text"], entry["label"], entry["cta"]) == ("Banner", "Banner <img>", True)
    # 2 clickers of 10 delivered: 20%, not under the 10% guideline.
    assert (entry["clickRate"], entry["belowCtaGuideline"]) == (20.0, False)
    every = client.get(url, headers=auth).json["clicks"]
    assert [(e["cta"], e["label"]) for e in every] == [(False, None), (True, "Banner <img>")]
    grouped = client.get(f"{url}?group=destination", headers=auth).json["clicks"]
    # Both links lead to the sale: 4 clicks by 3 people (r1 clicked both).
    assert [(e["count"], e["unique"], e["placementIds"]) for e in grouped] == [
        (4, 3, [first.id, second.id])
    ]
    assert grouped[0]["cta"] is True
    bad = client.get(f"{url}?ctas=some", headers=auth)
    assert bad.status_code == 422
    assert bad.json["error"]["details"][0]["field"] == "query.ctas"
    spec = client.get("/api/v1/openapi.json").json
    heatmap_params = {
        p["name"] for p in spec["paths"]["/campaigns/{campaign_id}/heatmap"]["get"]["parameters"]
    }
    assert {"ctas", "group"} <= heatmap_params


# -- naming links and marking CTAs through the API ----------------------------------------------


def _placement_url(campaign_id: int, placement_id: int) -> str:
    return f"/api/v1/campaigns/{campaign_id}/placements/{placement_id}"


def test_patching_a_placement_names_it_marks_it_and_records_the_token(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    from app.models import PlacementChange

    cid = _create(client, auth).json["id"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        first, second = (p.id for p in sender_links(s, cid))
    url = _placement_url(cid, second)
    response = client.patch(url, json={"label": "  Banner\n<img> ", "cta": True}, headers=auth)
    assert response.status_code == 200, response.json
    assert {k: response.json[k] for k in ("placementId", "variant", "part", "label", "cta")} == {
        "placementId": second,
        "variant": "A",
        "part": "html",
        "label": "Banner <img>",
        "cta": True,
    }
    assert response.json["text"] == "Banner"
    # The same values again record nothing; cta alone leaves the name as it is.
    assert client.patch(url, json={"label": "Banner <img>"}, headers=auth).status_code == 200
    cleared = client.patch(url, json={"cta": False}, headers=auth).json
    assert (cleared["label"], cleared["cta"]) == ("Banner <img>", False)
    assert client.patch(url, json={"label": None}, headers=auth).json["label"] is None
    with app.extensions["clickmap.sessionmaker"]() as s:
        changes = s.scalars(select(PlacementChange).order_by(PlacementChange.id)).all()
        assert [(c.user_id, c.username, c.field, c.old_value, c.new_value) for c in changes] == [
            (None, "API token test", "label", None, "Banner <img>"),
            (None, "API token test", "cta", "false", "true"),
            (None, "API token test", "cta", "true", "false"),
            (None, "API token test", "label", "Banner <img>", None),
        ]
    heatmap = client.get(f"/api/v1/campaigns/{cid}/heatmap", headers=auth).json["clicks"]
    assert [(e["element"]["placementId"], e["label"], e["cta"]) for e in heatmap] == [
        (first, None, False),
        (second, None, False),
    ]
    history = client.get(f"/api/v1/campaigns/{cid}/placement-changes", headers=auth).json
    assert history["nextCursor"] is None
    assert [(c["field"], c["oldValue"], c["newValue"]) for c in history["changes"]] == [
        ("label", "Banner <img>", None),
        ("cta", "true", "false"),
        ("cta", "false", "true"),
        ("label", None, "Banner <img>"),
    ]
    newest = history["changes"][0]
    assert {k: newest[k] for k in ("by", "placementId", "variant", "part", "text", "label")} == {
        "by": "API token test",
        "placementId": second,
        "variant": "A",
        "part": "html",
        "text": "Banner",
        "label": None,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"label": 5}, "label"),
        ({"label": ["x"]}, "label"),
        ({"label": "x" * 201}, "label"),
        ({"label": "x" * 801}, "label"),
        ({"label": "bell\x07"}, "label"),
        ({"label": "del\x7f"}, "label"),
        ({"cta": "yes"}, "cta"),
        ({"cta": 1}, "cta"),
        ({"cta": None}, "body"),
        ({"cta": True, "name": "x"}, "name"),
    ],
)
def test_patching_a_placement_refuses_bad_input_and_changes_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    from app.models import PlacementChange

    cid = _create(client, auth).json["id"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        pid = sender_links(s, cid)[0].id
    response = client.patch(_placement_url(cid, pid), json=body, headers=auth)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_failed"
    assert response.json["error"]["details"][0]["field"] == field
    with app.extensions["clickmap.sessionmaker"]() as s:
        assert s.scalars(select(PlacementChange)).all() == []
        link = s.get(Placement, pid)
        assert link is not None and (link.label, link.cta) == (None, False)


def test_patching_a_placement_needs_a_token_json_and_a_link_of_the_campaign(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    cid = _create(client, auth).json["id"]
    other = _create(client, auth).json["id"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        pid = sender_links(s, cid)[0].id
        honeypot = s.scalars(
            select(Placement.id).where(Placement.campaign_id == cid, Placement.kind == HONEYPOT)
        ).first()
        untracked = s.scalars(
            select(Placement.id).where(Placement.campaign_id == cid, Placement.tracked.is_(False))
        ).first()
    url = _placement_url(cid, pid)
    assert client.patch(url, json={"cta": True}).status_code == 401
    assert client.patch(url, data="cta", headers=auth).status_code == 415
    bad = client.patch(url, data="{", headers={**auth, "Content-Type": "application/json"})
    assert (bad.status_code, bad.json["error"]["code"]) == (400, "invalid_json")
    for campaign_id, placement_id in [
        (other, pid),
        (cid, honeypot),
        (cid, untracked),
        (cid, 2**31 - 1),
        (2**31 - 1, pid),
    ]:
        assert placement_id is not None
        response = client.patch(
            _placement_url(campaign_id, placement_id), json={"cta": True}, headers=auth
        )
        assert response.status_code == 404, (campaign_id, placement_id)
        assert response.json["error"]["code"] in ("link_not_found", "campaign_not_found")
    assert client.patch(_placement_url(cid, 2**31), json={}, headers=auth).status_code == 404
    assert client.get(f"/api/v1/campaigns/{cid}/placement-changes").status_code == 401


def test_placement_changes_come_a_page_at_a_time(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    cid = _create(client, auth).json["id"]
    with app.extensions["clickmap.sessionmaker"]() as s:
        pid = sender_links(s, cid)[0].id
    for n in range(5):
        body = {"label": f"Name {n}"}
        assert client.patch(_placement_url(cid, pid), json=body, headers=auth).status_code == 200
    url = f"/api/v1/campaigns/{cid}/placement-changes"
    seen: list[str | None] = []
    pages = 0
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"{url}?{query}", headers=auth).json
        pages += 1
        seen += [change["newValue"] for change in body["changes"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"Name {n}" for n in reversed(range(5))]
    for query, status, code in [
        ("cursor=nope", 400, "invalid_cursor"),
        ("limit=0", 422, "validation_failed"),
        ("limit=501", 422, "validation_failed"),
    ]:
        response = client.get(f"{url}?{query}", headers=auth)
        assert (response.status_code, response.json["error"]["code"]) == (status, code), query
    assert client.get("/api/v1/campaigns/999/placement-changes", headers=auth).status_code == 404
    spec = client.get("/api/v1/openapi.json").json
    assert "patch" in spec["paths"]["/campaigns/{campaign_id}/placements/{placement_id}"]
    assert "get" in spec["paths"]["/campaigns/{campaign_id}/placement-changes"]
