"""Merge tags: which syntax an href holds, and the real addresses that hold none.

Examples are written as they appear in real ``href`` values (already HTML-decoded), with
the percent-encoded form where link editors produce it.
"""

from __future__ import annotations

import re

import pytest

from app.ingest.links import has_merge_tag
from app.ingest.merge_tags import SYNTAXES, find_merge_tag

X = "https://x.example"

POSITIVE: list[tuple[str, str]] = [
    # Mailchimp
    ("mailchimp", "*|UNSUB|*"),
    ("mailchimp", X + "/?e=*|EMAIL|*"),
    ("mailchimp", X + "/r?id=*|UNIQID|*&list=*|LIST:UID|*"),
    ("mailchimp", X + "/?n=*|FIRST_NAME|Friend|*"),
    ("mailchimp", X + "/?e=*%7CEMAIL%7C*"),
    ("mailchimp", X + "/?e=%2A%7CEMAIL%7C%2A"),
    # Salesforce Marketing Cloud and other %%…%% platforms
    ("ampscript", "%%view_email_url%%"),
    ("ampscript", "%%=RedirectTo(@url)=%%"),
    ("ampscript", X + "/?e=%%emailaddr%%&id=%%_subscriberkey%%"),
    ("ampscript", X + "/?v=%%=v(@x)=%%"),
    ("ampscript", X + "/?n=%%FirstName%%"),
    ("ampscript", X + "/?n=%%FIRSTNAME%%"),
    ("ampscript", X + "/?n=%25%25FirstName%25%25"),
    ("ampscript", X + "/vo/?m=%%merge members_.memberidguid_%%"),
    # Liquid, Handlebars, Mustache, Jinja output
    ("liquid", "{{unsubscribe_url}}"),
    ("liquid", X + "/welcome?email={{ email }}"),
    ("liquid", X + "/?n={{ contact.FIRSTNAME }}"),
    ("liquid", X + "/?n={{lead.First Name}}"),
    ("liquid", X + '/?n={{var:name:""}}'),
    ("liquid", X + "/?n={{${first_name}}}"),
    ("liquid", X + "/?n={{ ${first_name} | default: 'there' }}"),
    ("liquid", "{{#each}}"),
    ("liquid", X + "/?e={{email"),  # unbalanced: AMP still reads it as a template
    ("liquid", X + "/?e=email}}"),
    ("liquid", X + "/?e=%7B%7Bemail%7D%7D"),
    ("liquid", X + "/?e=%7b%7b%20email%20%7d%7d"),
    # Liquid, Jinja, Twig tags
    ("liquid_tag", "{% unsubscribe_link %}"),
    ("liquid_tag", "{% url 'home' %}"),
    ("liquid_tag", X + "/?c={%- if vip -%}gold{%- endif -%}"),
    ("liquid_tag", X + "/?c={%=lead.city:default=there%}"),
    ("liquid_tag", X + "/%7B%25%20unsubscribe%20%25%7D"),
    # <% … %>
    ("erb", "<%asm_group_unsubscribe_raw_url%>"),
    ("erb", "<%asm_global_unsubscribe_raw_url%>"),
    ("erb", X + "/a.php?name=<%=escapeUrl(recipient.lastName)%>"),
    ("erb", "%3C%asm_preferences_raw_url%%3E"),
    ("erb", X + "/?u=%3C%25asm_preferences_raw_url%25%3E"),
    # Template Toolkit
    ("template_toolkit", "[% link %]"),
    ("template_toolkit", X + "/?u=[%- user.id -%]"),
    ("template_toolkit", X + "/?u=%5B%25%20user.id%20%25%5D"),
    # ${…}
    ("dollar_brace", X + "/${path}"),
    ("dollar_brace", X + "/?n=${firstName}"),
    ("dollar_brace", X + "/?n=%24%7Bfirst_name%7D"),
    # Zoho Campaigns
    ("zoho", X + "/?n=$[LI:FNAME]$"),
    ("zoho", X + "/?e=$[LI:EMAIL]$&c=$[ZC:CAMPAIGN_ID]$"),
    ("zoho", X + "/?n=%24%5BLI%3AFNAME%5D%24"),
    # {$…}
    ("brace_dollar", "{$unsubscribe}"),
    ("brace_dollar", X + "/?e={$email}"),
    ("brace_dollar", X + "/?e=%7B%24email%7D"),
    # {!…}
    ("brace_bang", X + "/?n={!firstname_fix}"),
    ("brace_bang", X + "/?e={!email}"),
    ("brace_bang", X + "/?n=%7B%21Contact.FirstName%7D"),
    # Mautic
    ("mautic", X + "/?e={contactfield=email}"),
    ("mautic", X + "/?n={contactfield=firstname|there}"),
    ("mautic", X + "/?e=%7Bcontactfield%3Demail%7D"),
    # single braces
    ("single_brace", "{unsubscribe}"),
    ("single_brace", X + "/?e={email}"),
    ("single_brace", "{unsubscribe_url}"),
    ("single_brace", X + "/?n={contact.firstName|there}"),
    ("single_brace", X + "/users/{UNSUBSCRIBE_URL}"),
    ("single_brace", X + "/?e=%7Bemail%7D"),
    # [[…]]
    ("double_bracket", "[[UNSUB_LINK_EN]]"),
    ("double_bracket", X + "/?n=[[var:name]]"),
    ("double_bracket", X + "/?n=[[firstname]]"),
    ("double_bracket", X + "/vo/?FileID=[[FileID]]"),
    ("double_bracket", X + "/?n=%5B%5Bvar%3Aname%5D%5D"),
    # [name,fallback=] and documented single-bracket names
    ("bracket", "[unsubscribe]"),
    ("bracket", "[Unsubscribe]"),
    ("bracket", "[Unsubscribe_Preferences]"),
    ("bracket", "[webversion]"),
    ("bracket", X + "/?from=[Sender_Name]"),
    ("bracket", X + "/?e=[Email]&y=[currentyear]"),
    ("bracket", X + "/?n=[firstname,fallback=there]"),
    ("bracket", X + "/?n=[Name,fallback=]"),
    ("bracket", X + "/?n=[Dateofbirth,fallback=]"),
    ("bracket", "[unsubscribe, https://x.example/bye]"),
    ("bracket", X + "/?u=[CAMPAIGN_URL:filter:urlencode]"),
    ("bracket", "[UNSUBSCRIBE_URL]"),
    ("bracket", X + "/?e=%5Bemail%5D"),
    ("bracket", X + "/?n=%5Bfirstname%2Cfallback%3D%5D"),
    # %…%
    ("percent", "%UNSUBSCRIBELINK%"),
    ("percent", "%UNSUBSCRIBELINK%&ALL"),
    ("percent", X + "/?e=%EMAIL%&n=%FIRSTNAME%"),
    ("percent", X + "/?n=%FIRST_NAME%"),
    ("percent", "%unsubscribe_url%"),
    ("percent", X + "/?n=%recipient.first%"),
    ("percent", X + "/?e=%25EMAIL%25"),
    # #…#
    ("hash", "#unsubscribe#"),
    ("hash", X + "/?n=#firstname#"),
    ("hash", X + "/?n=##firstname##"),
    ("hash", "##NEWSMAN:view_online##"),
    ("hash", X + "/?n=%23firstname%23"),
]

