"""Selectors for placements: each names exactly its link in the email as a browser builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest.links import LinkRules, decode_attribute, parse_html
from app.ingest.rewriting import Link, scan
from app.reports.selectors import browser_tree, placement_selectors
from app.vocabulary import Part
from tests.prerequisites import corpus_params

TABLES = """<!doctype html>
<html><head><title>Sale</title></head><body>
<table><tr><td><a href="https://shop.example.com/logo">Logo</a></td></tr>
<tr><td><a href="https://shop.example.com/one">One</a> <a href="https://shop.example.com/two">Two</a>
</td><td><a href="mailto:help@example.com">Help</a></td></tr></table>
<p><a href="https://shop.example.com/cta" id="cta">Buy now</a></p>
</body></html>
"""

BUTTON = """<!doctype html><html><body>
<table><tr><td>
<!--[if mso]>
<v:roundrect href="https://shop.example.com/go"><center>Go</center></v:roundrect>
<![endif]-->
<a href="https://shop.example.com/go" style="mso-hide:all">Go</a>
<!--[if mso]><a href="https://shop.example.com/outlook-only">Outlook only</a><![endif]-->
</td></tr></table>
</body></html>
"""


def expected_href(link: Link) -> str:
    """The ``href`` attribute a parser gives the link's element."""
    return link.href if link.skip_reason == "unlocatable" else decode_attribute(link.href)


def check_selectors(text: str, part: Part = "html") -> dict[int, str | None]:
    """The part's selectors, each checked to select exactly its link, by ``href``."""
    selectors = placement_selectors(text, part, LinkRules())
    links = scan(text, part).links
    assert sorted(selectors) == [link.position for link in links]
    tree = browser_tree(parse_html(text))
    for link in links:
        selector = selectors[link.position]
        if selector is None:
            continue
        found = tree.select(selector)
        assert len(found) == 1, f"{selector} selects {len(found)} elements"
        assert (found[0].get("href") or "") == expected_href(link), selector
    return selectors


def test_paths_follow_the_tables_as_a_browser_builds_them() -> None:
    assert check_selectors(TABLES) == {
        0: "body > table > tbody > tr:nth-of-type(1) > td > a",
        1: "body > table > tbody > tr:nth-of-type(2) > td:nth-of-type(1) > a:nth-of-type(1)",
        2: "body > table > tbody > tr:nth-of-type(2) > td:nth-of-type(1) > a:nth-of-type(2)",
        3: "body > table > tbody > tr:nth-of-type(2) > td:nth-of-type(2) > a",
        4: "#cta",
    }


def test_an_explicit_tbody_is_not_doubled() -> None:
    text = "<table><tbody><tr><td><a href='https://x.example/'>x</a></td></tr></tbody></table>"
    assert check_selectors(text) == {0: "body > table > tbody > tr > td > a"}


def test_cells_written_straight_in_a_table_get_their_row() -> None:
    text = "<table><td><a href='https://x.example/'>x</a></td><td>y</td></table>"
    assert check_selectors(text) == {0: "body > table > tbody > tr > td:nth-of-type(1) > a"}


@pytest.mark.parametrize(
    ("ids", "selector"),
    [
        (("cta", "other"), "#cta"),
        (("cta", "cta"), "body > p:nth-of-type(1) > a"),
        # Quirks mode matches ids ignoring case: CTA and cta are not unique there.
        (("cta", "CTA"), "body > p:nth-of-type(1) > a"),
        (("1st:link", "other"), "#\\31 st\\:link"),
        (("", "other"), "body > p:nth-of-type(1) > a"),
    ],
)
def test_an_id_is_used_only_when_no_other_element_shares_it(
    ids: tuple[str, str], selector: str
) -> None:
    text = (
        f"<p><a href='https://x.example/' id='{ids[0]}'>x</a></p>"
        f"<p><span id='{ids[1]}'>y</span></p>"
    )
    assert check_selectors(text) == {0: selector}


def test_an_outlook_button_is_its_link_and_outlook_only_links_have_none() -> None:
    selectors = check_selectors(BUTTON)
    links = scan(BUTTON).links
    assert [(link.kind, link.occurrences) for link in links] == [("vml", 2), ("a", 1)]
    assert selectors == {0: "body > table > tbody > tr > td > a", 1: None}


def test_a_link_inside_a_button_table_keeps_its_wrapping_link() -> None:
    text = (
        "<table><tr><td><a href='https://x.example/outer'>"
        "<table><tr><td><a href='https://x.example/inner'>Go</a></td></tr></table>"
        "</a></td></tr></table>"
    )
    assert check_selectors(text) == {
        0: "body > table > tbody > tr > td > a",
        1: "body > table > tbody > tr > td > a > table > tbody > tr > td > a",
    }


def test_a_named_anchor_before_a_table_stays_empty() -> None:
    text = "<a name='top'></a><table><tr><td><a href='https://x.example/'>x</a></td></tr></table>"
    assert check_selectors(text) == {0: "body > table > tbody > tr > td > a"}


def test_a_template_without_body_starts_its_body_where_a_browser_does() -> None:
    text = "<style>p{}</style><container><p><a href='https://x.example/'>x</a></p></container>"
    assert check_selectors(text) == {0: "body > container > p > a"}


def test_links_in_amp_templates_have_none() -> None:
    text = """<!doctype html><html ⚡4email><head></head><body>
<a href="https://x.example/top">Top</a>
<amp-list src="https://x.example/items.json" layout="fixed-height" height="100">
<template type="amp-mustache"><a href="https://x.example/item">Item</a></template>
</amp-list></body></html>"""
    assert check_selectors(text, "amp") == {0: "body > a", 1: None}


def test_odd_tag_names_are_escaped() -> None:
    text = "<o:p><a href='https://x.example/'>x</a></o:p><o:p>y</o:p>"
    assert check_selectors(text) == {0: "body > o\\:p:nth-of-type(1) > a"}


def test_an_email_without_links_has_no_selectors() -> None:
    assert placement_selectors("<p>Hello</p>") == {}


@pytest.mark.parametrize("path", corpus_params("email", "amp"))
def test_every_corpus_selector_selects_its_link_alone(path: Path) -> None:
    part: Part = "amp" if path.parent.name == "amp" else "html"
    text = path.read_text(encoding="utf-8", errors="replace")
    check_selectors(text, part)
