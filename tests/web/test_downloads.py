"""Downloading the PDF report: who may, what comes back, and the ``report pdf`` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session

from app.accounts import create_api_token
from tests.factories import AuthActions, email_with_links, pdf_text, seed_campaign


@pytest.fixture
def campaign_id(session: Session) -> int:
    return seed_campaign(session, email_with_links(4)).campaign_id


@pytest.fixture
def token(session: Session) -> str:
    made = create_api_token(session, "reports")
    session.commit()
    return made


def dashboard_url(campaign_id: int, query: str = "") -> str:
    return f"/campaigns/{campaign_id}/report.pdf{query}"


def api_url(campaign_id: int, query: str = "") -> str:
    return f"/api/v1/campaigns/{campaign_id}/report.pdf{query}"


def assert_pdf(response: object, campaign_id: int) -> bytes:
    assert getattr(response, "status_code") == 200  # noqa: B009
    headers = getattr(response, "headers")  # noqa: B009
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == (
        f'attachment; filename="clickmap-campaign-{campaign_id}.pdf"'
    )
    assert headers["Cache-Control"] == "no-store"
    data: bytes = getattr(response, "data")  # noqa: B009
    assert data.startswith(b"%PDF-")
    return data


def test_dashboard_report_needs_a_login(client: FlaskClient, campaign_id: int) -> None:
    response = client.get(dashboard_url(campaign_id, "?metric=unique"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert "report.pdf" in response.headers["Location"]


def test_dashboard_report_for_a_user(
    auth: AuthActions, client: FlaskClient, campaign_id: int, tmp_path: Path
) -> None:
    auth.add_user()
    auth.login()
    data = assert_pdf(client.get(dashboard_url(campaign_id, "?metric=unique")), campaign_id)
    # The legend heading is set in capitals by the stylesheet.
    assert "unique clickers, relative to the top link" in pdf_text(data, tmp_path, last=1).lower()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer cm_nope"},
     {"Authorization": "Basic YTpi"}],
)  # fmt: skip
def test_api_report_needs_a_token(
    client: FlaskClient, campaign_id: int, headers: dict[str, str]
) -> None:
    response = client.get(api_url(campaign_id), headers=headers)
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"]["code"] == "unauthorized"


def test_api_report_with_a_token(client: FlaskClient, campaign_id: int, token: str) -> None:
    response = client.get(
        api_url(campaign_id, "?sort=position"), headers={"Authorization": f"Bearer {token}"}
    )
    assert_pdf(response, campaign_id)


def test_api_report_errors_are_json(client: FlaskClient, campaign_id: int, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    missing = client.get(api_url(campaign_id + 1000), headers=auth)
    assert missing.status_code == 404
    assert missing.json is not None
    assert missing.json["error"]["code"] == "campaign_not_found"
    bad = client.get(api_url(campaign_id, "?metric=clicks"), headers=auth)
    assert bad.status_code == 422
    assert bad.json is not None
    assert bad.json["error"]["code"] == "validation_failed"
    assert bad.json["error"]["details"][0]["field"] == "query.metric"


def test_dashboard_report_errors_are_pages(
    auth: AuthActions, client: FlaskClient, campaign_id: int
) -> None:
    auth.add_user()
    auth.login()
    response = client.get(dashboard_url(campaign_id, "?variant=Z"))
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "no variant" in response.get_data(as_text=True)


def test_cli_writes_the_pdf(runner: FlaskCliRunner, campaign_id: int, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    result = runner.invoke(
        args=["report", "pdf", str(campaign_id), "-o", str(out), "--metric", "share",
              "--variant", "A", "--part", "html", "--period", "all"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True)
    assert "Pages:" in info.stdout
    assert "share of clicks, relative to the top link" in pdf_text(data, tmp_path, last=1).lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999"], "no campaign with id 999999"),
        (["{id}", "--part", "amp"], "has no amp part"),
        (["{id}", "--period", "custom"], "needs a start or an end"),
    ],
)
def test_cli_errors(
    runner: FlaskCliRunner, campaign_id: int, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(id=campaign_id) for a in args]
    result = runner.invoke(args=["report", "pdf", *argv, "-o", str(tmp_path / "x.pdf")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "x.pdf").exists()