# Real addresses, as browsers send them: no platform fills anything in here.
NEGATIVE: list[str] = [
    X + "/",
    X + "/?sort=[price]",
    X + "/?a[b]=1",
    X + "/?a[]=1&a[]=2",
    X + "/shoes?filter[size]=42&ids[]=7",
    X + "/?filter[name]=x",
    X + "/?filter[email]=x",  # a documented name, but as an array key
    X + "/?sort=%5Bprice%5D",
    X + "/caf%C3%A9",
    X + "/%E2%80%99s",
    X + "/caf%c3%a9",
    X + "/?q=%E2%80%9CHello%E2%80%9D",
    X + "/%F0%9F%98%80%F0%9F%98%80",
    X + "/?q=100%25",
    X + "/?q=50%25%20off",
    X + "/?q=a%20b%20c%20d",
    X + "/?q=ABC%20DEF%20GHI",
    X + "/%C3%89COLE%20",
    X + "/?t=%20and_more%20",
    X + "/{}",
    X + "/?q={}",
    X + '/?q={"a":1}',
    X + "/?q=%7B%22a%22%3A1%7D",
    X + "/?q={%22a%22:1}",
    X + "/?q=[1,2,3]",
    X + "/?q=[[1,2],[3,4]]",
    X + "/page#section-2",
    X + "/#/settings",
    X + "/p?q=1#top",
    X + "/price?amount=$10",
    X + "/a*b|c",
    X + "/50%",
    "http://[2001:db8::1]:8080/p",
    "https://bücher.example/straße?q=ü",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
    "https://www.google.com/maps/place/Eiffel+Tower/@48.8583701,2.2944813,17z",
    "https://twitter.com/intent/tweet?text=Hello%20world&url=https%3A%2F%2Fx.example%2F",
    "https://shop.example/products/shoe?variant=123&utm_source=newsletter&utm_medium=email",
    "https://example.com/search?q=C%2B%2B%20%26%20Rust",
]


