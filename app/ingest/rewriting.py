"""Turning a sender's email part into a template where only the tracked URLs change.

Two readers look at the same source text:

* BeautifulSoup (with lxml) builds the catalog: which links exist, what they say, which
  attributes they carry. It is the reference for "what is a link".
* A small scanner over the raw text finds where each ``href`` value sits, character for
  character, because the output must be the sender's bytes with nothing but those values
  replaced. Re-serializing a parsed tree would reorder attributes, re-quote values and
  mangle merge tags such as ``<%...%>``.

The two are aligned by (tag name, decoded ``href``) in document order. A catalog link the
scanner cannot account for is reported as skipped (``unlocatable``) and left untouched, so a
disagreement between the two readers can cost a tracked link but never corrupts the email.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from app.ingest.links import (
    CONDITIONAL,
    SKIP_REASONS,
    FoundLink,
    LinkRules,
    Verdict,
    base_url,
    catalog,
    classify,
    clean_url,
    decode_attribute,
    parse_html,
)
from app.vocabulary import PARTS, Part

__all__ = [
    "HONEYPOT_AFTER",
    "HONEYPOT_BEFORE",
    "SKIP_REASONS",
    "CompiledPart",
    "Link",
    "LinkRules",
    "NotHTMLError",
    "ScanResult",
    "check_html",
    "decode_html",
    "scan",
]


@dataclass(frozen=True)
class Link:
    """One clickable place in a part, as the sender will see it in reports."""

    position: int  # 0-based placement index in document order within the part
    kind: str  # "a" | "area" | "vml"
    href: str  # the href as written in the source (raw attribute text)
    destination: str | None  # absolute URL when there is a sensible one
    text: str
    tracked: bool
    skip_reason: str | None
    occurrences: int  # places in the source carrying this link (2 for a VML button + its <a>)


@dataclass(frozen=True)
class CompiledPart:
    """A part split around its tracked URLs, ready to be filled in once per recipient."""

    chunks: tuple[str, ...]  # literal text; len(chunks) == len(slots) + 1
    slots: tuple[int, ...]  # Link.position whose URL goes between chunks[i] and chunks[i + 1]
    originals: tuple[str, ...] = ()  # the source text each slot replaces
    _parts: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.slots) + 1:
            raise ValueError("a compiled part needs exactly one more chunk than slots")
        if self.originals and len(self.originals) != len(self.slots):
            raise ValueError("a compiled part needs one original per slot")
        parts: list[str] = []
        for chunk in self.chunks[:-1]:
            parts.append(chunk)
            parts.append("")
        parts.append(self.chunks[-1])
        object.__setattr__(self, "_parts", parts)

    def render(self, urls: Sequence[str]) -> str:
        """The part for one recipient; ``urls`` is indexed by ``Link.position``.

        This runs once per recipient and part, so all the work is done in advance. The URLs
        are written into attributes unescaped: they must be URL-safe ASCII (no quotes,
        spaces, ``<``, ``>`` or ``&``).
        """
        parts = self._parts.copy()
        parts[1::2] = [urls[slot] for slot in self.slots]
        return "".join(parts)

    def keeping(self, positions: set[int]) -> CompiledPart:
        """This part with only the slots of ``positions`` left open; every other slot gets
        its source text back, so that link reaches recipients exactly as written."""
        if all(slot in positions for slot in self.slots):
            return self
        chunks = [self.chunks[0]]
        slots: list[int] = []
        originals: list[str] = []
        for i, slot in enumerate(self.slots):
            if slot in positions:
                slots.append(slot)
                originals.append(self.originals[i])
                chunks.append(self.chunks[i + 1])
            else:
                chunks[-1] += self.originals[i] + self.chunks[i + 1]
        return CompiledPart(tuple(chunks), tuple(slots), tuple(originals))

    def inserting(self, offset: int, before: str, slot: int, after: str) -> CompiledPart:
        """This part with ``before``, a new slot and ``after`` added at ``offset`` of the
        source text, which must not fall inside a slot's source text.

        This is how the honeypot link goes in. The new slot has no source text to give
        back, so ``keeping`` must come first."""
        if self.slots and not self.originals:
            raise ValueError("a part compiled without its source text cannot take insertions")
        cursor = 0
        for i, chunk in enumerate(self.chunks):
            if cursor <= offset <= cursor + len(chunk):
                cut = offset - cursor
                return CompiledPart(
                    (
                        *self.chunks[:i],
                        chunk[:cut] + before,
                        after + chunk[cut:],
                        *self.chunks[i + 1 :],
                    ),
                    (*self.slots[:i], slot, *self.slots[i:]),
                    (*self.originals[:i], "", *self.originals[i:]),
                )
            cursor += len(chunk) + (len(self.originals[i]) if i < len(self.slots) else 0)
        raise ValueError(f"offset {offset} is inside a link or past the end of the part")


# The honeypot link (docs/machine-clicks.md), written around its tracked URL. Each client
# hides it its own way: ``display:none`` for browsers and most mail apps, ``mso-hide:all``
# for Outlook on Windows, which ignores ``display:none`` on many elements; zero sizes and
# ``overflow:hidden`` for clients that strip ``display``. It has no text, and
# ``aria-hidden``/``tabindex="-1"`` keep it out of screen readers and keyboard focus. It is
# plain markup rather than a conditional comment, because some clients (Outlook.com) drop
# every conditional comment, and a scanner must still find the link.
HONEYPOT_BEFORE = (
    '<div aria-hidden="true" style="display:none;mso-hide:all;max-height:0;max-width:0;'
    'height:0;width:0;overflow:hidden;font-size:0;line-height:0;opacity:0"><a href="'
)
HONEYPOT_AFTER = (
    '" tabindex="-1" aria-hidden="true" style="display:none;mso-hide:all;font-size:0;'
    'line-height:0;color:transparent;text-decoration:none"></a></div>'
)


@dataclass(frozen=True)
class ScanResult:
    links: tuple[Link, ...]
    compiled: CompiledPart
    # Where a link the sender did not write may go without moving their markup: right
    # after ``<body>`` opens, else after ``</head>``, ``<html>`` or the doctype, else at the
    # start of a fragment. So a scanner walking the links in order meets it first.
    landing: int = 0


class NotHTMLError(ValueError):
    """The uploaded part is not something we can treat as an HTML email."""


_DEFAULT_RULES = LinkRules()


# --- raw scanner -------------------------------------------------------------------------
#
# A subset of the HTML5 tokenizer, enough to find start tags and their attribute value
# spans exactly where a browser (and lxml, whose tokenizer follows HTML5) would.

_SPACE = " \t\n\r\f"
_TAG_NAME = re.compile(r"[^ \t\n\r\f/>]*")
_ATTR_NAME = re.compile(r".[^ \t\n\r\f/>=]*", re.DOTALL)  # a leading "=" is part of it
_UNQUOTED = re.compile(r"[^ \t\n\r\f>]*")
_SPACES = re.compile(r"[ \t\n\r\f]*")
_SPACES_OR_SLASHES = re.compile(r"[ \t\n\r\f/]*")
# Elements whose content is text, not markup: an <a> inside them is not a link.
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
)
_raw_text_end: dict[str, re.Pattern[str]] = {}
# Tags after which something may be added to the body without moving the sender's markup.
_LANDMARKS = frozenset({"body", "head", "html"})


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


@dataclass(frozen=True)
class _RawTag:
    name: str
    in_conditional: bool
    href: _Span | None  # None for a bare ``href`` without a value


def _end_of(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    """Where the run of characters ``pattern`` accepts from ``pos`` stops."""
    match = pattern.match(text, pos, end)
    return match.end() if match else pos


def _parse_tag(text: str, i: int, end: int) -> tuple[str, dict[str, _Span | None], int] | None:
    """Tag name, first-seen attributes and the offset after ``>``; None if cut off by EOF."""
    j = _end_of(_TAG_NAME, text, i, end)
    name = text[i:j].lower()
    attrs: dict[str, _Span | None] = {}
    while True:
        j = _end_of(_SPACES_OR_SLASHES, text, j, end)
        if j >= end:
            return None
        if text[j] == ">":
            return name, attrs, j + 1
        k = _end_of(_ATTR_NAME, text, j, end)
        attr = text[j:k].lower()
        j = _end_of(_SPACES, text, k, end)
        if j >= end:
            return None
        if text[j] != "=":
            attrs.setdefault(attr, None)
            continue
        j = _end_of(_SPACES, text, j + 1, end)
        if j >= end:
            return None
        quote = text[j]
        if quote in "\"'":
            close = text.find(quote, j + 1, end)
            if close < 0:
                return None
            value = _Span(j + 1, close)
            j = close + 1
        else:
            k = _end_of(_UNQUOTED, text, j, end)
            value = _Span(j, k)
            j = k
        # HTML5 keeps the first of duplicated attributes.
        attrs.setdefault(attr, value)


def _is_wanted(name: str, part: Part, in_conditional: bool) -> bool:
    if part == "amp":
        return name == "a"
    return name in ("a", "area") or (in_conditional and name.startswith("v:"))


def _scan_raw(
    text: str,
    start: int,
    end: int,
    part: Part,
    in_conditional: bool,
    out: list[_RawTag],
    marks: dict[str, int] | None = None,
) -> None:
    """Append the wanted tags of ``text[start:end]`` to ``out``; when ``marks`` is given,
    also note where the first ``<body>``, ``</head>``, ``<html>`` and doctype outside
    conditional comments end (the places the honeypot link may go, see ``landing``)."""
    pos = start
    while True:
        lt = text.find("<", pos, end)
        if lt < 0 or lt + 1 >= end:
            return
        nxt = text[lt + 1]
        if text.startswith("<!--", lt, end):
            body = lt + 4
            if text.startswith(">", body, end):
                pos = body + 1
                continue
            if text.startswith("->", body, end):
                pos = body + 2
                continue
            # A comment ends at "-->" or "--!>"; one that never ends runs to the end.
            ends = (text.find("-->", body, end), text.find("--!>", body, end))
            close = min((c for c in ends if c >= 0), default=end)
            conditional = CONDITIONAL.match(text, body, close)
            if conditional and part == "html" and not in_conditional:
                _scan_raw(text, conditional.end(), close, part, True, out)
            pos = close + (3 if text.startswith("-->", close) else 4)
        elif nxt in "!?" or (nxt == "/" and not text[lt + 2 : lt + 3].isalpha()):
            # Doctype, CDATA, processing instruction, <![endif]>, </> and other bogus
            # comments all end at the next ">".
            close = text.find(">", lt + 2, end)
            if close < 0:
                return
            pos = close + 1
            if marks is not None and text[lt + 2 : lt + 9].lower() == "doctype":
                marks.setdefault("!doctype", pos)
        elif nxt == "/" or (nxt.isascii() and nxt.isalpha()):
            closing = nxt == "/"
            parsed = _parse_tag(text, lt + (2 if closing else 1), end)
            if parsed is None:
                return
            name, attrs, pos = parsed
            if marks is not None and not in_conditional and name in _LANDMARKS:
                marks.setdefault(("/" if closing else "") + name, pos)
            if closing:
                continue
            if "href" in attrs and _is_wanted(name, part, in_conditional):
                out.append(_RawTag(name, in_conditional, attrs["href"]))
            if name == "plaintext":
                return
            if name in _RAW_TEXT:
                pattern = _raw_text_end.get(name)
                if pattern is None:
                    pattern = re.compile(r"</" + name + r"[\t\n\r\f />]", re.IGNORECASE)
                    _raw_text_end[name] = pattern
                match = pattern.search(text, pos, end)
                if match is None:
                    return
                pos = match.start()
        else:
            pos = lt + 1


# --- putting it together -----------------------------------------------------------------


def _align(found: list[FoundLink], raw: list[_RawTag], text: str) -> list[_RawTag | None]:
    """For each catalog entry, the raw tag it is (None when it cannot be told for sure)."""
    keys = [(f.in_conditional, f.name, f.value) for f in found]
    raw_keys = [
        (
            r.in_conditional,
            r.name,
            decode_attribute(text[r.href.start : r.href.end]) if r.href else "",
        )
        for r in raw
    ]
    if keys == raw_keys:
        return list(raw)
    located: list[_RawTag | None] = [None] * len(found)
    matcher = SequenceMatcher(None, keys, raw_keys, autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            located[block.a + offset] = raw[block.b + offset]
    return located


def _groups(found: list[FoundLink]) -> list[list[int]]:
    """Catalog indexes per placement: a VML button and the ``<a>`` right after it for the
    other clients are one link to the sender, and must carry the same tracked URL."""
    groups: list[list[int]] = []
    i = 0
    while i < len(found):
        current = found[i]
        following = found[i + 1] if i + 1 < len(found) else None
        if (
            current.kind == "vml"
            and following is not None
            and following.kind == "a"
            and not following.in_conditional
            and current.value is not None
            and following.value is not None
            and clean_url(current.value) == clean_url(following.value)
        ):
            groups.append([i, i + 1])
            i += 2
        else:
            groups.append([i])
            i += 1
    return groups


def scan(text: str, part: Part = "html", rules: LinkRules = _DEFAULT_RULES) -> ScanResult:
    """Find every link of one email part, decide which are tracked, and compile the part."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    soup = parse_html(text)
    found = list(catalog(soup, part, rules))
    base = base_url(soup, part)
    raw: list[_RawTag] = []
    marks: dict[str, int] = {}
    _scan_raw(text, 0, len(text), part, False, raw, marks)
    landing = next((marks[k] for k in ("body", "/head", "html", "!doctype") if k in marks), 0)
    located = _align(found, raw, text)

    links: list[Link] = []
    spans: list[tuple[int, int, int]] = []
    for position, group in enumerate(_groups(found)):
        first = found[group[0]]
        verdict = classify(
            first.value or "",
            rules=rules,
            base=base,
            opted_out=any(found[i].opted_out for i in group),
            amp_bound=any(found[i].amp_bound for i in group),
        )
        if verdict.skip_reason is None and any(located[i] is None for i in group):
            verdict = Verdict(verdict.destination, "unlocatable")
        if verdict.skip_reason is None:
            for i in group:
                tag = located[i]
                if tag is not None and tag.href is not None:
                    spans.append((tag.href.start, tag.href.end, position))
        first_raw = located[group[0]]
        if first_raw is not None:
            href = text[first_raw.href.start : first_raw.href.end] if first_raw.href else ""
        else:
            href = first.value or ""
        links.append(
            Link(
                position=position,
                kind=first.kind,
                href=href,
                destination=verdict.destination,
                text=next((found[i].text for i in group if found[i].text), ""),
                tracked=verdict.skip_reason is None,
                skip_reason=verdict.skip_reason,
                occurrences=len(group),
            )
        )

    spans.sort()
    chunks: list[str] = []
    cursor = 0
    for start, end, _position in spans:
        chunks.append(text[cursor:start])
        cursor = end
    chunks.append(text[cursor:])
    compiled = CompiledPart(
        tuple(chunks),
        tuple(position for _s, _e, position in spans),
        tuple(text[start:end] for start, end, _position in spans),
    )
    return ScanResult(tuple(links), compiled, landing)


