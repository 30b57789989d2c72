"""The report template's labels and formats, and how they are installed on an app."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from app.reports import labels
from app.reports.heatmap import METRICS, PERIODS
from app.vocabulary import DEVICES, PARTS


def test_every_choice_has_a_label() -> None:
    assert tuple(labels.METRIC_LABELS) == METRICS
    assert tuple(labels.PERIOD_LABELS) == PERIODS
    assert tuple(labels.PART_LABELS) == PARTS
    assert tuple(labels.DEVICE_LABELS) == ("", *DEVICES)


def test_formats() -> None:
    assert labels.format_percent(12.345) == "12.3%"
    assert labels.format_percent(None) == "—"
    assert labels.format_number(1234567) == "1,234,567"
    assert labels.format_number(None) == "—"
    when = datetime(2025, 3, 1, 8, 5, tzinfo=UTC)
    assert labels.format_when(when) == "2025-03-01 08:05 UTC"
    assert labels.format_when(when, with_time=False) == "2025-03-01"
    assert labels.format_when(None) == "—"


def test_printable_svg_drops_scripts_and_style_attributes() -> None:
    svg = (
        '<svg><script type="text/javascript">alert(1)</script><style>.a{}</style>'
        '<g style="opacity: 0;"/></svg>'
    )
    assert str(labels.printable_svg(svg)) == '<svg><style>.a{}</style><g opacity="0"/></svg>'


def test_init_app_installs_once_and_keeps_what_is_there() -> None:
    app = Flask(__name__)
    own_nonced = lambda svg: svg  # noqa: E731 (a page's own filter, e.g. the dashboard's)
    app.jinja_env.filters["nonced"] = own_nonced
    labels.init_app(app)
    labels.init_app(app)
    env = app.jinja_env
    assert env.filters["nonced"] is own_nonced
    assert env.filters["percent"] is labels.format_percent
    assert env.globals["part_labels"] is labels.PART_LABELS
    rendered = env.from_string("{{ 3.14159|percent }} {{ 1000|number }} {{ device_labels[''] }}")
    assert rendered.render() == "3.1% 1,000 All devices"
