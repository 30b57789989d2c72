"""The colored email: the email as sent, only its tracked hrefs swapped, with the overlay."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from lxml import html as lxml_html

from app.ingest.rewriting import scan
from app.reports.email_overlay import email_document, proxied_resources
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


# -- remote resources for the dashboard's frame -------------------------------------------------

REMOTE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta http-equiv="refresh" content="1;url=https://elsewhere.example/">
<link rel="stylesheet" href="https://cdn.example.com/mail.css">
<link rel="prefetch" href="https://cdn.example.com/next.html">
<link rel="preload" as="image" href="https://cdn.example.com/hero.png">
<link rel="dns-prefetch" href="//dns.example.com">
<link rel="preconnect" href="https://connect.example.com">
<link rel="icon" href="https://cdn.example.com/favicon.ico">
<style>
@import url("https://cdn.example.com/import.css");
@import 'https://cdn.example.com/import2.css' screen;
body { background: url(https://cdn.example.com/body.png) }
@font-face { font-family: Brand; src: url('https://fonts.example.com/brand.woff2') format("woff2") }
.escaped { background: url(https\\3a //cdn.example.com/escaped.png) }
.cid { background: url(cid:part1) }
</style></head>
<body background="https://cdn.example.com/bg.png">
<img src="https://cdn.example.com/logo.png" srcset="https://cdn.example.com/logo@2x.png 2x,
  //cdn.example.com/logo@3x.png 3x" alt="Logo">
<picture><source srcset="https://cdn.example.com/a.webp" type="image/webp">
<img src="http://cdn.example.com/a.png"></picture>
<table background="https://cdn.example.com/table.png"><tr>
<td style="background-image:url('https://cdn.example.com/td.png');color:red">Cell</td></tr></table>
<svg width="8" height="8"><image href="https://cdn.example.com/svg.png"/>
<use href="https://cdn.example.com/sprite.svg#icon"/><use href="#local"/></svg>
<video poster="https://cdn.example.com/poster.png" src="https://cdn.example.com/v.mp4"></video>
<iframe src="https://cdn.example.com/frame.html"></iframe>
<object data="https://cdn.example.com/plugin.swf"></object>
<input type="image" src="https://cdn.example.com/button.png">
<img src="cid:inline-logo"><img src="/relative.png"><img src="data:image/gif;base64,R0lGOD==">
<p><a href="https://shop.example.com/sale" ping="https://ping.example.com/">Sale</a></p>
</body></html>
"""

PROXIED = "/proxy?u="


def proxy(url: str) -> str:
    return PROXIED + quote(url, safe="")


def loaded(document: str) -> list[str]:
    """Every address a browser would load by itself from ``document``: attributes of
    elements that fetch, candidate lists, CSS url() and @import, link and meta elements."""
    tree = lxml_html.document_fromstring(document)
    found: list[str] = []
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            name = name.lower()
            if name in ("src", "background", "poster", "data", "ping") or name.endswith("href"):
                if element.tag.lower() in ("a", "area"):
                    continue  # followed only when clicked
                found.append(value)
            elif name in ("srcset", "imagesrcset"):
                found += [c.split()[0] for c in value.split(",") if c.strip()]
            elif name == "style":
                found += re.findall(r"url\(\"?([^\")]*)", value)
        if element.tag in ("link", "base") or element.get("http-equiv", "").lower() == "refresh":
            found.append(f"<{element.tag}>")
        if element.tag == "style":
            found += re.findall(r"url\(\"?([^\")]*)|@import", element.text or "")
    return found


def test_remote_resources_go_through_the_proxy_or_are_dropped() -> None:
    document = proxied_resources(REMOTE, proxy)
    addresses = loaded(document)
    assert "@import" not in addresses
    assert all(a.startswith((PROXIED, "data:")) or a == "#local" for a in addresses), addresses
    proxied = {unquote(a[len(PROXIED) :]) for a in addresses if a.startswith(PROXIED)}
    assert proxied == {
        f"https://cdn.example.com/{name}"
        for name in (
            "body.png", "escaped.png", "bg.png", "logo.png", "logo@2x.png", "logo@3x.png",
            "a.webp", "table.png", "td.png", "svg.png", "poster.png", "button.png",
        )
    } | {"https://fonts.example.com/brand.woff2", "http://cdn.example.com/a.png"}  # fmt: skip
    # The email itself is still there: text, links, inline styles, the content type.
    assert 'href="https://shop.example.com/sale"' in document
    assert "color:red" in document
    assert 'http-equiv="Content-Type"' in document
    assert "format(&quot;woff2&quot;)" not in document and 'format("woff2")' in document
    assert "ping.example.com" not in document
    assert "cid:" not in document and "/relative.png" not in document


def test_addresses_resolve_against_the_emails_base() -> None:
    email = (
        '<html><head><base href="https://cdn.example.com/mail/"></head><body>'
        '<img src="logo.png"><div style="background:url(../bg.png)"></div>'
        '<a href="#cm-1" id="cm-1">Sale</a></body></html>'
    )
    document = proxied_resources(email, proxy)
    assert "<base" not in document  # the overlay's #cm- anchors stay in the frame
    assert set(loaded(document)) == {
        proxy("https://cdn.example.com/mail/logo.png"),
        proxy("https://cdn.example.com/bg.png"),
    }


def test_images_can_be_left_out_altogether() -> None:
    document = proxied_resources(REMOTE, lambda _url: None)
    assert [a for a in loaded(document) if not a.startswith("data:") and a != "#local"] == []
    assert "Logo" in document and "Cell" in document


def test_the_overlay_survives_the_proxying() -> None:
    links = tracked_stats(EMAIL)
    document = proxied_resources(email_document(EMAIL, "html", links), proxy)
    for link in links:
        assert f'id="cm-{link.position}"' in document
        assert f'[href="#cm-{link.position}"]::after{{content:"{link.label}"}}' in document


@pytest.mark.parametrize("path", corpus_params("email", "amp"))
def test_real_emails_load_nothing_remote(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    part = "amp" if path.parent.name == "amp" else "html"
    links = tracked_stats(text, part)
    document = proxied_resources(email_document(text, part, links), proxy)
    for address in loaded(document):
        assert address.startswith((PROXIED, "data:", "#")), address
    for link in links:
        assert f'id="cm-{link.position}"' in document
