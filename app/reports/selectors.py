"""A CSS selector for each placement: where the link sits in the email as a browser builds it.

Positions name placements inside Clickmap; a selector lets anything that renders the sent
HTML (an overlay, an export, another tool) find the same link element without our scanner.
``placement_selectors`` gives one per placement of a part, keyed by position exactly as
``app.ingest.rewriting.scan`` numbers them:

* ``#id`` when the link carries an id no other element of the document shares. Uniqueness is
  judged ignoring ASCII case, because in quirks mode (emails without a standards doctype
  are common) browsers match ``#Id`` against ``id="id"`` too.
* otherwise a path of child steps from ``body``: ``name:nth-of-type(n)`` when the parent has
  several children of that name, the bare name when it has one, e.g.
  ``body > table > tbody > tr:nth-of-type(2) > td > a``.
* None where no selector can reach the link: a VML button or an ``<a>`` inside an Outlook
  conditional comment (``<!--[if mso]>``; to every other engine that is a comment, not an
  element) and a link inside a ``<template>`` (AMP's list templates: a browser keeps
  template content out of the document). A VML button and the ``<a>`` after it are one
  placement, whose selector is the ``<a>``'s.

**Which tree.** The elements are those of ``parse_html`` (lxml), the parse that decided which
links exist, so positions line up by construction. But lxml's tree is not quite a browser's
where emails often go: a browser puts rows written straight in a ``<table>`` into a
``<tbody>`` it creates (and bare cells into a ``<tr>``), ends the head at the first element
that does not belong there, and keeps a table inside the ``<a>`` that wraps it, where lxml
closes the ``<a>``. A path written on lxml's tree would miss in every browser, so
``browser_tree`` applies those differences to the parse and paths are written on it. Each
selector names one element by construction (a unique id, or one numbered child per step);
the tests select every corpus email's selectors in that tree and in Chromium.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import pairwise

import soupsieve
from bs4 import BeautifulSoup, Tag
from bs4.element import PageElement

from app.ingest.links import FoundLink, LinkRules, link_elements, parse_html
from app.ingest.rewriting import Link, scan
from app.vocabulary import Part

_DEFAULT_RULES = LinkRules()
_ROWS = frozenset({"tr", "td", "th"})
_CELLS = frozenset({"td", "th"})
_SECTIONS = ["tbody", "thead", "tfoot"]
# What a browser's parser keeps in the head; any other element starts the body.
_HEAD = frozenset(
    {"base", "basefont", "bgsound", "link", "meta", "noframes", "noscript", "script", "style"}
    | {"template", "title"}
)
# Content a browser keeps out of the document tree, out of any selector's reach.
_UNREACHABLE = frozenset({"template"})


# --- the tree a browser builds -------------------------------------------------------------


def _runs(parent: Tag, names: frozenset[str]) -> list[list[PageElement]]:
    """Runs of consecutive children of ``parent`` that are elements named in ``names``, with
    the text and comments between them; text around a run stays outside it."""
    runs: list[list[PageElement]] = []
    current: list[PageElement] = []
    for node in list(parent.children):
        if isinstance(node, Tag):
            if node.name in names:
                current.append(node)
                continue
            if current:
                runs.append(current)
            current = []
        elif current:
            current.append(node)
    if current:
        runs.append(current)
    return [_trimmed(run) for run in runs]


def _trimmed(run: list[PageElement]) -> list[PageElement]:
    while run and not isinstance(run[-1], Tag):
        run.pop()
    return run


def _wrap(soup: BeautifulSoup, run: Sequence[PageElement], name: str) -> Tag:
    wrapper = soup.new_tag(name)
    run[0].insert_before(wrapper)
    for node in run:
        wrapper.append(node.extract())
    return wrapper


def _leave_head(soup: BeautifulSoup) -> None:
    """Move what a browser's parser puts in the body out of lxml's ``head``: a browser ends
    the head at the first element that does not belong there (a template written without
    ``<body>``), lxml keeps going."""
    head = soup.find("head")
    if not isinstance(head, Tag):
        return
    first = next((n for n in head.children if isinstance(n, Tag) and n.name not in _HEAD), None)
    if first is None:
        return
    body = soup.find("body")
    if not isinstance(body, Tag):
        body = soup.new_tag("body")
        head.insert_after(body)
    for offset, node in enumerate([first, *first.next_siblings]):
        body.insert(offset, node.extract())


def _next_element(node: Tag) -> Tag | None:
    """The element right after ``node``, with only whitespace between; else None."""
    for sibling in node.next_siblings:
        if isinstance(sibling, Tag):
            return sibling
        if str(sibling).strip():
            return None
    return None


def _reopen_links(soup: BeautifulSoup) -> None:
    """Put back a table in the link that wraps it (a bulletproof button): lxml closes an
    open ``<a>`` when a ``<table>`` starts, leaving an empty link right before the table,
    where a browser keeps the table inside the link. Only links count: an empty named
    anchor (``<a name="top"></a>``) before a table is common, and was written empty. A link
    with content before the table it wraps cannot be told from one closed before a table
    in lxml's tree, and is left as lxml has it."""
    for link in soup.find_all("a", href=True):
        if link.get_text(strip=True) or link.find(True) is not None:
            continue
        table = _next_element(link)
        if table is not None and table.name == "table":
            link.append(table.extract())


