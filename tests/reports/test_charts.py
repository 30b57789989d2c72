"""Server-side charts: valid, self-contained SVG that a browser and WeasyPrint both draw."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import weasyprint
from lxml import etree

from app.reports import charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
HOURS = [(T0 + timedelta(hours=h), [0, 4, 17, 1234, 9, 0][h % 6]) for h in range(48)]
DAYS = [(T0 + timedelta(days=d), 10 + d) for d in range(40)]
SPLIT = {"desktop": 1234, "mobile": 567, "tablet": 0, "other": 89}


def parse(svg: str) -> etree._Element:
    root = etree.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: etree._Element) -> list[str]:
    return [t.strip() for t in root.itertext() if t.strip()]


def self_contained(svg: str, size: tuple[int, int]) -> None:
    root = parse(svg)
    assert not svg.startswith("<?xml")
    assert (root.get("width"), root.get("height")) == tuple(str(n) for n in size)
    assert not list(root.iter(f"{SVG}script"))
    assert "<script" not in svg
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.endswith("href"):
                assert not value.startswith(("http:", "https:", "//")), value
    assert "@import" not in svg


@pytest.mark.parametrize("points", [HOURS, DAYS], ids=["hourly", "daily"])
def test_time_chart_is_self_contained_svg_with_the_values(
    points: list[tuple[datetime, int]],
) -> None:
    svg = charts.time_chart(points)
    self_contained(svg, charts.TIME_SIZE)
    values = [d.text for d in parse(svg).iter(f"{SVG}desc") if d.get("class") == "value"]
    assert values == [str(count) for _, count in points]
    assert root_title(svg) == charts.TIME_TITLE


def root_title(svg: str) -> str | None:
    title = parse(svg).find(f"{SVG}title")
    return None if title is None else title.text


def test_time_chart_labels_read_as_dates() -> None:
    shown = texts(parse(charts.time_chart(HOURS)))
    assert "Mar 01 00:00" in shown
    assert "Mar 02 00:00" in shown
    assert "Mar 01" in texts(parse(charts.time_chart(DAYS)))


def test_device_chart_prints_each_class_and_number() -> None:
    svg = charts.device_chart(SPLIT)
    self_contained(svg, charts.DEVICE_SIZE)
    shown = texts(parse(svg))
    for name, count in SPLIT.items():
        assert name.capitalize() in shown
        assert str(count) in shown


@pytest.mark.parametrize(
    "svg",
    [
        charts.time_chart([]),
        charts.time_chart([(T0, 0), (T0 + timedelta(hours=1), 0)]),
        charts.device_chart({}),
        charts.device_chart(dict.fromkeys(SPLIT, 0)),
    ],
)
def test_no_clicks_yet(svg: str) -> None:
    root = parse(svg)
    assert texts(root)[-1] == "No clicks yet"
    assert "<script" not in svg


def test_weasyprint_draws_them_without_complaint(caplog: pytest.LogCaptureFixture) -> None:
    body = "".join(
        [
            charts.time_chart(HOURS),
            charts.device_chart(SPLIT),
            charts.time_chart([]),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pdf = weasyprint.HTML(string=f"<html><body>{body}</body></html>").write_pdf()
    assert pdf.startswith(b"%PDF")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []
