"""Conversions on each database: the click id in the redirect, ``POST /api/v1/conversions``
(idempotent on the order id, uniform JSON errors, never a 5xx), and the per-link totals."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from app.clicks import tracking
from app.models import Click, Conversion, ConversionStats

EMAIL = (
    '<html><body><a href="https://shop.example.com/sale?b=2#top">Sale</a>'
    '<a href="https://shop.example.com/new">New</a></body></html>'
)


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    with app.extensions["clickmap.sessionmaker"]() as s:
        token = create_api_token(s, "test")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


def _campaign(client: FlaskClient, auth: dict[str, str], **settings: Any) -> tuple[int, str]:
    created = client.post(
        "/api/v1/campaigns",
        json={"name": "Shop", "variants": [{"name": "A", "html": EMAIL}], **settings},
        headers=auth,
    )
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    emails = client.post(
        f"/api/v1/campaigns/{campaign}/variants/A/personalize",
        json={"recipients": ["alice"]},
        headers=auth,
    ).json["emails"]
    return campaign, emails[0]["html"]


def _click(client: FlaskClient, html: str, n: int = 0) -> str:
    path = re.findall(r'href="https://t\.example\.com(/c/[^"]+)"', html)[n]
    response = client.get(path)
    assert response.status_code == 302
    return str(response.headers["Location"])


@pytest.mark.parametrize(
    ("location", "param", "expected"),
    [
        ("https://a.example/", None, None),
        ("https://a.example/p", "cm_click", ("https://a.example/p?cm_click=", "")),
        ("https://a.example/p?b=2#top", "cm_click", ("https://a.example/p?b=2&cm_click=", "#top")),
        ("https://a.example/p?#x", "cid", ("https://a.example/p?cid=", "#x")),
        ("https://a.example/p?a=1&", "cid", ("https://a.example/p?a=1&cid=", "")),
    ],
)
def test_where_the_click_id_goes(
    location: str, param: str | None, expected: tuple[str, str] | None
) -> None:
    assert tracking.with_click_param(location, param) == expected


def test_the_click_id_is_off_by_default(client: FlaskClient, auth: dict[str, str]) -> None:
    campaign, html = _campaign(client, auth)
    assert _click(client, html) == "https://shop.example.com/sale?b=2#top"
    assert client.get(f"/api/v1/campaigns/{campaign}", headers=auth).json["click_param"] is None


def test_a_conversion_is_recorded_once_per_order(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    _campaign_id, html = _campaign(client, auth, click_param="cm_click")
    location = _click(client, html)
    assert location.startswith("https://shop.example.com/sale?b=2&cm_click=")
    assert location.endswith("#top")
    click_id = parse_qs(urlsplit(location).query)["cm_click"][0]
    stored = session.scalars(select(Click)).one()
    assert stored.click_id == click_id
    body = {"clickId": click_id, "orderId": "o-1", "value": "19.99", "currency": "EUR"}
    first = client.post("/api/v1/conversions", json=body, headers=auth)
    assert first.status_code == 201, first.json
    assert first.json["created"] is True and first.json["value"] == "19.99"
    assert first.json["placementId"] == stored.placement_id and first.json["variant"] == "A"
    again = client.post("/api/v1/conversions", json=body, headers=auth)
    assert again.status_code == 200 and again.json["created"] is False
    assert again.json["conversion"] == first.json["conversion"]
    other = client.post("/api/v1/conversions", json={**body, "value": 20}, headers=auth)
    assert other.status_code == 409 and other.json["error"]["code"] == "order_conflict"
    second = client.post(
        "/api/v1/conversions",
        json={"clickId": click_id, "orderId": "o-2", "value": 100, "currency": "EUR"},
        headers=auth,
    )
    assert second.status_code == 201 and second.json["value"] == "100"
    without_value = client.post(
        "/api/v1/conversions", json={"clickId": click_id, "orderId": "o-3"}, headers=auth
    )
    assert without_value.status_code == 201 and without_value.json["value"] is None
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Conversion)) == 3
    totals = {
        row.currency: (row.conversions, row.value_micros)
        for row in session.scalars(select(ConversionStats))
    }
    assert totals == {"EUR": (2, 119_990_000), "": (1, 0)}


def test_settings_switch_the_click_id_and_the_pixel(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    campaign, html = _campaign(client, auth)
    answer = client.patch(
        f"/api/v1/campaigns/{campaign}/settings",
        json={"click_param": "cid", "track_opens": False},
        headers=auth,
    )
    assert answer.status_code == 200
    assert (answer.json["click_param"], answer.json["track_opens"]) == ("cid", False)
    tracking.tracker(app).refresh_gone()  # what the housekeeping thread does every 10 s
    assert "&cid=" in _click(client, html)
    off = client.patch(
        f"/api/v1/campaigns/{campaign}/settings", json={"click_param": None}, headers=auth
    )
    assert off.json["click_param"] is None and off.json["track_opens"] is False
    tracking.tracker(app).refresh_gone()
    assert _click(client, html) == "https://shop.example.com/sale?b=2#top"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"clickId": "0" * 32, "orderId": "o"}, 404, "click_not_found"),
        ({"clickId": "zz", "orderId": "o"}, 422, "validation_failed"),
        ({"clickId": "0" * 32}, 422, "validation_failed"),
        ({"clickId": "0" * 32, "orderId": " "}, 422, "validation_failed"),
        ({"clickId": "0" * 32, "orderId": "o", "value": -1, "currency": "EUR"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "value": "NaN", "currency": "EUR"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "value": "1e400", "currency": "EUR"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "value": 1.5}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "value": "1.1234567", "currency": "EUR"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "value": 1, "currency": "eur"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o" * 201}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "convertedAt": "yesterday"}, 422, None),
        ({"clickId": None, "orderId": "o"}, 422, None),
        ({"clickId": "0" * 32, "orderId": "o", "extra": 1}, 422, None),
        ([], 422, None),
    ],
)
def test_bad_conversions_get_uniform_errors(
    client: FlaskClient, auth: dict[str, str], body: Any, status: int, code: str | None
) -> None:
    response = client.post("/api/v1/conversions", json=body, headers=auth)
    assert response.status_code == status, response.json
    assert set(response.json) == {"error"}
    assert code is None or response.json["error"]["code"] == code


@pytest.mark.parametrize(
    "settings",
    [{"click_param": "a b"}, {"click_param": ""}, {"click_param": "x" * 41}, {"track_opens": 1}],
)
def test_bad_settings_are_422(
    client: FlaskClient, auth: dict[str, str], settings: dict[str, Any]
) -> None:
    campaign, _html = _campaign(client, auth)
    response = client.patch(f"/api/v1/campaigns/{campaign}/settings", json=settings, headers=auth)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"


def test_conversions_need_a_token(client: FlaskClient) -> None:
    response = client.post("/api/v1/conversions", json={"clickId": "0" * 32, "orderId": "o"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