# --- input checks ------------------------------------------------------------------------

_META_CHARSET = re.compile(
    rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.IGNORECASE
)
_TAG = re.compile(r"<[A-Za-z!/?]")


def _whatwg_c1(error: UnicodeError) -> tuple[str, int]:
    """Decode the five bytes Python's cp1252 leaves undefined as C1 controls, like browsers."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(b) for b in error.object[error.start : error.end]), error.end


codecs.register_error("clickmap-whatwg-c1", _whatwg_c1)


def _mime_name(codec_name: str) -> str:
    if codec_name.startswith("cp125"):
        return "windows-" + codec_name[2:]
    if codec_name.startswith("iso8859-"):
        return "iso-8859-" + codec_name[len("iso8859-") :]
    return codec_name


def decode_html(data: bytes) -> tuple[str, str]:
    """Decode an uploaded part the way a mail client would pick its encoding.

    Never raises: a byte-order mark wins, then a ``<meta>`` declaration, then UTF-8, and
    finally windows-1252, which maps every byte to some character.
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace"), name
    declared = _META_CHARSET.search(data[:8192])
    candidates: list[str] = []
    if declared is not None:
        try:
            codec = codecs.lookup(declared.group(1).decode("ascii"))
        except LookupError:
            codec = None
        if codec is not None:
            # Browsers read "latin-1" and "ascii" as windows-1252, and ignore a UTF-16
            # declaration in a document that is evidently ASCII-compatible.
            if codec.name in ("latin-1", "iso8859-1", "ascii"):
                candidates.append("cp1252")
            elif codec.name.startswith("utf-16") or codec.name.startswith("utf-32"):
                candidates.append("utf-8")
            else:
                candidates.append(codec.name)
    candidates.append("utf-8")
    for name in candidates:
        try:
            return data.decode(name), _mime_name(name)
        except UnicodeDecodeError:
            continue
    return data.decode("cp1252", errors="clickmap-whatwg-c1"), "windows-1252"


def check_html(text: str) -> None:
    """Refuse input that cannot be an email part, with a message the sender can act on."""
    if not text.strip():
        raise NotHTMLError("The file is empty.")
    if "\x00" in text:
        raise NotHTMLError(
            "The file contains NUL bytes: it looks like a binary file or UTF-16 text "
            "without a byte-order mark, not HTML."
        )
    controls = sum(1 for c in text[:4096] if ord(c) < 32 and c not in "\t\n\r\f")
    if controls > 8:
        raise NotHTMLError("The file contains control characters: it looks like a binary file.")
    if _TAG.search(text) is None:
        raise NotHTMLError("The file has no HTML tags: it looks like plain text, not HTML.")
