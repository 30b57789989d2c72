"""The ``clickmap`` command, driven through Flask's CLI runner on each database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Delivery
from tests.factories import AMP
from tests.prerequisites import corpus_files

# Two Outlook VML buttons (each standing in for the <a> beside it), a plain link, a mailto.
BUTTON = """<!--[if mso]>
<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="{href}" style="height:40px;
  width:200px" arcsize="10%" fillcolor="#222222"><center>{text}</center></v:roundrect>
<![endif]-->
<!--[if !mso]><!-- --><a href="{href}" class="button">{text}</a><!--<![endif]-->"""
EMAIL = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Launch</title></head><body>
<p><a href="https://shop.example.com/">Our shop</a></p>
{BUTTON.format(href="https://shop.example.com/launch", text="See the launch")}
{BUTTON.format(href="https://shop.example.com/preorder", text="Pre-order")}
<p><a href="mailto:help@example.com">Write to us</a></p>
</body></html>
"""


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Path, Path]:
    """The email's HTML and AMP parts as files, as a sender has them."""
    html, amp = tmp_path / "launch.html", tmp_path / "launch.amp.html"
    html.write_text(EMAIL, encoding="utf-8")
    amp.write_text(AMP, encoding="utf-8")
    return html, amp


def _create(runner: FlaskCliRunner, parts: tuple[Path, Path], *extra: str) -> dict:
    email, amp = parts
    result = runner.invoke(
        args=[
            "campaign",
            "create",
            "Launch",
            "--html",
            f"A={email}",
            "--amp",
            f"A={amp}",
            "--html",
            f"B={email}",
            "--json",
            *extra,
        ]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_prints_catalog(runner: FlaskCliRunner, parts: tuple[Path, Path]) -> None:
    catalog = _create(runner, parts)
    assert [v["name"] for v in catalog["variants"]] == ["A", "B"]
    html_links = [link for link in catalog["variants"][0]["links"] if link["part"] == "html"]
    # Each VML button is paired with its <a>: one link each, beside the plain one.
    assert sum(1 for link in html_links if link["kind"] == "vml") == 2
    assert sum(1 for link in html_links if link["tracked"]) == 3
    human = runner.invoke(args=["campaign", "show", str(catalog["id"])])
    assert human.exit_code == 0
    assert "variant A (html+amp)" in human.output
    assert "tracked" in human.output


def test_personalize_streams_json_lines(
    runner: FlaskCliRunner, tmp_path: Path, parts: tuple[Path, Path]
) -> None:
    catalog = _create(runner, parts)
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
    # Each email's id for the ESP webhooks, and the header that can carry it.
    assert all(line["headers"] == {"X-Clickmap-Id": line["clickmapId"]} for line in lines)
    assert len({line["clickmapId"] for line in lines}) == 2


def test_opens_and_the_click_param_are_campaign_settings(
    runner: FlaskCliRunner, tmp_path: Path, parts: tuple[Path, Path]
) -> None:
    catalog = _create(runner, parts, "--no-opens", "--click-param", "cm_click")
    assert (catalog["track_opens"], catalog["click_param"]) == (False, "cm_click")
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("recipient\nann@example.com\n")
    personalize = ["campaign", "personalize", str(catalog["id"]), str(csv_file), "--variant", "A"]
    [line] = [json.loads(x) for x in runner.invoke(args=personalize).stdout.splitlines()]
    assert "/o/" not in line["html"] + line["amp"]
    switched = runner.invoke(
        args=["campaign", "settings", str(catalog["id"]), "--opens", "on", "--click-param", ""]
    )
    assert switched.exit_code == 0, switched.output
    assert "open pixel on; click id parameter off" in switched.output
    [line] = [json.loads(x) for x in runner.invoke(args=personalize).stdout.splitlines()]
    assert '<img src="https://t.example.com/o/' in line["html"]
    assert '<amp-img src="https://t.example.com/o/' in line["amp"]
    bad = runner.invoke(args=["campaign", "settings", str(catalog["id"]), "--click-param", "a b"])
    assert bad.exit_code != 0 and "click_param must be" in bad.output


def test_deliveries_idempotent(
    runner: FlaskCliRunner, tmp_path: Path, session: Session, parts: tuple[Path, Path]
) -> None:
    catalog = _create(runner, parts)
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


@pytest.mark.shared("corpus")
def test_create_with_a_real_email_from_the_corpus(runner: FlaskCliRunner) -> None:
    [email] = [p for p in corpus_files("email") if "Cerberus__2014-fluid-vml" in p.name]
    [amp] = [p for p in corpus_files("amp") if "leemunroe__amp-email-templates__simple" in p.name]
    catalog = _create(runner, (email, amp))
    html_links = [link for link in catalog["variants"][0]["links"] if link["part"] == "html"]
    # The fluid Cerberus template has four VML buttons, each paired with its <a>.
    assert sum(1 for link in html_links if link["kind"] == "vml") == 4
