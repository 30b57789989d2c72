"""The API against its own OpenAPI document, on each database: the document is valid
OpenAPI 3.1, and schema-driven fuzzing (schemathesis) of the served app finds no 5xx and no
answer that breaks the document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.accounts import create_api_token
from app.web.api import contract
from tests.factories import EMAIL, send, serving

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def token(app: Flask) -> str:
    with app.extensions["clickmap.sessionmaker"]() as session:
        found = create_api_token(session, "contract")
        session.commit()
    return found


def test_the_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")  # public: documentation, no data
    assert response.status_code == 200
    document = response.json
    validate(document)
    assert document["openapi"] == "3.1.0"
    # Every route of the API blueprint is in the document, with its method.
    rules = {
        (re.sub(r"<\w+:(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1")), method.lower())
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        and rule.endpoint.removeprefix("api.") in {op.name for op in contract.operations}
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert rules == documented
    assert len(documented) >= 6


def test_the_segments_are_documented_arguments_of_every_heatmap_read(
    client: FlaskClient,
) -> None:
    """An API user finds client (with the names it takes) and country in the document."""
    document = client.get("/api/v1/openapi.json").json
    heatmap_reads = [path for path in document["paths"] if "/heatmap" in path]
    assert heatmap_reads
    for path in heatmap_reads:
        arguments = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert {"client", "country"} <= set(arguments), path
        assert "Outlook" in json.dumps(arguments["client"]["schema"])
        assert "Apple Mail" in json.dumps(arguments["client"]["schema"])


def test_every_error_status_is_documented_with_the_one_shape(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s for s in operation["responses"] if s.startswith(("4", "5"))}
            assert {"401", "404"} <= errors, (path, method)
            assert not any(s.startswith("5") for s in errors)
            for status in errors:
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}


def test_the_reference_page_is_served_without_a_cdn(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(url.startswith("/") for url in assets)
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server, with a campaign that has deliveries and clicks."""
    sent = send(app, EMAIL)
    client = app.test_client()
    for recipient in (0, 1):
        client.get(f"/c/{sent.token(0, recipient)}")
    with serving(app) as url:
        yield url


@pytest.mark.slow
def test_fuzzing_the_served_api_finds_no_5xx_and_no_answer_off_the_document(
    served: str, token: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{served}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            # Valid by the schema is not always acceptable: an html part must be HTML and
            # variant names unique, rules a schema cannot state; those answer 422 with
            # their own codes, which the document lists.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    summary = result.stdout[-3000:]
    print(summary)
    assert result.returncode == 0, summary
