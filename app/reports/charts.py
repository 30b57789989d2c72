"""Server-rendered SVG charts for the heatmap page and its PDF.

One SVG must work in a browser, inline or in ``<img>``, and in WeasyPrint: so no script
(pygal's tooltip JS is switched off), no XML declaration (it is invalid inline in HTML),
styles inlined in the SVG, and a fixed size in absolute units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pygal
from lxml import etree  # type: ignore[import-untyped]
from pygal.style import Style

NO_DATA = "No clicks yet"
SVG = "http://www.w3.org/2000/svg"
TIME_SIZE = (720, 260)
TIME_TITLE = "Clicks over time"
DEVICE_TITLE = "Clicks by device"
DEVICE_SIZE = (360, 260)
_BAR_COLOR = "#1565C0"

_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#333333",
    foreground_strong="#111111",
    foreground_subtle="#bbbbbb",
    colors=(_BAR_COLOR,),
    font_family="Arial, Helvetica, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    value_font_size=11,
    no_data_font_size=22,
    transition="0ms",
)


def _config(size: tuple[int, int]) -> dict[str, Any]:
    width, height = size
    return {
        "width": width,
        "height": height,
        "explicit_size": True,
        "disable_xml_declaration": True,
        "js": [],
        "style": _STYLE,
        "show_legend": False,
        "no_data_text": NO_DATA,
        "margin": 12,
        "truncate_label": -1,
    }


def _render(chart: Any, title: str) -> str:
    """The chart's SVG without pygal's config ``<script>`` (it adds one even with
    ``js=[]``; sandboxed frames and PDFs have no use for it) and with a real title."""
    root = etree.fromstring(chart.render(is_unicode=False))
    for script in root.iter(f"{{{SVG}}}script"):
        script.getparent().remove(script)
    heading = root.find(f"{{{SVG}}}title")
    if heading is not None:
        heading.text = title
    svg: str = etree.tostring(root, encoding="unicode")
    return svg


def _no_data(size: tuple[int, int], title: str) -> str:
    """A plain message instead of an empty plot with a meaningless 0-1 axis."""
    width, height = size
    return (
        f'<svg xmlns="{SVG}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{title}: {NO_DATA}</title>'
        f'<rect width="{width}" height="{height}" fill="#ffffff" stroke="#dddddd"/>'
        f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" '
        f'dominant-baseline="middle" font-family="Arial, Helvetica, sans-serif" '
        f'font-size="18" fill="#616161">{NO_DATA}</text></svg>'
    )


def _hourly(points: Sequence[tuple[datetime, int]]) -> bool:
    return len(points) < 2 or points[1][0] - points[0][0] < timedelta(days=1)


def time_chart(points: Sequence[tuple[datetime, int]]) -> str:
    """Clicks per bucket (hours or days, as ``stats.clicks_over_time`` chose) as bars."""
    chart = pygal.Bar(
        **_config(TIME_SIZE),
        show_minor_x_labels=False,
        x_label_rotation=0,
        y_title="Clicks",
        min_scale=2,
        max_scale=5,
    )
    if not any(count for _, count in points):
        return _no_data(TIME_SIZE, TIME_TITLE)
    hourly = _hourly(points)
    labels = [moment.strftime("%b %d %H:00" if hourly else "%b %d") for moment, _count in points]
    # Show about eight labels, starting at a midnight (hourly) so they read as day marks.
    every = max(1, -(-len(points) // 8))
    if hourly and every > 1:
        every = min(h for h in (1, 2, 3, 4, 6, 8, 12, 24, 48) if h >= every)
    chart.x_labels = labels
    chart.x_labels_major = [
        label
        for (moment, _count), label in zip(points, labels, strict=True)
        if (moment.hour if hourly else (moment - points[0][0]).days) % every == 0
    ]
    chart.add(
        "Clicks",
        [
            {"value": count, "label": label}
            for (_moment, count), label in zip(points, labels, strict=True)
        ],
    )
    return _render(chart, TIME_TITLE)


def device_chart(split: Mapping[str, int]) -> str:
    """Clicks per device class as horizontal bars with their numbers printed."""
    chart = pygal.HorizontalBar(
        **_config(DEVICE_SIZE),
        print_values=True,
        print_zeroes=True,
        show_y_labels=True,
        min_scale=2,
        max_scale=5,
    )
    if not any(split.values()):
        return _no_data(DEVICE_SIZE, DEVICE_TITLE)
    # Horizontal bars are drawn bottom-up; reverse so the first class reads first.
    names = list(split)[::-1]
    chart.x_labels = [name.capitalize() for name in names]
    chart.add("Clicks", [split[name] for name in names])
    return _render(chart, DEVICE_TITLE)
