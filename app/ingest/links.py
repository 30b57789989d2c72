"""Which links an email part has, where they really lead, and whether we may track them.

Two jobs live here, both independent of the source text's exact bytes (locating and
replacing ``href`` values is ``app.ingest.rewriting``'s job):

* the catalog: every clickable link as BeautifulSoup sees it, with the text a recipient
  sees, including Outlook-only VML buttons hidden in ``<!--[if mso]>`` comments;
* classification: from an ``href`` value, what a mail client would open (the destination)
  and whether a tracking redirect may go in front of it.

The guiding rule is "when in doubt, leave it alone": a link we skip still works exactly as
the sender wrote it, while a link we wrongly rewrite breaks for every recipient.
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.entities import html5 as _HTML5_ENTITIES

from bs4 import BeautifulSoup, Comment, Tag
from bs4.element import NavigableString, PreformattedString

from app.ingest.merge_tags import find_merge_tag
from app.urls import UnsafeDestination, WebAddress, parse_web_address
from app.vocabulary import Part

TEXT_LIMIT = 200

SKIP_REASONS: dict[str, str] = {
    "mailto": "E-mail address link (mailto:); there is no web page to redirect to.",
    "tel": "Phone number link (tel:); there is no web page to redirect to.",
    "sms": "Text message link (sms:); there is no web page to redirect to.",
    "anchor": "Jump to a place inside the email (#...); a redirect would leave the email.",
    "javascript": "Script link (javascript:); mail clients do not run it.",
    "data": "Inline data link (data:); there is no web page to redirect to.",
    "empty": "The link has no address.",
    "relative": "Relative address with no <base href> to resolve it against.",
    "merge_tag": (
        "The address holds a merge tag that your sending platform fills in later; "
        "tracking it now would freeze the tag and break the link."
    ),
    "opt_out": "Tracking was turned off for this link by an attribute on it.",
    "do_not_track": "The link points to a domain on the do-not-track list.",
    "invalid_url": "The address is not a valid web address (for example, it has no host).",
    "unsupported_scheme": "Only http and https links can be tracked.",
    "amp_bound": (
        "The AMP link address is set by amp-bind ([href] or data-amp-bind-href) when the "
        "email is opened."
    ),
    "unlocatable": (
        "The link could not be located exactly in the source text, so it is left untouched "
        "rather than risk changing the wrong place."
    ),
}


@dataclass(frozen=True)
class LinkRules:
    """Per-installation settings that decide which otherwise-trackable links stay untouched."""

    do_not_track: tuple[str, ...] = ()  # domains; each also covers its subdomains
    opt_out_attribute: str = "data-clickmap-notrack"

    def __post_init__(self) -> None:
        object.__setattr__(self, "do_not_track", ascii_domains(self.do_not_track))


# --- attribute values -------------------------------------------------------------------

_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_LONGEST_ENTITY = max(len(name) for name in _HTML5_ENTITIES)


def _numeric_charref(body: str) -> str:
    """A numeric reference as HTML5 decodes it: U+FFFD for zero, surrogates and values past
    U+10FFFF, windows-1252 for 0x80-0x9F, and every other code point kept, controls and
    noncharacters included (Python's ``html.unescape`` drops those, lxml keeps them)."""
    digits = body[1:].rstrip(";")
    number = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    if 0x80 <= number <= 0x9F:
        return html.unescape(f"&#{number};")  # the windows-1252 table
    return chr(number)


def _replace_charref(match: re.Match[str]) -> str:
    body = match.group(1)
    if body.startswith("#"):
        return _numeric_charref(body)
    # Named references: the longest known name that prefixes the text wins. Inside
    # attributes a name without ``;`` followed by ``=`` or an alphanumeric is left alone,
    # so query strings like ``?a=1&copy=2`` or ``&notify=1`` survive as written.
    source = match.string
    for length in range(min(len(body), _LONGEST_ENTITY), 0, -1):
        name = body[:length]
        if name in _HTML5_ENTITIES:
            if not name.endswith(";"):
                after = source[match.start(1) + length : match.start(1) + length + 1]
                if after == "=" or (after.isascii() and after.isalnum()):
                    return match.group(0)
            return _HTML5_ENTITIES[name] + body[length:]
    return match.group(0)


def decode_attribute(raw: str) -> str:
    """The value an HTML5 parser gives an attribute written as ``raw`` in the source.

    ``html.unescape`` is not enough: it decodes ``&copy=2`` inside query strings, which
    browsers deliberately do not do in attribute values.
    """
    value = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    if "&" not in value:
        return value
    return _CHARREF.sub(_replace_charref, value)


_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


def clean_url(value: str) -> str:
    """Trim a URL the way browsers do before following it.

    Leading and trailing control characters and spaces go, and so do tabs and line breaks
    anywhere (templates often wrap long ``href`` values over several lines).
    """
    stripped = value.strip(_C0_AND_SPACE)
    return stripped.replace("\t", "").replace("\n", "").replace("\r", "")


# --- merge tags --------------------------------------------------------------------------


def skip_message(reason: str | None, href: str) -> str:
    """What the sender reads about a skipped link; a merge tag is named by its syntax, found
    again in the ``href`` as written (so the catalog stores only the reason's code)."""
    message = SKIP_REASONS.get(reason or "", "")
    if reason == "merge_tag":
        syntax = find_merge_tag(clean_url(decode_attribute(href)))
        if syntax is not None:
            message = message.replace("a merge tag", f"a merge tag ({syntax.name})", 1)
    return message


def has_merge_tag(value: str) -> bool:
    """Whether the sender's platform will still rewrite this value after us."""
    return find_merge_tag(value) is not None


# --- classification ----------------------------------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_SKIPPED_SCHEMES = {"mailto", "tel", "sms", "javascript", "data"}


@dataclass(frozen=True)
class Verdict:
    """Where a link leads, and whether it is tracked (``skip_reason`` is None when it is).

    ``destination`` is the parser's serialization of the address (``app.urls``): what the
    browser would request, shown in reports and used as the redirect's ``Location``.
    """

    destination: str | None
    skip_reason: str | None


def web_address(value: str, base: str | None = None) -> WebAddress | None:
    """The http(s) address a cleaned ``href`` opens, or None when a browser would not open
    one from an email.

    A scheme-relative ``//host/path`` is read as https: webmail pages are https, and a
    desktop client that guesses http is redirected by nearly every site. Without a
    ``<base href>``, a relative address leads nowhere in an email.
    """
    if value.startswith("//"):
        value = "https:" + value
    elif not _SCHEME.match(value) and (base is None or not value or value.startswith("#")):
        return None
    try:
        return parse_web_address(value, base)
    except UnsafeDestination:
        return None


def _in_domains(hostname: str, domains: tuple[str, ...]) -> bool:
    host = hostname.rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def ascii_domains(domains: Iterable[str]) -> tuple[str, ...]:
    """Do-not-track domains as the parser writes hosts (lower-case, IDNA per UTS #46), so
    ``bücher.de`` in the settings matches ``xn--bcher-kva.de`` in a link."""
    found: list[str] = []
    for domain in domains:
        domain = domain.strip().strip(".")
        if not domain:
            continue
        try:
            found.append(parse_web_address(f"http://{domain}/").hostname)
        except UnsafeDestination:
            found.append(domain.lower())  # never matches a parsed host, which is harmless
    return tuple(found)


def classify(
    value: str,
    *,
    rules: LinkRules,
    base: str | None = None,
    opted_out: bool = False,
    amp_bound: bool = False,
) -> Verdict:
    """Decide the fate of one link from its decoded ``href`` value.

    The order matters only for the reason shown to the sender: the most specific,
    least surprising explanation wins (a ``mailto:{{email}}`` link is reported as an e-mail
    link, not as a merge tag).
    """
    cleaned = clean_url(value)
    address = web_address(cleaned, base)
    destination = address.href if address is not None else None
    if amp_bound:
        return Verdict(destination, "amp_bound")
    if not cleaned:
        return Verdict(None, "empty")
    if cleaned.startswith("#"):
        return Verdict(None, "anchor")
    scheme_match = _SCHEME.match(cleaned)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    if scheme in _SKIPPED_SCHEMES:
        return Verdict(None, scheme)
    if has_merge_tag(cleaned):
        return Verdict(None, "merge_tag")
    if scheme is not None and scheme not in ("http", "https"):
        return Verdict(None, "unsupported_scheme")
    if scheme is None and not cleaned.startswith("//") and base is None:
        return Verdict(None, "relative")
    if address is None:
        return Verdict(None, "invalid_url")
    if opted_out:
        return Verdict(destination, "opt_out")
    if _in_domains(address.hostname, rules.do_not_track):
        return Verdict(destination, "do_not_track")
    return Verdict(destination, None)


# Outlook's downlevel-hidden conditional comment: <!--[if mso]> ... <![endif]-->
CONDITIONAL = re.compile(r"\[if\b[^\]]*\]>")


# --- catalog -----------------------------------------------------------------------------
#
# BeautifulSoup hands a conditional comment over as one string, so its content is parsed
# on its own to find the VML shapes (and any plain links) Outlook will show.

_BREAKING = frozenset(
    {"br", "p", "div", "td", "th", "tr", "li", "table", "center", "blockquote", "hr"}
    | {f"h{n}" for n in range(1, 7)}
)


@dataclass(frozen=True)
class FoundLink:
    """One link element as the parser saw it, before it is grouped into placements."""

    kind: str
    name: str
    in_conditional: bool
    value: str | None  # decoded href; None for an AMP link that only has [href]
    text: str
    opted_out: bool
    amp_bound: bool


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    return value if isinstance(value, str) else ""


def _collapse(value: str) -> str:
    return " ".join(value.split())[:TEXT_LIMIT]


def _visible_text(tag: Tag) -> str:
    pieces: list[str] = []
    for node in tag.descendants:
        if isinstance(node, Tag):
            if node.name in _BREAKING:
                pieces.append(" ")
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            parent = node.parent
            if parent is None or parent.name not in ("style", "script"):
                pieces.append(str(node))
    return _collapse("".join(pieces))


def _link_text(tag: Tag, kind: str) -> str:
    """What the recipient sees of a link, so reports can name it."""
    if kind == "area":
        return _collapse(_attr(tag, "alt") or _attr(tag, "title") or _attr(tag, "aria-label"))
    text = _visible_text(tag)
    if text:
        return text
    for img in tag.find_all("img"):
        alt = _collapse(_attr(img, "alt"))
        if alt:
            return alt
    return _collapse(_attr(tag, "title") or _attr(tag, "aria-label"))


def _opted_out(tag: Tag, rules: LinkRules) -> bool:
    return (
        rules.opt_out_attribute.lower() in tag.attrs
        or _attr(tag, "clicktracking").strip().lower() == "off"
        or "mc:disable-tracking" in tag.attrs
    )


def parse_html(text: str) -> BeautifulSoup:
    """Parse with lxml, whose tokenizer follows HTML5 like the mail clients' engines do."""
    with warnings.catch_warnings():
        # Short or odd inputs make BeautifulSoup warn ("looks like a URL", "looks like
        # XML"); we parse email parts on purpose, whatever they look like.
        warnings.simplefilter("ignore")
        return BeautifulSoup(text, "lxml", multi_valued_attributes=None)


def _found(tag: Tag, part: Part, rules: LinkRules, in_conditional: bool) -> FoundLink | None:
    name = tag.name
    href = tag.get("href")
    # ``data-amp-bind-href`` is the same binding as ``[href]``, in attribute-name syntax.
    amp_bound = part == "amp" and ("[href]" in tag.attrs or "data-amp-bind-href" in tag.attrs)
    if href is None and not amp_bound:
        return None
    if name.startswith("v:") and in_conditional and part == "html":
        kind = "vml"
    elif name == "a" or (name == "area" and part == "html"):
        kind = name
    else:
        return None
    return FoundLink(
        kind=kind,
        name=name,
        in_conditional=in_conditional,
        value=href if isinstance(href, str) else None,
        text=_link_text(tag, kind),
        opted_out=_opted_out(tag, rules),
        amp_bound=amp_bound,
    )


def catalog(soup: BeautifulSoup, part: Part, rules: LinkRules) -> Iterator[FoundLink]:
    """Link elements in document order, those inside Outlook-only comments in their place.

    The AMP part has no image maps or Outlook markup: only ``<a>`` counts there.
    """
    for found, _tag in link_elements(soup, part, rules):
        yield found


def link_elements(
    soup: BeautifulSoup, part: Part, rules: LinkRules
) -> Iterator[tuple[FoundLink, Tag]]:
    """``catalog`` with each link's element. An element inside an Outlook-only comment
    belongs to a tree parsed from the comment's text, not to ``soup`` (a browser sees only
    a comment there)."""
    for node in soup.descendants:
        if isinstance(node, Tag):
            found = _found(node, part, rules, in_conditional=False)
            if found is not None:
                yield found, node
        elif isinstance(node, Comment) and part == "html":
            conditional = CONDITIONAL.match(node)
            if conditional is None:
                continue
            for tag in parse_html(node[conditional.end() :]).find_all(True):
                found = _found(tag, part, rules, in_conditional=True)
                if found is not None:
                    yield found, tag


def base_url(soup: BeautifulSoup, part: Part) -> str | None:
    """The document's ``<base href>``, which makes relative links absolute (first one wins)."""
    if part != "html":
        return None
    base = soup.find("base", href=True)
    if not isinstance(base, Tag):
        return None
    address = web_address(clean_url(_attr(base, "href")))
    return address.href if address is not None else None
