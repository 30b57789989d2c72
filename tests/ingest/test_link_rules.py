"""Every rule of link finding and rewriting, on small emails written for these tests.

Each file in ``fixtures/`` exercises one rule (its first line says which). For each one the
tests state what a sender sees: which links are tracked, which are skipped and why, the
destination and text catalogued, and that the rewritten email is the original with nothing
but the tracked ``href`` values replaced. They need neither a database nor any data outside
the repository (the campaign tests at the end use the ``session`` fixture).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy.orm import Session

from app.ingest.campaigns import AMP_SIZE_LIMIT, Personalizer, VariantInput, create_campaign
from app.ingest.rewriting import SKIP_REASONS, LinkRules, Part, ScanResult, decode_html, scan
from app.models import Placement, Variant
from app.tokens import ClickToken, TokenCodec

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Row(NamedTuple):
    """One link of the catalog as a sender sees it."""

    kind: str
    href: str  # as written in the source, entities and all
    destination: str | None
    text: str
    reason: str | None  # None when tracked
    occurrences: int = 1


class Case(NamedTuple):
    part: Part
    rules: LinkRules
    links: list[Row]


DEFAULT = LinkRules()
# Both installation settings at once: a custom opt-out attribute and a do-not-track domain.
CUSTOM = LinkRules(do_not_track=("esp.example",), opt_out_attribute="data-no-track")

SHOP = "https://shop.example"
SPRING = "/spring?utm_source=mail&amp;utm_medium=email"

CASES: dict[str, Case] = {
    "outlook_vml_button.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "vml",
                SHOP + SPRING,
                SHOP + SPRING.replace("&amp;", "&"),
                "Shop the spring sale",
                None,
                occurrences=2,
            ),
            Row("vml", SHOP + "/outlook-only", SHOP + "/outlook-only", "Outlook readers", None),
            Row("a", SHOP + "/everyone-else", SHOP + "/everyone-else", "Everyone else", None),
        ],
    ),
    "conditional_comments.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                "https://news.example/outlook-2007",
                "https://news.example/outlook-2007",
                "Outlook 2007 and later",
                None,
            ),
            Row(
                "a",
                "https://news.example/old-clients",
                "https://news.example/old-clients",
                "Old clients",
                None,
            ),
            Row(
                "a",
                "https://news.example/everyone",
                "https://news.example/everyone",
                "Everyone but Outlook",
                None,
            ),
            Row("a", "https://news.example/last", "https://news.example/last", "Last", None),
        ],
    ),
    "merge_tags.html": Case(
        "html",
        DEFAULT,
        [
            Row("a", "{{unsubscribe_url}}", None, "Handlebars", "merge_tag"),
            Row(
                "a",
                SHOP + "/welcome?email={{ email }}",
                None,
                "Handlebars in a query",
                "merge_tag",
            ),
            Row("a", "{% unsubscribe_link %}", None, "Liquid tag", "merge_tag"),
            Row("a", "*|UNSUB|*", None, "Mailchimp", "merge_tag"),
            Row("a", SHOP + "/r?id=*|UNIQID|*", None, "Mailchimp in a query", "merge_tag"),
            Row("a", "%%view_email_url%%", None, "Marketing Cloud", "merge_tag"),
            Row("a", "<%asm_group_unsubscribe_raw_url%>", None, "SendGrid", "merge_tag"),
            Row("a", "&lt;%asm_preferences_raw_url%&gt;", None, "SendGrid, escaped", "merge_tag"),
            Row("a", "{$unsubscribe}", None, "Brace dollar", "merge_tag"),
            Row("a", SHOP + "/${path}", None, "Dollar brace", "merge_tag"),
            Row("a", "[unsubscribe]", None, "Bracket tag", "merge_tag"),
            Row("a", SHOP + "/?from=[Sender_Name]", None, "Bracket tag in a query", "merge_tag"),
            Row("a", "mailto:{{support_email}}", None, "Write to us", "mailto"),
            Row(
                "a",
                SHOP + "/shoes?filter[size]=42&amp;ids[]=7",
                SHOP + "/shoes?filter[size]=42&ids[]=7",
                "Array query, not a tag",
                None,
            ),
        ],
    ),
    "entities_and_quoting.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                SHOP + "/search?q=shoes&amp;size=42",
                SHOP + "/search?q=shoes&size=42",
                "Named &amp;",
                None,
            ),
            Row(
                "a",
                SHOP + "/search?q=boots&#38;size=43",
                SHOP + "/search?q=boots&size=43",
                "Decimal reference",
                None,
            ),
            Row(
                "a",
                SHOP + "/search?q=socks&#x26;size=44",
                SHOP + "/search?q=socks&size=44",
                "Hex reference",
                None,
            ),
            Row(
                "a",
                SHOP + "/quote?text=&quot;hello&quot;",
                SHOP + "/quote?text=%22hello%22",
                'Quoted "hello"',
                None,
            ),
            Row(
                "a",
                SHOP + "/legal?a=1&copy=2&reg=3",
                SHOP + "/legal?a=1&copy=2&reg=3",
                "Legal",
                None,
            ),
            Row(
                "a", SHOP + '/single?say="hi"', SHOP + "/single?say=%22hi%22", "Single quotes", None
            ),
            Row(
                "a",
                SHOP + "/unquoted?x=1&amp;y=2",
                SHOP + "/unquoted?x=1&y=2",
                "No quotes",
                None,
            ),
            Row("a", SHOP + "/UPPER?Q=1", SHOP + "/UPPER?Q=1", "UPPER CASE", None),
            Row(
                "a",
                SHOP + "/deals",
                SHOP + "/deals",
                'Tom & Jerry \u2014 "Deals" from \u20ac5 \u2764',
                None,
            ),
        ],
    ),
    "base_href.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                "issue.html",
                "https://www.shop.example/mail/2024/issue.html",
                "This issue",
                None,
            ),
            Row("a", "/account", "https://www.shop.example/account", "Your account", None),
            Row("a", "../archive/", "https://www.shop.example/mail/archive/", "Archive", None),
            Row(
                "a",
                "?ref=footer",
                "https://www.shop.example/mail/2024/?ref=footer",
                "This page again",
                None,
            ),
            Row(
                "a",
                "//cdn.shop.example/catalog.pdf",
                "https://cdn.shop.example/catalog.pdf",
                "Catalog",
                None,
            ),
            Row(
                "a",
                "https://other.example/partner",
                "https://other.example/partner",
                "Partner",
                None,
            ),
            Row("a", "#top", None, "Back to top", "anchor"),
            Row("a", "mailto:help@shop.example", None, "Help", "mailto"),
        ],
    ),
    "relative_without_base.html": Case(
        "html",
        DEFAULT,
        [
            Row("a", "issue.html", None, "This issue", "relative"),
            Row("a", "/account", None, "Your account", "relative"),
            Row("a", "./terms", None, "Terms", "relative"),
            Row("a", "?ref=footer", None, "This page again", "relative"),
            Row("a", "www.shop.example", None, "Our shop", "relative"),
            Row(
                "a",
                "https://www.shop.example/",
                "https://www.shop.example/",
                "Our shop, written properly",
                None,
            ),
        ],
    ),
    "image_map.html": Case(
        "html",
        DEFAULT,
        [
            Row("area", SHOP + "/women", SHOP + "/women", "Women", None),
            Row("area", SHOP + "/men", SHOP + "/men", "Men", None),
            Row("area", SHOP + "/sale?from=map&amp;x=1", SHOP + "/sale?from=map&x=1", "Sale", None),
            Row("area", "#legal", None, "Small print", "anchor"),
            Row("area", "mailto:maps@shop.example", None, "Write", "mailto"),
        ],
    ),
    "schemes.html": Case(
        "html",
        DEFAULT,
        [
            Row("a", SHOP + "/", SHOP + "/", "Shop", None),
            Row(
                "a",
                "http://shop.example/plain-http",
                "http://shop.example/plain-http",
                "Plain http",
                None,
            ),
            Row(
                "a",
                "//cdn.shop.example/lookbook",
                "https://cdn.shop.example/lookbook",
                "Protocol-relative",
                None,
            ),
            Row(
                "a",
                "mailto:help@shop.example?subject=Order%20help&amp;cc=team@shop.example",
                None,
                "Mail us",
                "mailto",
            ),
            Row("a", "MAILTO:SHOUT@SHOP.EXAMPLE", None, "Mail us loudly", "mailto"),
            Row("a", "tel:+15555550100", None, "Call us", "tel"),
            Row("a", "sms:+15555550100?body=STOP", None, "Text us", "sms"),
            Row("a", "#footer", None, "Jump to the footer", "anchor"),
            Row("a", "javascript:void(0)", None, "Does nothing", "javascript"),
            Row("a", "data:text/html;base64,PGI+aGk8L2I+", None, "Inline data", "data"),
            Row("a", "", None, "Empty", "empty"),
            Row("a", "", None, "Bare href", "empty"),
            Row("a", "   ", None, "Only spaces", "empty"),
            Row(
                "a",
                "ftp://files.shop.example/price-list.csv",
                None,
                "Price list",
                "unsupported_scheme",
            ),
            Row("a", "https://", None, "No host", "invalid_url"),
        ],
    ),
    "opt_out.html": Case(
        "html",
        DEFAULT,
        [
            Row("a", SHOP + "/tracked", SHOP + "/tracked", "Tracked", None),
            Row("a", SHOP + "/private", SHOP + "/private", "Private", "opt_out"),
            Row("a", SHOP + "/sendgrid-off", SHOP + "/sendgrid-off", "SendGrid off", "opt_out"),
            Row("a", SHOP + "/sendgrid-on", SHOP + "/sendgrid-on", "SendGrid on", None),
            Row("a", SHOP + "/mailchimp-off", SHOP + "/mailchimp-off", "Mailchimp off", "opt_out"),
            Row("a", SHOP + "/custom-off", SHOP + "/custom-off", "Custom attribute", None),
            Row(
                "a",
                "https://esp.example/unsubscribe?u=1",
                "https://esp.example/unsubscribe?u=1",
                "Unsubscribe",
                None,
            ),
            Row(
                "a",
                "https://links.esp.example/prefs",
                "https://links.esp.example/prefs",
                "Preferences",
                None,
            ),
            Row(
                "a",
                "https://esp.example.attacker.test/",
                "https://esp.example.attacker.test/",
                "Look-alike domain",
                None,
            ),
        ],
    ),
    "amp4email.html": Case(
        "amp",
        DEFAULT,
        [
            Row(
                "a",
                SHOP + "/amp?utm_source=amp&amp;utm_medium=email",
                SHOP + "/amp?utm_source=amp&utm_medium=email",
                "Open the shop",
                None,
            ),
            Row("a", SHOP + "/colour/red", SHOP + "/colour/red", "Chosen colour", "amp_bound"),
            Row("a", "", None, "Details", "amp_bound"),
            Row("a", "{{url}}", None, "{{name}}", "merge_tag"),
            Row("a", "mailto:help@shop.example", None, "Help", "mailto"),
            Row("a", "/relative", None, "Relative", "relative"),
        ],
    ),
    "malformed.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                SHOP + "/unquoted?a=1&amp;b=2",
                SHOP + "/unquoted?a=1&b=2",
                "Unquoted",
                None,
            ),
            Row("a", SHOP + "/first", SHOP + "/first", "Twice", None),
            Row("a", SHOP + "/spaced", SHOP + "/spaced", "Spaced out", None),
            Row("a", SHOP + "/unclosed", SHOP + "/unclosed", "Unclosed bold", None),
            Row("a", SHOP + "/stray-cell", SHOP + "/stray-cell", "Stray cell", None),
            Row(
                "a",
                SHOP + "/twin?a=1&#38;b=2",
                SHOP + "/twin?a=1&b=2",
                "Twin of the textarea",
                None,
            ),
        ],
    ),
    "control_whitespace.html": Case(
        "html",
        DEFAULT,
        [
            Row("a", "  " + SHOP + "/padded  ", SHOP + "/padded", "Padded with spaces", None),
            Row(
                "a",
                "\x01\x02" + SHOP + "/controls\x1f",
                SHOP + "/controls",
                "Control characters at the ends",
                None,
            ),
            Row(
                "a",
                "\n    " + SHOP + "/wrapped/over/\nseveral/lines?a=1&amp;\nb=2\n  ",
                SHOP + "/wrapped/over/several/lines?a=1&b=2",
                "Wrapped over lines",
                None,
            ),
            Row(
                "a",
                SHOP + "/crlf/\r\ncontinued",
                SHOP + "/crlf/continued",
                "Wrapped with CRLF",
                None,
            ),
            Row(
                "a",
                SHOP + "/tab\tin/the&#9;middle",
                SHOP + "/tabin/themiddle",
                "Tabs in the middle",
                None,
            ),
            Row("a", "\t#section-2 ", None, "Anchor after a tab", "anchor"),
            Row("a", " \x0b ", None, "Only blanks and controls", "empty"),
            Row("a", "\n mailto:help@shop.example\n", None, "Mail, wrapped", "mailto"),
        ],
    ),
    "windows1252.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                SHOP + "/caf\u00e9?price=\u20ac5&amp;ref=news",
                SHOP + "/caf%C3%A9?price=%E2%82%AC5&ref=news",
                "\u201cShop\u201d the caf\u00e9 \u2013 \u20ac5",
                None,
            ),
            Row("a", SHOP + "/plain", SHOP + "/plain", "Plain link", None),
            Row("a", "mailto:caf\u00e9@shop.example", None, "Write to the caf\u00e9", "mailto"),
        ],
    ),
    "utf8_bom.html": Case(
        "html",
        DEFAULT,
        [
            Row(
                "a",
                SHOP + "/cr\u00e8me-br\u00fbl\u00e9e",
                SHOP + "/cr%C3%A8me-br%C3%BBl%C3%A9e",
                "Cr\u00e8me br\u00fbl\u00e9e \u2615",
                None,
            ),
            Row(
                "a",
                SHOP + "/\u65e5\u672c",
                SHOP + "/%E6%97%A5%E6%9C%AC",
                "\u65e5\u672c\u8a9e",
                None,
            ),
        ],
    ),
}

# The same opt-out email under the installation's own settings: the configured attribute
# replaces the default one, SendGrid's and Mailchimp's attributes still count, and links to
# the do-not-track domain and its subdomains (but not a look-alike) are left alone.
CUSTOM_RULES_REASONS = [
    None,
    None,
    "opt_out",
    None,
    "opt_out",
    "opt_out",
    "do_not_track",
    "do_not_track",
    None,
]


def _source(name: str) -> str:
    """The fixture as the service receives it: decoded the way an upload is."""
    return decode_html((FIXTURES / name).read_bytes())[0]


def _catalog(result: ScanResult) -> list[Row]:
    return [
        Row(
            link.kind,
            link.href,
            link.destination,
            link.text,
            link.skip_reason,
            link.occurrences,
        )
        for link in result.links
    ]


def _tracking_url(position: int) -> str:
    return f"https://t.example/c/LINK{position}"


def _render(result: ScanResult) -> str:
    return result.compiled.render([_tracking_url(link.position) for link in result.links])


def _replace_hrefs(source: str, replacements: list[tuple[str, str]]) -> str:
    """``source`` with each (value as written, new value) pair replaced, in document order.

    Written independently of the code under test: each value is looked for as a whole
    ``href`` attribute value (quoted either way or unquoted) after the previous one.
    """
    out: list[str] = []
    cursor = 0
    for raw, new in replacements:
        escaped = re.escape(raw)
        pattern = re.compile(
            rf"""\bhref\s*=\s*(?:"({escaped})"|'({escaped})'|({escaped})(?=[\s>]))""",
            re.IGNORECASE,
        )
        match = pattern.search(source, cursor)
        assert match is not None, f"href {raw!r} not found after offset {cursor}"
        group = next(g for g in (1, 2, 3) if match.group(g) is not None)
        out.append(source[cursor : match.start(group)])
        out.append(new)
        cursor = match.end(group)
    out.append(source[cursor:])
    return "".join(out)


def _expected_output(source: str, rows: list[Row]) -> str:
    replacements = [
        (row.href, _tracking_url(position))
        for position, row in enumerate(rows)
        if row.reason is None
        for _ in range(row.occurrences)
    ]
    return _replace_hrefs(source, replacements)


# --- the catalog: what is tracked, what is skipped and why ---------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_catalog(name: str) -> None:
    case = CASES[name]
    result = scan(_source(name), case.part, case.rules)
    assert _catalog(result) == case.links
    assert [link.position for link in result.links] == list(range(len(case.links)))
    assert [link.tracked for link in result.links] == [row.reason is None for row in case.links]


@pytest.mark.parametrize("name", list(CASES))
def test_only_the_tracked_hrefs_change(name: str) -> None:
    case = CASES[name]
    source = _source(name)
    result = scan(source, case.part, case.rules)
    assert _render(result) == _expected_output(source, case.links)
    # Putting each link's own href back gives the sender's text, to the last character.
    assert result.compiled.render([link.href for link in result.links]) == source


def test_every_skip_reason_is_exercised_by_a_fixture() -> None:
    used = {row.reason for case in CASES.values() for row in case.links}
    used |= set(CUSTOM_RULES_REASONS)
    # "unlocatable" is a safety net for a disagreement between the two readers of a part;
    # no well-formed rule produces it.
    assert set(SKIP_REASONS) - {"unlocatable"} == used - {None}


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.html")), ids=lambda p: p.name)
def test_each_fixture_says_what_rule_it_exercises(path: Path) -> None:
    assert path.name in CASES
    assert _source(path.name).startswith("<!-- Rule: ")


# --- installation settings -----------------------------------------------------------------


def test_opt_out_attribute_and_do_not_track_domains_from_the_settings() -> None:
    source = _source("opt_out.html")
    result = scan(source, "html", CUSTOM)
    assert [link.skip_reason for link in result.links] == CUSTOM_RULES_REASONS
    # A skipped link still shows where it leads.
    assert [link.destination for link in result.links] == [
        row.destination for row in CASES["opt_out.html"].links
    ]
    rows = [
        row._replace(reason=reason)
        for row, reason in zip(CASES["opt_out.html"].links, CUSTOM_RULES_REASONS, strict=True)
    ]
    assert _render(result) == _expected_output(source, rows)


# --- Outlook -------------------------------------------------------------------------------


def test_a_vml_button_and_its_link_carry_the_same_tracked_url() -> None:
    source = _source("outlook_vml_button.html")
    output = _render(scan(source))
    assert output.count(_tracking_url(0)) == 2
    assert source.count(SHOP + SPRING) == 2
    assert SHOP + SPRING not in output


@pytest.mark.parametrize(
    "hidden",
    [
        "https://news.example/commented-out",
        "https://news.example/not-a-conditional",
    ],
)
def test_links_in_plain_comments_are_not_links(hidden: str) -> None:
    source = _source("conditional_comments.html")
    result = scan(source)
    assert hidden in source
    assert all(hidden not in link.href for link in result.links)
    assert _render(result).count(hidden) == 1


# --- AMP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "untouched",
    [
        "https://img.shop.example/logo.png",  # amp-img
        "https://api.shop.example/items.json",  # amp-list
        "https://api.shop.example/subscribe",  # form action-xhr
        "https://shop.example/area",  # no image maps in AMP
        "https://shop.example/vml",  # no Outlook markup in AMP
        "https://shop.example/colour/red",  # amp-bind sets it
        'href="{{url}}"',  # amp-mustache fills it
    ],
)
def test_amp_part_leaves_everything_else_alone(untouched: str) -> None:
    source = _source("amp4email.html")
    assert source.count(untouched) == 1
    assert _render(scan(source, "amp")).count(untouched) == 1


def test_the_same_markup_as_html_part_finds_image_maps_and_vml() -> None:
    result = scan(_source("amp4email.html"), "html")
    tracked = {link.destination: link.kind for link in result.links if link.tracked}
    assert tracked[SHOP + "/area"] == "area"
    assert tracked[SHOP + "/vml"] == "vml"


# --- malformed markup ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        "https://no.example/title",
        "https://no.example/style",
        "https://no.example/script",
        'href="https://shop.example/twin?a=1&amp;b=2"',  # in the textarea, same address
        "https://no.example/comment",
        "https://shop.example/second",  # the second of two hrefs
        "https://shop.example/cut-off",  # a tag the end of the file cuts off
    ],
)
def test_what_is_not_a_link_in_malformed_markup(hidden: str) -> None:
    source = _source("malformed.html")
    result = scan(source)
    assert source.count(hidden) == 1
    assert all(hidden not in (link.destination or "") for link in result.links)
    assert _render(result).count(hidden) == 1


# --- encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding", "codec", "prefix"),
    [
        ("windows1252.html", "windows-1252", "cp1252", b""),
        ("utf8_bom.html", "utf-8", "utf-8", codecs.BOM_UTF8),
    ],
)
def test_encoded_upload_round_trips_byte_for_byte(
    name: str, encoding: str, codec: str, prefix: bytes
) -> None:
    data = (FIXTURES / name).read_bytes()
    text, found = decode_html(data)
    assert found == encoding
    assert not text.startswith("\ufeff")
    result = scan(text)
    expected = prefix + _expected_output(text, CASES[name].links).encode(codec)
    assert prefix + _render(result).encode(codec) == expected
    # Apart from the tracked URLs, those are the bytes that were uploaded.
    assert (
        prefix + result.compiled.render([link.href for link in result.links]).encode(codec) == data
    )


def test_windows_1252_bytes_become_the_characters_a_reader_sees() -> None:
    data = (FIXTURES / "windows1252.html").read_bytes()
    assert b"\x93Spring\x94" in data and b"\x805" in data
    text, _ = decode_html(data)
    assert "\u201cSpring\u201d is here \u2013 everything from \u20ac5." in text
    # Read as UTF-8 or Latin-1 instead, the catalog would name the link differently.
    assert scan(data.decode("latin-1")).links[0].text != CASES["windows1252.html"].links[0].text


def test_a_byte_order_mark_wins_over_the_meta_charset() -> None:
    data = (FIXTURES / "utf8_bom.html").read_bytes()
    assert b'<meta charset="windows-1252">' in data
    assert decode_html(data)[1] == "utf-8"
    assert decode_html(data[len(codecs.BOM_UTF8) :])[1] == "windows-1252"


# --- personalized emails -------------------------------------------------------------------


def stored_variant(html: str, amp: str | None = None, rules: LinkRules = DEFAULT) -> Variant:
    """Variant 7 of campaign 3 with its placements as ingest stores them under ``rules``."""
    variant = Variant(id=7, campaign_id=3, name="A", html=html, amp=amp)
    for part, text in (("html", html), ("amp", amp)):
        if text is not None:
            for link in scan(text, part, rules).links:
                variant.placements.append(
                    Placement(part=part, position=link.position, tracked=link.tracked)
                )
    return variant


def test_personalization_mints_tokens_only_for_links_stored_as_tracked() -> None:
    """Settings changed after ingest (a domain taken off the do-not-track list) never make
    a stored skip answer a click: tokens go only to placements stored as tracked."""
    codec = TokenCodec(["fixture-secret-0123456789abcdef0123456789"])
    html = '<a href="https://a.example/">a</a> <a href="https://esp.example/x">b</a>'
    variant = stored_variant(html, rules=CUSTOM)  # esp.example was not tracked at ingest
    personalizer = Personalizer(codec, "http://t.example", DEFAULT)
    out = personalizer.render(personalizer.compile(variant), recipient_id=1)["html"]
    assert out is not None
    [token] = re.findall(r"http://t\.example/c/([A-Za-z0-9_.-]+)", out)
    assert codec.decode(token).position == 0
    assert out.endswith('<a href="https://esp.example/x">b</a>')


def test_personalized_parts_carry_signed_tokens_in_place_of_tracked_hrefs() -> None:
    """AMP links always use https, even when the tracking base is plain http."""
    codec = TokenCodec(["fixture-secret-0123456789abcdef0123456789"])
    personalizer = Personalizer(codec, "http://t.example", DEFAULT)
    html = _source("outlook_vml_button.html")
    amp = _source("amp4email.html")
    variant = stored_variant(html, amp)
    out = personalizer.render(personalizer.compile(variant), recipient_id=42)

    for part, text, base in (
        ("html", html, "http://t.example/c/"),
        ("amp", amp, "https://t.example/c/"),
    ):
        rendered = out[part]
        assert rendered is not None
        tokens = re.findall(re.escape(base) + r"([A-Za-z0-9_.-]+)", rendered)
        positions = [codec.decode(token).position for token in tokens]
        rows = CASES["outlook_vml_button.html" if part == "html" else "amp4email.html"].links
        expected = [
            position
            for position, row in enumerate(rows)
            if row.reason is None
            for _ in range(row.occurrences)
        ]
        assert positions == expected
        assert {codec.decode(token) for token in tokens} == {
            ClickToken(3, 7, part, position, 42) for position in expected
        }
        urls = iter(base + token for token in tokens)
        replacements = [
            (row.href, next(urls))
            for row in rows
            if row.reason is None
            for _ in range(row.occurrences)
        ]
        assert rendered == _replace_hrefs(text, replacements)


# --- campaigns -----------------------------------------------------------------------------


def test_campaign_catalog_stores_each_placement(session: Session) -> None:
    html = _source("outlook_vml_button.html")
    amp = _source("amp4email.html")
    created = create_campaign(
        session,
        "Spring",
        [VariantInput("A", html, amp)],
        rules=DEFAULT,
        max_part_bytes=1_000_000,
    )
    assert created.warnings == []
    (variant,) = created.campaign.variants
    stored = [
        (p.part, p.position, p.kind, p.href, p.destination, p.text, p.skip_reason, p.occurrences)
        for p in variant.placements
    ]
    expected = [
        (part, position, *row)
        for part, name in (("amp", "amp4email.html"), ("html", "outlook_vml_button.html"))
        for position, row in enumerate(CASES[name].links)
    ]
    # The HTML part also gets its hidden honeypot link, one past its last link, leading where
    # its first tracked link leads; the AMP part gets none.
    html_links = [row for row in expected if row[0] == "html"]
    first = next(row for row in html_links if row[6] is None)
    expected.append(("html", len(html_links), "honeypot", "", first[4], "", None, 1))
    assert sorted(stored) == sorted(expected)
    assert all(p.tracked == (p.skip_reason is None) for p in variant.placements)


def test_amp_part_pushed_over_the_size_limit_by_rewriting_is_flagged(session: Session) -> None:
    amp = _source("amp4email.html")
    # Just under the limit as sent; the one tracked link's URL grows when rewritten.
    padding = AMP_SIZE_LIMIT - len(amp.encode("utf-8")) - 20
    padded = amp.replace("</body>", "<p>" + "x" * padding + "</p></body>")
    assert len(padded.encode("utf-8")) < AMP_SIZE_LIMIT
    created = create_campaign(
        session,
        "Big",
        [VariantInput("A", _source("schemes.html"), padded)],
        rules=DEFAULT,
        max_part_bytes=1_000_000,
    )
    (warning,) = created.warnings
    assert "variant 'A'" in warning and f"{AMP_SIZE_LIMIT:,}-byte limit" in warning
