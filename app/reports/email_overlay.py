"""The email as sent, with the heatmap on top: for the dashboard's sandboxed frame and the PDF.

``email_document`` takes an email part and the figures of a built view
(``app.reports.heatmap.build_view``) and returns a self-contained HTML document: every tracked link
points at ``#cm-<position>`` and is colored by its tier, with its number on a badge, all in
one appended ``<style>``. The sender's markup is otherwise kept byte for byte, and no script
is added. Pure domain code: no Flask.

For the dashboard's frame, ``proxied_resources`` then takes every remote address out of the
document: the marketer's browser must load nothing from wherever the sender pointed (their
intranet, a tracking pixel, a host that notes who looked). Images and fonts go through an
address on our own origin that the caller supplies (the dashboard's image proxy); whatever
fetches, connects or navigates by itself and is not an image (stylesheet and prefetch links,
``@import``, ``<meta http-equiv=refresh>``, frames, plugins, media) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bs4 import BeautifulSoup, Tag
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.ingest.links import LinkRules
from app.ingest.rewriting import scan
from app.models import Variant
from app.reports.heatmap import TIER_COLORS, TIERS, HeatmapView, LinkStat, format_value
from app.urls import UnsafeDestination, parse_web_address
from app.vocabulary import PARTS

# Find every link an installation could have tracked: no do-not-track domains, and an
# opt-out attribute name no tag can carry (names never contain spaces). Which of them are
# colored is decided by the stored placements passed in, not by this scan.
_EVERY_LINK = LinkRules(do_not_track=(), opt_out_attribute=" ")
_HEAD_OR_BODY = re.compile(
    r"<!--.*?-->|<(script|style|title|textarea)\b[^>]*>.*?</\1\s*>|(</head\s*>|<body\b)",
    re.IGNORECASE | re.DOTALL,
)
_DOCTYPE = re.compile(r"(?:\s|<!--.*?-->)*<!doctype[^>]*>", re.IGNORECASE | re.DOTALL)
_AMP_RUNTIME = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?https://cdn\.ampproject\.org/[^>]*>\s*</script\s*>",
    re.IGNORECASE,
)
_AMP_IMAGE = re.compile(r"<amp-(?:img|anim)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.IGNORECASE)
_AMP_IMAGE_END = re.compile(r"</amp-(?:img|anim)\s*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")
_KEPT_IMAGE_ATTRIBUTES = ("src", "srcset", "alt", "width", "height", "class")


def _splice(text: str, part: str, positions: set[int]) -> str:
    """The part with each wanted link's href value swapped for ``#cm-<position>`` and an
    ``id`` added right after it; every other byte is the sender's."""
    compiled = scan(text, part, _EVERY_LINK).compiled  # type: ignore[arg-type]
    chunks = list(compiled.chunks)
    values: list[str] = []
    cursor = 0
    for i in range(len(compiled.slots)):
        start = cursor + len(compiled.chunks[i])
        # The next chunk starts with the character that ended the value (its quote, or a
        # space or ">" when unquoted), which the value itself cannot contain.
        end = text.find(compiled.chunks[i + 1], start)
        values.append(text[start:end])
        cursor = end
    for i, position in enumerate(compiled.slots):
        if position not in positions:
            continue
        values[i] = f"#cm-{position}"
        quote, following = chunks[i][-1:], chunks[i + 1]
        injected = f' id="cm-{position}"'
        if quote in ("'", '"') and following.startswith(quote):
            chunks[i + 1] = quote + injected + following[1:]
        else:
            chunks[i + 1] = injected + following
    pieces = [chunks[0]]
    for value, chunk in zip(values, chunks[1:], strict=True):
        pieces += [value, chunk]
    return "".join(pieces)


def _static_image(match: re.Match[str]) -> str:
    kept = [
        m.group(0)
        for m in _ATTRIBUTE.finditer(match.group(1))
        if m.group(1).lower() in _KEPT_IMAGE_ATTRIBUTES
    ]
    return "<img " + " ".join([*kept, "data-cm-amp"]) + ">"


