"""Link finding and rewriting: every link found, and nothing but the URLs changed.

The corpus checks recount each file's links with a different parser (the standard library's
``html.parser`` plus a regular expression for Outlook conditional comments) and a few-line
classifier of their own, so a bug shared by the code under test and its test is unlikely.
"""

from __future__ import annotations

import codecs
import html
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import ada_url
import pytest
from bs4 import BeautifulSoup

import app.ingest.rewriting as rewriting
from app.ingest.links import skip_message
from app.ingest.rewriting import (
    SKIP_REASONS,
    CompiledPart,
    Link,
    LinkRules,
    NotHTMLError,
    Part,
    ScanResult,
    check_html,
    decode_html,
    scan,
)
from tests.prerequisites import corpus_files, shared_path

CORPUS = shared_path("corpus")


def _corpus_files() -> list[pytest.ParameterSet]:
    params = [
        pytest.param(path, "amp" if kind == "amp" else "html", id=path.name)
        for kind in ("email", "amp")
        for path in corpus_files(kind)
    ]
    if not params:  # one parameter that skips (fails under CI), saying what is missing
        params = [pytest.param(None, "html", id="no-corpus", marks=pytest.mark.shared("corpus"))]
    return params


CORPUS_FILES = _corpus_files()


def _read(path: Path) -> str:
    # Bytes, not read_text: line endings (some files use CRLF) must survive untouched.
    return path.read_bytes().decode("utf-8")


def _sources_features() -> dict[str, str]:
    """File name -> the "features" column of SOURCES.md."""
    if CORPUS is None:
        return {}
    features = {}
    for line in (CORPUS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0].startswith("`") and cells[0].endswith(".html`"):
            features[cells[0].strip("`")] = cells[-1]
    return features


SOURCES = _sources_features()


# --- an independent reading of the same files ----------------------------------------------

_INDEPENDENT_MERGE = re.compile(
    r"\{\{|\}\}|\{%|%\}|\*\|.*?\|\*|%%.*?%%|<%|\{\$|\$\{|\[%|(?:^|[=/])\[[A-Za-z_]\w*\]"
)
_CONDITIONAL_HREF = re.compile(
    r"""<(v:[\w-]+|a|area)\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""",
    re.IGNORECASE | re.DOTALL,
)


def _independent_clean(value: str) -> str:
    value = value.strip(" \t\r\n\f")
    return value.replace("\t", "").replace("\n", "").replace("\r", "")


def _independent_destination(value: str, base: str | None) -> str | None:
    """Where a decoded href leads if it is trackable, by a deliberately naive method."""
    value = _independent_clean(value)
    if not value or value.startswith("#") or _INDEPENDENT_MERGE.search(value):
        return None
    lowered = value.lower()
    if lowered.startswith("//"):
        value, lowered = "https:" + value, "https:" + lowered
    elif base and not re.match(r"[a-z][a-z0-9+.-]*:", lowered):
        value = urljoin(base, value)
        lowered = value.lower()
    if not lowered.startswith(("http://", "https://")):
        return None
    host = urlsplit(value).hostname
    if not host or " " in host:
        return None
    # What the browser requests: the WHATWG parser's serialization.
    return str(ada_url.URL(value).href)