@pytest.mark.parametrize(("expected", "value"), POSITIVE)
def test_tag_is_found_and_named(expected: str, value: str) -> None:
    syntax = find_merge_tag(value)
    assert syntax is not None, value
    assert syntax.id == expected
    assert has_merge_tag(value)


@pytest.mark.parametrize("value", NEGATIVE)
def test_real_address_holds_no_tag(value: str) -> None:
    assert find_merge_tag(value) is None
    assert not has_merge_tag(value)


def test_every_syntax_has_examples() -> None:
    counts = {syntax.id: 0 for syntax in SYNTAXES}
    for expected, _ in POSITIVE:
        counts[expected] += 1
    assert {id_: n for id_, n in counts.items() if n < 2} == {}


def test_syntax_ids_are_short_stable_codes() -> None:
    ids = [syntax.id for syntax in SYNTAXES]
    assert len(set(ids)) == len(ids)
    for id_ in ids:
        assert re.fullmatch(r"[a-z][a-z_]{0,19}", id_), id_
    assert all(syntax.name for syntax in SYNTAXES)


def test_first_syntax_in_order_names_a_mixed_value() -> None:
    # {{email}} also holds {email}, and %%NAME%% holds %NAME%: the specific syntax wins.
    syntax = find_merge_tag(X + "/?a=[unsubscribe]&b={{email}}")
    assert syntax is not None
    assert syntax.id == "liquid"


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("{{", "liquid"),
        ("{{{", "liquid"),
        ("{%", "liquid_tag"),
        ("<%", "erb"),
        ("%%a", "ampscript"),
        ("%A%", "ampscript"),
        ("${", "dollar_brace"),
        ("{!a", "brace_bang"),
        ("%a.", "percent"),
        ("#a", "hash"),
        ("%7B", "liquid"),
        ("*|", None),
        ("*|a", None),
        ("**|", None),
        ("%%", None),
        ("%A", None),
        ("%AB", None),
        ("%ab_", None),
        ("<", None),
        ("[%", None),
        ("[%a", None),
        ("[[a", None),
        ("[[[", None),
        ("[a", None),
        ("[email", None),
        ("$[a:", None),
        ("{a", None),
        ("{a=", None),
        ("{a|", None),
        ("a", None),
    ],
)
def test_adversarial_input_is_searched(unit: str, expected: str | None) -> None:
    # About 100 kB of a repeated tag opening, mostly with no closing. Every pattern stops its
    # open-ended runs at the character that opened the tag, so the search is linear in the
    # length of the value; a pattern that backtracked would make this test hang.
    value = unit * (100_000 // len(unit))
    syntax = find_merge_tag(value)
    assert (syntax.id if syntax else None) == expected


@pytest.mark.parametrize(
    "opening", ["*|", "%%", "[%", "[[a", "[a", "{a", "{a=", "$[a:", "%A", "#a"]
)
def test_one_long_unclosed_tag_is_searched(opening: str) -> None:
    assert find_merge_tag(X + "/?q=" + opening + "b" * 100_000) is None