def _static_amp(document: str) -> str:
    """AMP without its runtime: images as plain ``<img>``, runtime scripts gone."""
    document = _AMP_RUNTIME.sub("", document)
    document = _AMP_IMAGE.sub(_static_image, document)
    return _AMP_IMAGE_END.sub("", document)


def _css_string(value: str) -> str:
    return (
        '"' + "".join(c if c.isalnum() or c in " ,.%/-" else f"\\{ord(c):x} " for c in value) + '"'
    )


def _overlay_css(part: str, links: Sequence[LinkStat], highlight: int | None) -> str:
    def sel(position: int, suffix: str = "") -> str:
        return f'[href="#cm-{position}"]{suffix}'

    rules = ["/* Clickmap heatmap overlay */"]
    if links:
        every = ",".join(sel(link.position) for link in links)
        badges = ",".join(sel(link.position, "::after") for link in links)
        rules.append(
            f"{every}{{position:relative!important;outline-offset:1px;scroll-margin:48px}}"
        )
        rules.append(
            f"{badges}{{position:absolute;top:-9px;right:-9px;z-index:2147483647;"
            "padding:1px 5px;border-radius:9px;color:#fff;font:700 11px/1.35 Arial,Helvetica,"
            "sans-serif;white-space:nowrap;text-decoration:none;pointer-events:none;"
            "box-shadow:0 0 0 1px #fff}"
        )
    for tier in TIERS:
        tiered = [link.position for link in links if link.tier == tier]
        if not tiered:
            continue
        color = TIER_COLORS[tier]
        red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        rules.append(
            ",".join(sel(p) for p in tiered) + f"{{outline:3px solid {color}!important;"
            f"background-color:rgba({red},{green},{blue},.14)!important}}"
        )
        rules.append(",".join(sel(p, "::after") for p in tiered) + f"{{background:{color}}}")
    for link in links:
        label = link.label or format_value("total", link.value)
        rules.append(f"{sel(link.position, '::after')}{{content:{_css_string(label)}}}")
    strong = [sel(link.position, ":target") for link in links]
    if highlight is not None:
        strong.append(sel(highlight))
    if strong and links:
        rules.append(
            ",".join(strong) + "{outline:5px solid #000!important;outline-offset:3px;"
            "box-shadow:0 0 0 8px rgba(255,214,0,.85)!important;"
            "animation:cm-pulse 1s ease-in-out 3}"
        )
        rules.append(
            "@keyframes cm-pulse{50%{outline-offset:8px;box-shadow:0 0 0 14px rgba(255,214,0,.35)}}"
        )
        rules.append("@media (prefers-reduced-motion:reduce){*{animation:none!important}}")
    if part == "amp":
        # The AMP boilerplate hides the body until the runtime starts, which it never will.
        rules.append("body{visibility:visible!important;animation:none!important}")
        rules.append("img[data-cm-amp]{max-width:100%;height:auto}")
        rules.append("[fallback],[placeholder]{display:none!important}")
    return '<style id="clickmap-overlay">\n' + "\n".join(rules) + "\n</style>\n"


def _style_offset(document: str) -> int:
    """Where the overlay goes: before ``</head>``, else before ``<body``, else after the
    doctype (before it would switch the email to quirks mode)."""
    for match in _HEAD_OR_BODY.finditer(document):
        if match.group(2):
            return match.start()
    doctype = _DOCTYPE.match(document)
    return doctype.end() if doctype else 0


