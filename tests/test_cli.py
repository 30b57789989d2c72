"""The ``clickmap`` command, driven through Flask's CLI runner on each database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Delivery
from tests.conftest import corpus_files

EMAIL = next(p for p in corpus_files("email") if "Cerberus__2014-fluid-vml" in p.name)
AMP = next(p for p in corpus_files("amp") if "leemunroe__amp-email-templates__simple" in p.name)


def _create(runner: FlaskCliRunner, *extra: str) -> dict:
    result = runner.invoke(
        args=[
            "campaign",
            "create",
            "Launch",
            "--html",
            f"A={EMAIL}",
            "--amp",
            f"A={AMP}",
            "--html",
            f"B={EMAIL}",
            "--json",
            *extra,
        ]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_prints_catalog(runner: FlaskCliRunner) -> None:
    catalog = _create(runner)
    assert [v["name"] for v in catalog["variants"]] == ["A", "B"]
    html_links = [link for link in catalog["variants"][0]["links"] if link["part"] == "html"]
    # The fluid Cerberus template has four VML buttons, each paired with its <a>.
    assert sum(1 for link in html_links if link["kind"] == "vml") == 4
    human = runner.invoke(args=["campaign", "show", str(catalog["id"])])
    assert human.exit_code == 0
    assert "variant A (html+amp)" in human.output
    assert "tracked" in human.output


def test_personalize_streams_json_lines(runner: FlaskCliRunner, tmp_path: Path) -> None:
    catalog = _create(runner)
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("recipient,name\nann@example.com,Ann\nbo@example.com,Bo\n")
    result = runner.invoke(
        args=["campaign", "personalize", str(catalog["id"]), str(csv_file), "--variant", "A"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["recipient"] for line in lines] == ["ann@example.com", "bo@example.com"]
    assert all("https://t.example.com/c/" in line["html"] for line in lines)
    assert all("https://t.example.com/c/" in line["amp"] for line in lines)
    assert "ann@example.com" not in lines[0]["html"]


def test_deliveries_idempotent(runner: FlaskCliRunner, tmp_path: Path, session: Session) -> None:
    catalog = _create(runner)
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("a\nb\nc\nb\n")
    for _ in range(2):
        result = runner.invoke(
            args=["campaign", "deliveries", str(catalog["id"]), str(csv_file), "--variant", "B"]
        )
        assert result.exit_code == 0, result.output
        assert "3 deliveries recorded for variant B" in result.output
    assert session.scalar(select(func.count()).select_from(Delivery)) == 3


def test_errors_are_one_clear_line(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["campaign", "show", "424242"])
    assert result.exit_code != 0
    assert "no campaign with id 424242 [campaign_not_found]" in result.output
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    result = runner.invoke(args=["campaign", "create", "X", "--html", str(empty)])
    assert result.exit_code != 0
    assert "[not_html]" in result.output
    result = runner.invoke(args=["campaign", "create", "X", "--html", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "cannot read" in result.output


def test_token_create_and_db_upgrade(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["token", "create", "esp"])
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("cm_")
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0
    assert "database at revision" in result.output


def test_every_command_is_assembled_in_app_cli(runner: FlaskCliRunner) -> None:
    listed = runner.invoke(args=["--help"]).output
    for name in ("campaign", "db", "demo", "report", "serve", "token", "user"):
        assert f"  {name} " in listed, name
    app_dir = Path(__file__).resolve().parent.parent / "app"
    outside = [
        str(path.relative_to(app_dir))
        for path in app_dir.rglob("*.py")
        if "cli" not in path.relative_to(app_dir).parts
        and re.search(r"click\.(command|group)\(|add_command\(", path.read_text(encoding="utf-8"))
    ]
    assert outside == []
