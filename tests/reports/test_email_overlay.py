"""The colored email: the email as sent, only its tracked hrefs swapped, with the overlay."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import html as lxml_html

from app.ingest.rewriting import scan
from app.reports.email_overlay import email_document
from app.reports.heatmap import TIER_COLORS, LinkStat
from tests.factories import AMP, EMAIL
from tests.prerequisites import corpus_params


def stat(position: int, value: int, tier: str, label: str | None = None) -> LinkStat:
    return LinkStat(
        placement_id=100 + position, position=position, kind="a", text="", destination=None,
        href="", total=value, unique=value, rate=None, share=0.0, value=float(value),
        tier=tier, label=label if label is not None else f"{value:,}",
    )  # fmt: skip


def tracked_stats(text: str, part: str = "html") -> list[LinkStat]:
    links = scan(text, part).links  # type: ignore[arg-type]
    return [stat(link.position, 10 * link.position + 1, "blue") for link in links if link.tracked]


_OVERLAY = re.compile(r'<style id="clickmap-overlay">.*?</style>\n', re.DOTALL)
_INJECTED_ID = re.compile(r' id="cm-\d+"')


def undo(document: str) -> str:
    """The document minus our overlay and ids: the email with only its hrefs replaced."""
    return _INJECTED_ID.sub("", _OVERLAY.sub("", document, count=1))


def expected(text: str, part: str, positions: list[int]) -> str:
    compiled = scan(text, part).compiled  # type: ignore[arg-type]
    urls = [f"#cm-{n}" for n in range(max(compiled.slots, default=-1) + 1)]
    return compiled.render(urls) if set(compiled.slots) <= set(positions) else ""


def test_document_is_the_email_with_only_hrefs_swapped() -> None:
    links = [stat(0, 1234, "red"), stat(1, 7, "blue"), stat(2, 0, "gray"), stat(4, 3, "green")]
    document = email_document(EMAIL, "html", links)
    assert undo(document) == expected(EMAIL, "html", [0, 1, 2, 4])
    # Each quoting style keeps its quotes; the id follows the value.
    assert '<a href="#cm-0" id="cm-0">Shop the sale</a>' in document
    assert "<a href='#cm-1' id=\"cm-1\">New arrivals</a>" in document
    assert '<a href=#cm-2 id="cm-2">Sale again</a>' in document
    assert 'href="mailto:help@example.com"' in document
    # The overlay sits in the head, after the sender's own styles and before </head>.
    assert document.index('<style id="clickmap-overlay">') < document.index("</head>")


def test_badges_show_each_links_number_in_its_tier_color() -> None:
    links = [stat(0, 1234, "red"), stat(1, 7, "blue"), stat(4, 0, "gray", "0")]
    document = email_document(EMAIL, "html", links)
    assert '[href="#cm-0"]::after{content:"1,234"}' in document
    assert '[href="#cm-1"]::after{content:"7"}' in document
    assert '[href="#cm-4"]::after{content:"0"}' in document
    red = TIER_COLORS["red"]
    assert f'[href="#cm-0"]{{outline:3px solid {red}!important' in document
    assert f'[href="#cm-0"]::after{{background:{red}}}' in document
    # The frame's pane links to #cm-<position>: that link must pulse.
    assert '[href="#cm-1"]:target' in document
    assert "@keyframes cm-pulse" in document


def test_highlight_marks_one_link_without_a_target() -> None:
    links = [stat(0, 5, "red"), stat(1, 1, "blue")]
    document = email_document(EMAIL, "html", links, highlight=1)
    strong = re.search(r"([^}\n]*)\{outline:5px solid #000", document)
    assert strong is not None
    assert '[href="#cm-1"]' in strong.group(1).split(",")


def test_links_not_passed_in_keep_their_real_address() -> None:
    document = email_document(EMAIL, "html", [stat(1, 2, "red")])
    assert 'href="https://shop.example.com/sale"' in document
    assert "href='#cm-1'" in document
    assert "cm-0" not in document


def test_no_script_of_ours_and_the_senders_markup_left_as_is() -> None:
    document = email_document(EMAIL, "html", tracked_stats(EMAIL))
    # The sender's script and handler stay (the sandboxed frame will not run them) ...
    assert 'onclick="alert(1)"' in document
    assert '<script>document.title = "pwned"</script>' in document
    # ... and nothing runnable is added by us.
    assert document.lower().count("<script") == EMAIL.lower().count("<script")
    assert "javascript:" not in _OVERLAY.search(document).group(0)  # type: ignore[union-attr]


def test_amp_becomes_static() -> None:
    document = email_document(AMP, "amp", tracked_stats(AMP, "amp"))
    assert "cdn.ampproject.org" not in document
    assert "<script" not in document
    assert "amp-img" not in document
    assert (
        '<img src="https://img.example.com/a.png" alt="Hero" width="600" height="300" '
        "data-cm-amp>" in document
    )
    assert "body{visibility:visible!important" in document
    assert '<a href="#cm-0" id="cm-0">AMP link</a>' in document
    tree = lxml_html.fromstring(document)
    assert tree.xpath("//img/@src") == ["https://img.example.com/a.png"]


@pytest.mark.parametrize(
    ("text", "before"),
    [
        ("<html><body><a href='https://x.example/'>x</a></body></html>", "<body>"),
        ("<!DOCTYPE html>\n<p><a href=https://x.example/>x</a>", "\n<p>"),
        ("<a href='https://x.example/'>x</a>", "<a "),
        (
            "<!-- </head> --><head><title></head></title></head><a href='https://x.example/'>",
            "</head><a",
        ),
    ],
)
def test_overlay_placement_keeps_standards_mode(text: str, before: str) -> None:
    document = email_document(text, "html", tracked_stats(text))
    overlay = _OVERLAY.search(document)
    assert overlay is not None
    assert document[overlay.end() :].startswith(before)
    assert undo(document) == expected(text, "html", [0])


@pytest.mark.parametrize("path", corpus_params("email", "amp"))
def test_real_emails_survive(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    part = "amp" if path.parent.name == "amp" else "html"
    links = tracked_stats(text, part)
    document = email_document(text, part, links)
    if part == "html":
        assert undo(document) == expected(text, part, [s.position for s in links])
    for link in links:
        assert f'id="cm-{link.position}"' in document
        assert f'[href="#cm-{link.position}"]::after{{content:"{link.label}"}}' in document
    lxml_html.fromstring(document)


def test_unknown_part_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown part"):
        email_document(EMAIL, "text", [])