def email_document(
    variant_part_text: str,
    part: str,
    links: Sequence[LinkStat],
    *,
    highlight: int | None = None,
) -> str:
    """The email as sent, for display in a sandboxed frame, with the heatmap on top.

    Each link in ``links`` points at ``#cm-<position>`` and carries ``id="cm-<position>"``,
    so a pane row linking to that fragment makes it ``:target`` and pulses it (as does
    ``highlight``). Colors and number badges are one appended ``<style>``; no script is
    added, and the sender's own markup is kept byte for byte (the frame's sandbox and CSP
    stop its scripts). Links not in ``links`` keep their real address.
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    document = _splice(variant_part_text, part, {link.position for link in links})
    if part == "amp":
        document = _static_amp(document)
    offset = _style_offset(document)
    return document[:offset] + _overlay_css(part, links, highlight) + document[offset:]


def view_document(
    session: Session,
    view: HeatmapView,
    *,
    highlight: int | None = None,
    resources: ResourceMap | None = None,
) -> str:
    """``email_document`` for a built view: loads the chosen variant's part. With
    ``resources``, remote addresses are then mapped or dropped (``proxied_resources``)."""
    column = Variant.amp if view.params.part == "amp" else Variant.html
    text = session.scalar(
        select(column).where(Variant.campaign_id == view.campaign_id, Variant.name == view.variant)
    )
    if text is None:
        raise NotFound(
            "variant_not_found", f"variant {view.variant!r} has no {view.params.part} part"
        )
    document = email_document(text, view.params.part, view.overlay, highlight=highlight)
    return document if resources is None else proxied_resources(document, resources)


# -- remote resources ---------------------------------------------------------------------------

# Maps an absolute http(s) address to the one the frame may load instead (on our origin), or
# None to drop it.
ResourceMap = Callable[[str], "str | None"]

# Attributes holding one address a browser loads by itself, and candidate lists.
_SINGLE_URL_ATTRIBUTES = frozenset({"src", "background", "poster", "lowsrc", "dynsrc"})
_SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})
# Elements whose ``src`` is never an image: frames, plugins, scripts, media. Dropped.
_NEVER_IMAGES = frozenset(
    {"iframe", "frame", "embed", "object", "applet", "script", "audio", "video", "track"}
)
# Attributes that load, embed or report somewhere without being an image. Dropped.
_DROPPED_ATTRIBUTES = frozenset({"codebase", "archive", "manifest", "ping", "formaction"})
_SVG_IMAGES = frozenset({"image", "feimage"})
_LINK_ATTRIBUTES = frozenset({"href", "xlink:href"})
# ``<meta http-equiv>`` values that only describe the document; any other (refresh above all,
# which navigates the frame) is dropped.
_KEPT_META = frozenset({"content-type", "content-language", "x-ua-compatible"})

_CSS_URL = re.compile(
    r"""url\(\s*(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|((?:[^)"'\\\s]|"""
    r"""\\[0-9a-fA-F]{1,6}[ \t\n\r\f]?|\\.)*))\s*\)""",
    re.IGNORECASE | re.DOTALL,
)
_CSS_IMPORT = re.compile(
    r"""@import\s*(?:url\([^)]*\)|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')[^;{}]*;?""",
    re.IGNORECASE | re.DOTALL,
)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.DOTALL)
_SRCSET_SPACE = " \t\n\r\f"


def _css_unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        return match.group(2)

    return _CSS_ESCAPE.sub(one, value)


def _srcset_candidates(value: str) -> list[tuple[str, str]]:
    """(address, descriptors) of each ``srcset`` candidate, split as browsers split them."""
    found: list[tuple[str, str]] = []
    i, end = 0, len(value)
    while True:
        while i < end and (value[i] in _SRCSET_SPACE or value[i] == ","):
            i += 1
        if i >= end:
            return found
        start = i
        while i < end and value[i] not in _SRCSET_SPACE:
            i += 1
        url = value[start:i]
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = i
            depth = 0
            while i < end and (value[i] != "," or depth):
                depth += {"(": 1, ")": -1}.get(value[i], 0)
                i += 1
            descriptors = " ".join(value[start:i].split())
        if url:
            found.append((url, descriptors))


class _Resources:
    """Every address of one document, resolved as the browser would and then mapped."""

    def __init__(self, resource: ResourceMap, base: str | None) -> None:
        self.resource = resource
        self.base = base

    def address(self, value: str) -> str | None:
        """What goes in place of ``value``: a ``data:`` URI stays (it loads nothing), an
        http(s) address goes through the map, anything else (relative without a base, which
        the email never meant on our origin; ``cid:``, ``file:``...) is dropped."""
        value = value.strip()
        if value[:5].lower() == "data:":
            return value
        if self.base is None and value.startswith("//"):
            value = "https:" + value  # as the email's readers would
        try:
            absolute = parse_web_address(value, base=self.base).href
        except UnsafeDestination:
            return None
        return self.resource(absolute)

    def srcset(self, value: str) -> str:
        kept = []
        for url, descriptors in _srcset_candidates(value):
            mapped = self.address(url)
            if mapped is not None:
                kept.append(f"{mapped} {descriptors}".rstrip())
        return ", ".join(kept)

    def css(self, text: str) -> str:
        """CSS without ``@import`` (stylesheets are not proxied) and with every ``url()``
        mapped (``none`` where dropped). What this misses, the frame's CSP still blocks."""

        def url(match: re.Match[str]) -> str:
            raw = next((g for g in match.groups() if g is not None), "")
            mapped = self.address(_css_unescape(raw))
            return f'url("{mapped}")' if mapped is not None and '"' not in mapped else "none"

        return _CSS_URL.sub(url, _CSS_IMPORT.sub("", text))


def _base_address(soup: BeautifulSoup) -> str | None:
    """The document's base URL as a browser takes it: the first ``<base href>``, if it is an
    absolute http(s) address."""
    base = soup.find("base", href=True)
    if not isinstance(base, Tag):
        return None
    try:
        return parse_web_address(str(base["href"])).href
    except UnsafeDestination:
        return None


def _map_attributes(tag: Tag, resources: _Resources) -> None:
    name = tag.name.lower()
    for attribute in list(tag.attrs):
        key = attribute.lower()
        raw = tag.attrs[attribute]
        value = " ".join(raw) if isinstance(raw, list) else str(raw)
        mapped: str | None
        if key == "style":
            mapped = resources.css(value)
        elif key in _SINGLE_URL_ATTRIBUTES:
            never = key == "src" and name in _NEVER_IMAGES
            mapped = None if never else resources.address(value)
        elif key in _SRCSET_ATTRIBUTES:
            mapped = resources.srcset(value) or None
        elif key in _DROPPED_ATTRIBUTES or (key == "data" and name in _NEVER_IMAGES):
            mapped = None
        elif key in _LINK_ATTRIBUTES and name in _SVG_IMAGES:
            mapped = resources.address(value)
        elif key in _LINK_ATTRIBUTES and name == "use":
            mapped = value if value.strip().startswith("#") else None  # external SVG
        else:
            continue
        if mapped is None:
            del tag.attrs[attribute]
        else:
            tag.attrs[attribute] = mapped


def proxied_resources(document: str, resource: ResourceMap) -> str:
    """``document`` with every address the browser would load by itself mapped by
    ``resource`` (or dropped), for display in the dashboard's frame.

    Images (``src``, ``srcset``, ``background``, ``poster``, SVG ``<image>``) and CSS
    ``url()`` (inline styles and ``<style>``: backgrounds, fonts) are mapped, resolved
    against the email's ``<base href>`` first; ``<base>`` itself goes, so the overlay's
    ``#cm-`` anchors stay in the frame. Every ``<link>`` goes (stylesheets, prefetch,
    preload, preconnect, dns-prefetch, icons: nothing in an email needs them to be read),
    as do ``@import``, ``<meta http-equiv>`` other than the content type (``refresh``
    navigates), ``ping`` and the sources of frames, plugins, scripts and media.

    Unlike ``email_document``, this writes the document back from the parsed tree
    (BeautifulSoup with lxml): what the browser is given is then exactly what was inspected,
    with no second reading of the sender's bytes by a different parser. The frame's CSP
    (``img-src 'self' data:``, no other origin anywhere) blocks whatever this might miss;
    what CSP does not govern (prefetch hints, refresh) is what this removes by element.
    """
    soup = BeautifulSoup(document, "lxml")
    resources = _Resources(resource, _base_address(soup))
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        name = tag.name.lower()
        if name in ("link", "base"):
            tag.decompose()
            continue
        equiv = tag.get("http-equiv") if name == "meta" else None
        if equiv is not None and str(equiv).strip().lower() not in _KEPT_META:
            tag.decompose()
            continue
        if name == "style":
            css = resources.css(tag.get_text())
            tag.clear()
            tag.append(css)
        _map_attributes(tag, resources)
    return str(soup)