class _Recount(HTMLParser):
    """Links as the standard library sees them: (in a conditional comment, tag, href)."""

    def __init__(self, part: str) -> None:
        super().__init__(convert_charrefs=True)
        self.part = part
        self.items: list[tuple[bool, str, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        first: dict[str, str] = {}
        for name, value in attrs:
            first.setdefault(name, value or "")
        if tag == "base" and "href" in first and self.base is None and self.part == "html":
            self.base = first["href"]
        wanted = ("a",) if self.part == "amp" else ("a", "area")
        bound = self.part == "amp" and ("[href]" in first or "data-amp-bind-href" in first)
        if tag in wanted and ("href" in first or bound):
            self.items.append((False, tag, first.get("href", "")))

    def handle_comment(self, data: str) -> None:
        conditional = re.match(r"\[if[^\]]*\]>(.*)", data, re.DOTALL)
        if conditional is None or self.part != "html":
            return
        for match in _CONDITIONAL_HREF.finditer(conditional.group(1)):
            value = next(v for v in match.groups()[1:] if v is not None)
            self.items.append((True, match.group(1).lower(), html.unescape(value)))


def _recount(text: str, part: str) -> tuple[_Recount, list[list[tuple[bool, str, str]]]]:
    parser = _Recount(part)
    parser.feed(text)
    parser.close()
    placements: list[list[tuple[bool, str, str]]] = []
    items = parser.items
    i = 0
    while i < len(items):
        inside, tag, value = items[i]
        if (
            inside
            and tag.startswith("v:")
            and i + 1 < len(items)
            and items[i + 1][:2] == (False, "a")
            and _independent_clean(items[i + 1][2]) == _independent_clean(value)
        ):
            placements.append([items[i], items[i + 1]])
            i += 2
        else:
            placements.append([items[i]])
            i += 1
    return parser, placements


# --- the fidelity check ---------------------------------------------------------------------

_FAKE = re.compile(r"https://t\.example/c/TOKEN(\d+)X")


def _fake_urls(result: ScanResult) -> list[str]:
    return [f"https://t.example/c/TOKEN{link.position}X" for link in result.links]


def assert_only_urls_changed(original: str, result: ScanResult, base: str | None = None) -> str:
    """Render with recognisable URLs and walk the original text alongside the output.

    Every byte outside the replaced ``href`` values must be the sender's, and every replaced
    value must have said (once decoded) what the placement claims as its destination.
    """
    assert "t.example/c/TOKEN" not in original
    output = result.compiled.render(_fake_urls(result))
    pieces = _FAKE.split(output)
    literals, positions = pieces[0::2], [int(p) for p in pieces[1::2]]
    assert original.startswith(literals[0])
    cursor = len(literals[0])
    for index, (position, after) in enumerate(zip(positions, literals[1:], strict=True)):
        link = result.links[position]
        assert link.tracked, link
        is_last = index == len(positions) - 1
        end = len(original) - len(after) if is_last else original.find(after, cursor)
        assert end >= cursor, f"text after URL {index} not found in the original"
        assert original.startswith(after, end)
        replaced = original[cursor:end]
        before = literals[index]
        quote = re.search(r"""href\s*=\s*(["']?)\Z""", before, re.IGNORECASE)
        assert quote is not None, f"URL {index} is not an href value: {before[-60:]!r}"
        if quote.group(1):
            assert quote.group(1) not in replaced and after.startswith(quote.group(1))
        else:
            assert not re.search(r"[\s>]", replaced)
        decoded = html.unescape(replaced).replace("\x00", "\ufffd")
        assert _independent_destination(decoded, base) == link.destination
        cursor = end + len(after)
    assert cursor == len(original)
    for link in result.links:
        expected = link.occurrences if link.tracked else 0
        assert positions.count(link.position) == expected, link
    return output


# --- corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "part"), CORPUS_FILES)
def test_corpus_every_link_found_and_classified(path: Path, part: Part) -> None:
    text = _read(path)
    result = scan(text, part)
    parser, placements = _recount(text, part)

    assert [link.position for link in result.links] == list(range(len(result.links)))
    assert len(result.links) == len(placements)
    assert [link.occurrences for link in result.links] == [len(p) for p in placements]
    assert [html.unescape(link.href) for link in result.links] == [p[0][2] for p in placements]
    expected = [_independent_destination(p[0][2], parser.base) for p in placements]
    assert [link.destination if link.tracked else None for link in result.links] == expected
    for link in result.links:
        assert link.tracked == (link.skip_reason is None)
        assert link.skip_reason is None or link.skip_reason in SKIP_REASONS
        assert link.skip_reason != "unlocatable"
        assert link.kind == (
            "vml"
            if placements[link.position][0][1].startswith("v:")
            else placements[link.position][0][1]
        )


@pytest.mark.parametrize(("path", "part"), CORPUS_FILES)
def test_corpus_counts_match_sources_md(path: Path, part: Part) -> None:
    features = SOURCES.get(path.name)
    if features is None:
        pytest.skip("not described in SOURCES.md")
    result = scan(_read(path), part)
    literal = [
        link for link in result.links if not (link.skip_reason == "amp_bound" and link.href == "")
    ]
    visible = sum(1 for link in literal if link.kind != "vml") + sum(
        1 for link in literal if link.kind == "vml" and link.occurrences == 2
    )
    documented = {
        key: int(n) for n, key in re.findall(r"(\d+) (links|mso hrefs|mailto|tel)\b", features)
    }
    assert visible == documented.get("links", 0)
    assert sum(1 for link in result.links if link.kind == "vml") == documented.get("mso hrefs", 0)
    for reason in ("mailto", "tel"):
        found = sum(1 for link in result.links if link.skip_reason == reason)
        assert found == documented.get(reason, 0), reason


@pytest.mark.parametrize(("path", "part"), CORPUS_FILES)
def test_corpus_output_identical_outside_rewritten_urls(path: Path, part: Part) -> None:
    text = _read(path)
    result = scan(text, part)
    parser, _ = _recount(text, part)
    output = assert_only_urls_changed(text, result, parser.base)
    # Nothing tracked means nothing touched, down to the last byte.
    if not any(link.tracked for link in result.links):
        assert output == text


@pytest.mark.shared("corpus")
def test_corpus_is_present() -> None:
    assert len(CORPUS_FILES) >= 50


# --- URL round trips ------------------------------------------------------------------------

ROUND_TRIPS = [
    # (attribute as written in the source, destination, skip reason)
    ('"https://x.example/?a=1&amp;b=2"', "https://x.example/?a=1&b=2", None),
    ('"https://x.example/?a=1&#38;b=2"', "https://x.example/?a=1&b=2", None),
    ('"https://x.example/?a=1&#x26;b=2"', "https://x.example/?a=1&b=2", None),
    ('"https://x.example/?a=1&copy=2&reg=3"', "https://x.example/?a=1&copy=2&reg=3", None),
    (
        '"https://x.example/a%20b/c%2Fd/100%25?q=%20&r=%2f"',
        "https://x.example/a%20b/c%2Fd/100%25?q=%20&r=%2f",
        None,
    ),
    ('"https://x.example/?a[]=1&a[]=2"', "https://x.example/?a[]=1&a[]=2", None),
    ('"https://x.example/?filter[name]=x"', "https://x.example/?filter[name]=x", None),
    ('"http://[2001:db8::1]:8080/p"', "http://[2001:db8::1]:8080/p", None),
    # Destinations are what the browser requests (WHATWG URL Standard): IDNA per UTS #46,
    # UTF-8 percent-encoding, escapes kept exactly as written.
    (
        '"https://bücher.example/straße?q=ü"',
        "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC",
        None,
    ),
    ('"https://例え.テスト/パス"', "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9", None),
    ('"https://faß.de/x"', "https://xn--fa-hia.de/x", None),
    ('"https://example.com\\@evil.com/"', "https://example.com/@evil.com/", None),
    (
        '"https://x.example/%7e/100%/p?q={}&r=1#a#b"',
        "https://x.example/%7e/100%/p?q={}&r=1#a#b",
        None,
    ),
    ('"http://f:00000000000000/c"', "http://f:0/c", None),
    ('"http://!!!/"', "http://!!!/", None),
    ('"https://x.example/a&#1;b&#127;"', "https://x.example/a%01b%7F", None),
    ('"https:/x.example/a"', "https://x.example/a", None),
    ('"https:\\\\x.example\\a"', "https://x.example/a", None),
    ('"http:x.example"', "http://x.example/", None),
    ('"https://x.example/p?q=1#section-2"', "https://x.example/p?q=1#section-2", None),
    ('"  https://x.example/  "', "https://x.example/", None),
    ('"\nhttps://x.example/lo\n\tng\r\n"', "https://x.example/long", None),
    ('"HTTPS://EXAMPLE.COM/Path"', "https://example.com/Path", None),
    ('"//cdn.example/x?y=1"', "https://cdn.example/x?y=1", None),
    ("'https://x.example/single?q=\"'", "https://x.example/single?q=%22", None),
    ("https://x.example/unquoted?a=1&amp;b=2", "https://x.example/unquoted?a=1&b=2", None),
    ('"https://user:pw@x.example:8443/p"', "https://user:pw@x.example:8443/p", None),
    ('"{{action_url}}"', None, "merge_tag"),
    ('"https://x.example/?e={{ email }}"', None, "merge_tag"),
    ('"{{#each}}"', None, "merge_tag"),
    ("\"{% url 'home' %}\"", None, "merge_tag"),
    ('"*|UNSUB|*"', None, "merge_tag"),
    ('"https://x.example/?id=*|UNIQID|*"', None, "merge_tag"),
    ('"%%view_email_url%%"', None, "merge_tag"),
    ('"<%asm_global_unsubscribe_raw_url%>"', None, "merge_tag"),
    ('"&lt;%asm_group_unsubscribe_raw_url%&gt;"', None, "merge_tag"),
    ('"{$unsubscribe}"', None, "merge_tag"),
    ('"https://x.example/${path}"', None, "merge_tag"),
    ('"[unsubscribe]"', None, "merge_tag"),
    ('"[Unsubscribe_Preferences]"', None, "merge_tag"),
    ('"https://x.example/?from=[Sender_Name]"', None, "merge_tag"),
    ('"[% link %]"', None, "merge_tag"),
    # Merge tags an editor percent-encoded are merge tags all the same.
    ('"https://x.example/?e=*%7CEMAIL%7C*"', None, "merge_tag"),
    ('"https://x.example/%24%7Bpath%7D"', None, "merge_tag"),
    ('"https://x.example/%7B%25 unsubscribe %25%7D"', None, "merge_tag"),
    ('"https://x.example/?n=%25%25FirstName%25%25"', None, "merge_tag"),
    ('"https://x.example/?e=%7B%7Bemail%7D%7D"', None, "merge_tag"),
    # Square brackets alone are query data, not a tag.
    ('"https://x.example/?sort=[price]"', "https://x.example/?sort=[price]", None),
    ('"mailto:someone@example.com?subject=Hi%20there&amp;cc=x@example.com"', None, "mailto"),
    ('"mailto:{{support_email}}"', None, "mailto"),
    ('"tel:+15555550100"', None, "tel"),
    ('"sms:+15555550100"', None, "sms"),
    ('"#top"', None, "anchor"),
    ('"javascript:void(0)"', None, "javascript"),
    ('"data:text/html,hello"', None, "data"),
    ('""', None, "empty"),
    ('"   "', None, "empty"),
    ('"page.html"', None, "relative"),
    ('"/account"', None, "relative"),
    ('"twitter.com"', None, "relative"),
    ('"ftp://files.example/x"', None, "unsupported_scheme"),
    ('"http://"', None, "invalid_url"),
    ('"https://exa mple.com/"', None, "invalid_url"),
    ('"https://x.example:port/"', None, "invalid_url"),
]


@pytest.mark.parametrize(
    ("href", "named"),
    [
        ("https://x.example/?e=*|EMAIL|*", "Mailchimp"),
        ("%%=RedirectTo(@url)=%%", "Salesforce Marketing Cloud"),
        ("https://x.example/?e=%7B%7Bemail%7D%7D", "Klaviyo"),
    ],
)
def test_skip_message_names_the_merge_tag_syntax(href: str, named: str) -> None:
    message = skip_message("merge_tag", html.escape(href))
    assert named in message
    assert message.endswith("break the link.")
    assert skip_message("mailto", "mailto:a@b") == SKIP_REASONS["mailto"]


@pytest.mark.parametrize(("written", "destination", "reason"), ROUND_TRIPS)
def test_url_round_trip(written: str, destination: str | None, reason: str | None) -> None:
    source = f"<!DOCTYPE html>\n<p>Go <a class=btn href={written} id=x>there</a>.</p>\n"
    result = scan(source)
    (link,) = result.links
    assert (link.skip_reason, link.tracked) == (reason, reason is None)
    assert link.text == "there"
    if reason is None:
        assert link.destination == destination
        output = result.compiled.render(["https://t.example/c/NEW"])
        quote = written[0] if written[0] in "\"'" else ""
        assert output == source.replace(f"={written} ", f"={quote}https://t.example/c/NEW{quote} ")
    else:
        assert result.compiled.render([]) == source
        assert result.compiled.slots == ()


@pytest.mark.parametrize(
    ("href", "destination"),
    [
        ("/path/", "https://www.example.com/path/"),
        ("./relative-path/", "https://www.example.com/1/relative-path/"),
        ("another/?q=%20", "https://www.example.com/1/another/?q=%20"),
        ("https://other.example/", "https://other.example/"),
        ("//cdn.example/x", "https://cdn.example/x"),
    ],
)
def test_base_href_makes_relative_links_trackable(href: str, destination: str) -> None:
    source = (
        '<html><head><base target="_blank"><base href="https://www.example.com/1/">'
        '<base href="https://ignored.example/"></head>'
        f'<body><a href="{href}">x</a><a href="#top">top</a></body></html>'
    )
    result = scan(source)
    assert [(link.destination, link.skip_reason) for link in result.links] == [
        (destination, None),
        (None, "anchor"),
    ]
    assert_only_urls_changed(source, result, "https://www.example.com/1/")


def test_relative_base_is_ignored() -> None:
    result = scan('<base href="/root/"><a href="page.html">x</a>')
    assert result.links[0].skip_reason == "relative"


# --- link kinds, text, rules -------------------------------------------------------------------

VML_BUTTON = """<div>
  <!--[if mso]>
  <v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://shop.example/sale?a=1&amp;b=2"
    style="height:40px;width:200px;" arcsize="10%" fillcolor="#444444">
    <w:anchorlock/>
    <center style="color:#ffffff;">Shop   the sale</center>
  </v:roundrect>
  <![endif]-->
  <a href="https://shop.example/sale?a=1&amp;b=2" style="mso-hide:all;">Shop the sale</a>
</div>
"""


def test_vml_button_and_its_link_are_one_placement() -> None:
    result = scan(VML_BUTTON)
    (link,) = result.links
    assert link == Link(
        position=0,
        kind="vml",
        href="https://shop.example/sale?a=1&amp;b=2",
        destination="https://shop.example/sale?a=1&b=2",
        text="Shop the sale",
        tracked=True,
        skip_reason=None,
        occurrences=2,
    )
    output = assert_only_urls_changed(VML_BUTTON, result)
    assert output.count("https://t.example/c/TOKEN0X") == 2


def test_vml_with_a_different_link_after_it_stands_alone() -> None:
    source = VML_BUTTON.replace(
        '<a href="https://shop.example/sale?a=1&amp;b=2"', '<a href="https://shop.example/other"'
    )
    result = scan(source)
    assert [(link.kind, link.occurrences, link.destination) for link in result.links] == [
        ("vml", 1, "https://shop.example/sale?a=1&b=2"),
        ("a", 1, "https://shop.example/other"),
    ]
    assert_only_urls_changed(source, result)


def test_links_inside_outlook_only_comments_are_found_but_plain_comments_are_not() -> None:
    source = (
        '<!-- <a href="https://commented.example/">old</a> -->'
        '<!--[if mso]><table><tr><td><a href="https://outlook.example/">Outlook</a>'
        "</td></tr></table><![endif]-->"
        '<!--[if !mso]><!--><a href="https://others.example/">Others</a><!--<![endif]-->'
    )
    result = scan(source)
    assert [(link.kind, link.destination) for link in result.links] == [
        ("a", "https://outlook.example/"),
        ("a", "https://others.example/"),
    ]
    assert_only_urls_changed(source, result)


def test_image_map_areas_are_links() -> None:
    source = (
        '<img src="map.png" usemap="#m"><map name="m">'
        '<area shape="rect" coords="0,0,10,10" href="https://maps.example/" alt="The map">'
        '<area shape="rect" coords="10,10,20,20" href="#m" alt="Nowhere"></map>'
    )
    result = scan(source)
    assert [(link.kind, link.text, link.skip_reason) for link in result.links] == [
        ("area", "The map", None),
        ("area", "Nowhere", "anchor"),
    ]


@pytest.mark.parametrize(
    ("inner", "text"),
    [
        ("  Read\n   the <b>whole</b>\tstory ", "Read the whole story"),
        ('<img src="logo.png" alt="  ACME   logo ">', "ACME logo"),
        ('<img src="a.png" alt=""><img src="b.png" alt="Second">', "Second"),
        ("Line one<br>line two", "Line one line two"),
        ("&nbsp;", ""),
        ("x" * 500, "x" * 200),
    ],
)
def test_visible_text(inner: str, text: str) -> None:
    assert scan(f'<a href="https://x.example/">{inner}</a>').links[0].text == text


def test_visible_text_falls_back_to_title_then_aria_label() -> None:
    result = scan(
        '<a href="https://x.example/1" title="By title"></a>'
        '<a href="https://x.example/2" aria-label="By label"><img src="i.png"></a>'
    )
    assert [link.text for link in result.links] == ["By title", "By label"]


@pytest.mark.parametrize(
    ("attribute", "rules"),
    [
        ("data-clickmap-notrack", LinkRules()),
        ('data-clickmap-notrack="1"', LinkRules()),
        ("data-no-track", LinkRules(opt_out_attribute="data-no-track")),
        ('clicktracking="off"', LinkRules()),
        ("clicktracking=OFF", LinkRules()),
        ("mc:disable-tracking", LinkRules()),
    ],
)
def test_per_link_opt_out(attribute: str, rules: LinkRules) -> None:
    source = f'<a {attribute} href="https://x.example/">x</a><a href="https://y.example/">y</a>'
    result = scan(source, rules=rules)
    assert [link.skip_reason for link in result.links] == ["opt_out", None]
    assert result.links[0].destination == "https://x.example/"
    assert_only_urls_changed(source, result)


def test_custom_opt_out_attribute_replaces_the_default() -> None:
    result = scan(
        '<a data-clickmap-notrack href="https://x.example/">x</a>',
        rules=LinkRules(opt_out_attribute="data-other"),
    )
    assert result.links[0].tracked


@pytest.mark.parametrize(
    ("url", "tracked"),
    [
        ("https://example.com/", False),
        ("https://EXAMPLE.com./x", False),
        ("https://www.example.com/", False),
        ("https://deep.sub.example.com/", False),
        ("https://notexample.com/", True),
        ("https://example.com.evil.test/", True),
        ("https://bücher.test/", False),
        ("https://other.test/?u=https://example.com/", True),
    ],
)
def test_do_not_track_domains_and_subdomains(url: str, tracked: bool) -> None:
    rules = LinkRules(do_not_track=("example.com", "xn--bcher-kva.test"))
    (link,) = scan(f'<a href="{url}">x</a>', rules=rules).links
    assert link.tracked is tracked
    assert link.skip_reason == (None if tracked else "do_not_track")


# --- AMP ---------------------------------------------------------------------------------------

AMP_DOC = """<!doctype html>
<html ⚡4email data-css-strict>
<head><meta charset="utf-8"><script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp4email-boilerplate>body{visibility:hidden}</style></head>
<body>
<a href="https://shop.example/?a=1&amp;b=2">Shop</a>
<a href="https://x.example/" [href]="state.url">Bound</a>
<a [href]="state.other">Only bound</a>
<a href="https://y.example/" data-amp-bind-href="state.url">Bound by name</a>
<amp-img src="https://img.example/a.png" width="10" height="10" alt="i"></amp-img>
<form method="post" action-xhr="https://forms.example/submit"><input type="submit"></form>
<amp-list src="https://data.example/items.json" layout="fixed-height" height="80">
  <template type="amp-mustache"><a href="{{url}}">{{name}}</a></template>
</amp-list>
<map name="m"><area href="https://area.example/" alt="area"></map>
<!--[if mso]><v:rect href="https://vml.example/"></v:rect><![endif]-->
</body>
</html>
"""


def test_amp_part_tracks_literal_links_only() -> None:
    result = scan(AMP_DOC, "amp")
    assert [(link.kind, link.text, link.skip_reason) for link in result.links] == [
        ("a", "Shop", None),
        ("a", "Bound", "amp_bound"),
        ("a", "Only bound", "amp_bound"),
        ("a", "Bound by name", "amp_bound"),
        ("a", "{{name}}", "merge_tag"),
    ]
    output = assert_only_urls_changed(AMP_DOC, result)
    for untouched in (
        "https://img.example/a.png",
        "https://forms.example/submit",
        "https://data.example/items.json",
        "https://area.example/",
        "https://vml.example/",
        "{{url}}",
    ):
        assert output.count(untouched) == AMP_DOC.count(untouched)


# --- hostile and malformed input ---------------------------------------------------------------

HOSTILE = {
    "unclosed tags": (
        '<div><p><a href="https://a.example/">unclosed <b>bold',
        ["https://a.example/"],
    ),
    "eof inside a tag": (
        '<a href="https://a.example/">x</a><a href="https://b.exa',
        ["https://a.example/"],
    ),
    "unquoted": (
        "<a href=https://a.example/x?y=1&amp;z=2 class=c>t</a>",
        ["https://a.example/x?y=1&z=2"],
    ),
    "unquoted before >": ("<a href=https://a.example/x/>t</a>", ["https://a.example/x/"]),
    "in script": (
        '<script>var s = "<a href=\\"https://no.example/\\">";</script>'
        '<a href="https://yes.example/">y</a>',
        ["https://yes.example/"],
    ),
    "in style": (
        '<style>/* <a href="https://no.example/"> */</style><a href="https://yes.example/">',
        ["https://yes.example/"],
    ),
    "in comment": (
        '<!-- <a href="https://no.example/"> --><a href="https://yes.example/">y</a>',
        ["https://yes.example/"],
    ),
    "in textarea and title": (
        '<title><a href="https://no.example/"></title><textarea>'
        '<a href="https://no.example/"></textarea><a href="https://y.example/">',
        ["https://y.example/"],
    ),
    "in cdata": (
        '<![CDATA[<a href="https://no.example/">]]><a href="https://y.example/">',
        ["https://y.example/"],
    ),
    "nested a": (
        '<a href="https://a.example/1"><a href="https://a.example/2">x</a></a>',
        ["https://a.example/1", "https://a.example/2"],
    ),
    "nul byte": (
        '<a href="https://a.example/\x00x">t</a><p>\x00</p><a href="https://b.example/">b</a>',
        ["https://a.example/%EF%BF%BDx", "https://b.example/"],
    ),
    "huge attribute": (
        '<a title="' + "t" * 2_000_000 + '" href="https://a.example/">x</a>',
        ["https://a.example/"],
    ),
    "huge href": (
        '<a href="https://a.example/?q=' + "q" * 200_000 + '">x</a>',
        ["https://a.example/?q=" + "q" * 200_000],
    ),
    "two hrefs": (
        '<a href="https://first.example/" href="https://second.example/">x</a>',
        ["https://first.example/"],
    ),
    "mixed quotes": (
        """<a title='say "hi"' href="https://a.example/?q='x'">1</a>"""
        """<a href='https://b.example/?q="x"' title="it's">2</a>""",
        ["https://a.example/?q=%27x%27", "https://b.example/?q=%22x%22"],
    ),
    "attribute junk": (
        '<a =x "y" href="https://a.example/" <b href="https://no.example/">',
        ["https://a.example/"],
    ),
    "spaces around =": ('<A\nHREF\n=\n"https://a.example/"\n>x</A>', ["https://a.example/"]),
    "merge tags elsewhere": (
        '<a data-x="<%= foo %>" title="{{t}}" href="https://a.example/">*|FNAME|*</a>',
        ["https://a.example/"],
    ),
    "unterminated comment": (
        '<a href="https://a.example/">x</a><!-- <a href="https://no.example/">',
        ["https://a.example/"],
    ),
    "unterminated conditional": (
        '<!--[if mso]><v:rect href="https://v.example/">',
        ["https://v.example/"],
    ),
    "stray < and </>": (
        'a < b </> c <3 <a href="https://a.example/">x</a> </ x>',
        ["https://a.example/"],
    ),
    "plaintext": (
        '<a href="https://a.example/">x</a><plaintext><a href="https://no.example/">',
        ["https://a.example/"],
    ),
    "not html at all": ("just some text, no markup", []),
    "empty": ("", []),
}


@pytest.mark.parametrize(("source", "expected"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_is_handled(source: str, expected: list[str]) -> None:
    result = scan(source)
    assert [link.destination for link in result.links if link.tracked] == expected
    assert_only_urls_changed(source, result)


@pytest.mark.parametrize(
    "value",
    [
        "https://x.example/?a=1&notit;&not;x&ampx&amp=&copy2&AMP;b",
        "https://x.example/?e=&#128;&#0;&#x110000;&#xD800;&#65",
        "https://x.example/?a=1\r\n&amp;b=2\r",
        "https://x.example/?nbsp=&nbsp&lt=3",
    ],
)
def test_href_decoding_agrees_with_the_parser(value: str) -> None:
    """The raw text is decoded like lxml decodes it, or links could not be located; the
    destination is what a browser requests for the value the parser read."""
    source = f'<a href="{value}">x</a>'
    (link,) = scan(source).links
    assert link.tracked
    parsed = BeautifulSoup(source, "lxml").a
    assert parsed is not None
    assert link.destination == ada_url.URL(str(parsed["href"])).href


def test_a_disagreement_between_the_readers_never_splices_blindly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the raw scanner misses a link the parser sees, that link is left untouched."""
    real = rewriting._scan_raw

    def forgetful(
        text: str,
        start: int,
        end: int,
        part: Part,
        inside: bool,
        out: list[rewriting._RawTag],
        marks: dict[str, int] | None = None,
    ) -> None:
        real(text, start, end, part, inside, out, marks)
        if not inside:
            del out[1]

    monkeypatch.setattr(rewriting, "_scan_raw", forgetful)
    source = "".join(f'<a href="https://x.example/{n}">{n}</a>' for n in range(3))
    result = scan(source)
    assert [link.skip_reason for link in result.links] == [None, "unlocatable", None]
    output = assert_only_urls_changed(source, result)
    assert 'href="https://x.example/1"' in output


# --- compiled parts ----------------------------------------------------------------------------


def test_compiled_part_renders_by_position_and_skips_untracked() -> None:
    source = (
        '<a href="https://a.example/">a</a><a href="mailto:x@example.com">m</a>'
        '<a href="https://b.example/">b</a>'
    )
    compiled = scan(source).compiled
    assert compiled.slots == (0, 2)
    assert len(compiled.chunks) == 3
    assert compiled.render(["U0", "unused", "U2"]) == (
        '<a href="U0">a</a><a href="mailto:x@example.com">m</a><a href="U2">b</a>'
    )


def test_compiled_part_checks_its_shape() -> None:
    with pytest.raises(ValueError):
        CompiledPart(chunks=("a",), slots=(0,))


# --- decoding and checking uploads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text", "encoding"),
    [
        (codecs.BOM_UTF8 + "<p>café</p>".encode(), "<p>café</p>", "utf-8"),
        (codecs.BOM_UTF16_LE + "<p>café</p>".encode("utf-16-le"), "<p>café</p>", "utf-16-le"),
        (codecs.BOM_UTF16_BE + "<p>café</p>".encode("utf-16-be"), "<p>café</p>", "utf-16-be"),
        (
            b'<meta charset="iso-8859-1"><p>caf\xe9 \x80</p>',
            '<meta charset="iso-8859-1"><p>café €</p>',
            "windows-1252",
        ),
        (
            b"<meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-2'>\xb1",
            "<meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-2'>ą",
            "iso-8859-2",
        ),
        (b'<meta charset="utf-8"><p>caf\xc3\xa9</p>', '<meta charset="utf-8"><p>café</p>', "utf-8"),
        ("<p>café, no declaration</p>".encode(), "<p>café, no declaration</p>", "utf-8"),
        (
            b'<meta charset="utf-8"><p>caf\xe9</p>',
            '<meta charset="utf-8"><p>café</p>',
            "windows-1252",
        ),
        (
            b'<meta charset="no-such-charset"><p>x</p>',
            '<meta charset="no-such-charset"><p>x</p>',
            "utf-8",
        ),
        (b"<p>\x81\x8d\xff</p>", "<p>\x81\x8dÿ</p>", "windows-1252"),
    ],
)
def test_decode_html(data: bytes, text: str, encoding: str) -> None:
    assert decode_html(data) == (text, encoding)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n ",
        "<p>\x00</p>",
        "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f<a>",
        "Dear customer, this is plain text.",
    ],
)
def test_check_html_rejects_what_is_not_html(text: str) -> None:
    with pytest.raises(NotHTMLError) as raised:
        check_html(text)
    assert str(raised.value)


@pytest.mark.parametrize("text", ["<p>hi</p>", "<!doctype html>", "Hello <b>world</b>"])
def test_check_html_accepts_html(text: str) -> None:
    check_html(text)


def test_every_skip_reason_has_a_message() -> None:
    reasons = {reason for _w, _d, reason in ROUND_TRIPS if reason} | {
        "opt_out",
        "do_not_track",
        "amp_bound",
        "unlocatable",
    }
    assert reasons <= set(SKIP_REASONS)
    assert all(message.strip() for message in SKIP_REASONS.values())


# --- where the honeypot link goes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "before"),
    [
        (
            '<!doctype html><html><head><title>t</title></head><body class="x"><p>a</p>',
            '<!doctype html><html><head><title>t</title></head><body class="x">',
        ),
        # Outlook's conditional <body> and a "<body>" in a script or comment are no body.
        (
            '<html><head><script>var b = "<body>";</script></head><!--[if mso]><body><![endif]-->'
            "<!-- <body> --><body>\n<p>a</p>",
            '<html><head><script>var b = "<body>";</script></head><!--[if mso]><body><![endif]-->'
            "<!-- <body> --><body>",
        ),
        ("<!DOCTYPE html><html><head><title>t</title></head><p>a</p>", None),
        ("<!DOCTYPE html><html><p>a</p>", "<!DOCTYPE html><html>"),
        ("<!DOCTYPE html><p>a</p>", "<!DOCTYPE html>"),
        ("<p>a</p>", ""),
    ],
    ids=["body", "not-a-body", "after-head", "after-html", "after-doctype", "fragment"],
)
def test_the_landing_is_where_the_body_begins(source: str, before: str | None) -> None:
    landing = scan(source + '<a href="https://x.example/">x</a>').landing
    expected = before if before is not None else source[: source.index("<p>")]
    assert source[:landing] == expected


def test_an_inserted_slot_renders_in_place_and_leaves_the_links_alone() -> None:
    source = '<html><body><a href="https://a.example/">a</a><a href="https://b.example/">b</a>'
    result = scan(source)
    compiled = result.compiled.inserting(result.landing, "<i>", 2, "</i>")
    assert compiled.slots == (2, 0, 1)
    assert compiled.render(["U0", "U1", "U2"]) == (
        '<html><body><i>U2</i><a href="U0">a</a><a href="U1">b</a>'
    )
    inside_a_link = source.index("https://b.example/") + 3
    with pytest.raises(ValueError, match="inside a link"):
        result.compiled.inserting(inside_a_link, "<i>", 2, "</i>")