def browser_tree(soup: BeautifulSoup) -> BeautifulSoup:
    """``soup`` (from ``parse_html``) reshaped where lxml's tree and a browser's differ in
    ways emails meet: the head ends where a browser ends it, a link keeps the table it
    wraps, a ``tbody`` goes around rows and cells written straight in a ``table`` and a
    ``tr`` around cells written straight in a table section. Changed in place (element
    objects stay the same) and returned."""
    _leave_head(soup)
    _reopen_links(soup)
    for table in soup.find_all("table"):
        for run in _runs(table, _ROWS):
            _wrap(soup, run, "tbody")
    for section in soup.find_all(_SECTIONS):
        for cells in _runs(section, _CELLS):
            _wrap(soup, cells, "tr")
    return soup


# --- selectors -----------------------------------------------------------------------------


def _ident(name: str) -> str:
    """``name`` written as a CSS identifier (``o:p`` becomes ``o\\:p``)."""
    return str(soupsieve.escape(name))


def _id_counts(soup: BeautifulSoup) -> Counter[str]:
    """How many elements carry each id, ignoring ASCII case as quirks mode does."""
    return Counter(str(tag["id"]).lower() for tag in soup.find_all(id=True))


def _unique_id(tag: Tag, ids: Counter[str]) -> str | None:
    value = tag.get("id")
    if not isinstance(value, str) or not value or ids[value.lower()] != 1:
        return None
    return value


def _step(tag: Tag) -> str:
    """``tag``'s step in a path: its name, numbered among its siblings of the same name."""
    parent = tag.parent
    same = [] if parent is None else parent.find_all(tag.name, recursive=False)
    if len(same) <= 1:
        return _ident(tag.name)
    index = next(n for n, sibling in enumerate(same, 1) if sibling is tag)
    return f"{_ident(tag.name)}:nth-of-type({index})"


def _ancestry(tag: Tag) -> Iterator[Tag]:
    """``tag`` and its ancestors up to ``body`` (``html`` outside the body), outermost
    first."""
    chain: list[Tag] = []
    node: Tag | None = tag
    while node is not None and node.name != "[document]":
        chain.append(node)
        if node.name in ("body", "html"):
            break
        node = node.parent
    return reversed(chain)


def _path(tag: Tag) -> str | None:
    chain = list(_ancestry(tag))
    if any(node.name in _UNREACHABLE for node in chain):
        return None
    steps = [chain[0].name if chain[0].name in ("body", "html") else _step(chain[0])]
    steps += [_step(child) for _parent, child in pairwise(chain)]
    return " > ".join(steps)


def _selector(tag: Tag, ids: Counter[str]) -> str | None:
    """The selector of ``tag``, an element of a ``browser_tree``: ``#id`` if its id is
    unique, else its path; None inside content a browser keeps out of the document.

    Either names exactly ``tag`` by construction: an id no other element carries (matched
    against ``tag`` all the same, in case escaping went wrong), or child steps from the one
    ``body`` that each pick one child by name and number. The tests check every selector
    against the whole document, and in a browser; checking here too would search the whole
    document once per link.
    """
    ident = _unique_id(tag, ids)
    if ident is not None:
        selector = "#" + _ident(ident)
        if soupsieve.match(selector, tag):
            return selector
    return _path(tag)


def _target(group: Sequence[tuple[FoundLink, Tag]]) -> Tag | None:
    """The element of a placement a browser has: its occurrence outside Outlook comments."""
    return next((tag for found, tag in group if not found.in_conditional), None)


def placement_selectors(
    text: str, part: Part = "html", rules: LinkRules = _DEFAULT_RULES
) -> dict[int, str | None]:
    """``position -> selector`` for every placement ``scan(text, part, rules)`` finds,
    tracked or not; None where no selector can reach the link (see the module docstring).

    ``rules`` are the ones the part was scanned with; they decide which links are tracked,
    not which exist, so every placement of the part gets an entry either way.
    """
    soup = parse_html(text)
    elements = list(link_elements(soup, part, rules))
    links: Sequence[Link] = scan(text, part, rules).links
    if sum(link.occurrences for link in links) != len(elements):
        # Both come from one catalog of one parse; a mismatch is a bug, never the email's.
        raise RuntimeError("the catalog and the scan disagree on the links of this part")
    ids = _id_counts(browser_tree(soup))
    selectors: dict[int, str | None] = {}
    start = 0
    for link in links:
        target = _target(elements[start : start + link.occurrences])
        start += link.occurrences
        selectors[link.position] = None if target is None else _selector(target, ids)
    return selectors
