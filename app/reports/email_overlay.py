"""The email as sent, with the heatmap on top: for the dashboard's sandboxed frame and the PDF.

``email_document`` takes an email part and the figures of a built view
(``app.reports.heatmap.build_view``) and returns a self-contained HTML document: every tracked link
points at ``#cm-<position>`` and is colored by its tier, with its number on a badge, all in
one appended ``<style>``. The sender's markup is otherwise kept byte for byte, and no script
is added. Pure domain code: no Flask.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.ingest.links import LinkRules
from app.ingest.rewriting import scan
from app.models import Variant
from app.reports.heatmap import TIER_COLORS, TIERS, HeatmapView, LinkStat, format_value
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


def view_document(session: Session, view: HeatmapView, *, highlight: int | None = None) -> str:
    """``email_document`` for a built view: loads the chosen variant's part."""
    column = Variant.amp if view.params.part == "amp" else Variant.html
    text = session.scalar(
        select(column).where(Variant.campaign_id == view.campaign_id, Variant.name == view.variant)
    )
    if text is None:
        raise NotFound(
            "variant_not_found", f"variant {view.variant!r} has no {view.params.part} part"
        )
    return email_document(text, view.params.part, view.links, highlight=highlight)
