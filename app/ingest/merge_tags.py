"""Merge tags: placeholders the sender's platform fills in per recipient after we are done.

A sending platform personalizes each copy of an email after Clickmap hands the email back:
``https://shop.example/?e=*|EMAIL|*`` becomes one address per recipient. If we put a tracking
redirect in front of such a link, the tag is frozen inside our signed URL and every recipient
lands on the literal, unfilled address. So a link whose ``href`` holds a merge tag is left
alone.

The guiding rule is "when in doubt, leave it alone": a link we skip still works exactly as
the sender wrote it (it is only missing from the reports), while a link we wrongly rewrite
breaks for every recipient. The patterns below therefore lean toward recognizing a tag, and
stop only where a real address a browser sends would otherwise go untracked (percent escapes
such as ``%E2%80%99``, array query strings such as ``?a[b]=1``). docs/merge-tags.md lists
each syntax with its source and every collision we know of.

Each syntax is one compiled pattern. None has a quantifier inside a repeated group, and
every open-ended run stops at the character that opened the tag, so a search is linear in
the length of the value whatever the value holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class MergeTagSyntax:
    """One family of placeholders, as the sender would recognize it."""

    id: str  # short stable code, lowercase, at most 20 characters
    name: str  # what the sender reads, with the platforms that use it


@dataclass(frozen=True)
class _Rule:
    syntax: MergeTagSyntax
    pattern: re.Pattern[str]


# Two hex digits right after a delimiter make it a percent escape (``{%22`` is ``{"``).
_NOT_ESCAPE = r"(?![0-9A-Fa-f]{2})"

# Single-bracket names the platforms document, matched case-insensitively. A bare ``[word]``
# is otherwise a real query string (``?sort=[price]``), so only these names count, plus the
# ``[name,fallback=…]`` form. Kept in sync with the list in docs/merge-tags.md.
BRACKET_NAMES: tuple[str, ...] = (
    # Campaign Monitor, Sendy
    "email",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "unsubscribe",
    "webversion",
    "currentday",
    "currentdaynumber",
    "currentmonth",
    "currentmonthnumber",
    "currentyear",
    # SendGrid Marketing Campaigns
    "unsubscribe_preferences",
    "sender_name",
    "sender_address",
    "sender_city",
    "sender_state",
    "sender_zip",
    # MailWizz-based services
    "fname",
    "lname",
    "unsubscribe_url",
    "update_profile_url",
    "web_version_url",
    "campaign_url",
    "subscriber_uid",
    "current_year",
)

_BRACKET = (
    r"(?<![\w\[\]])\[(?:"
    + "(?:"
    + "|".join(re.escape(name) for name in BRACKET_NAMES)
    + r")(?:[,:][^\[\]]*)?"  # [unsubscribe, https://…], [CAMPAIGN_URL:filter:urlencode]
    + r"|[A-Za-z_][\w .-]*,[ ]*fallback=[^\[\]]*"  # [firstname,fallback=there]
    + r")\]"
)


def _rule(id_: str, name: str, pattern: str, flags: int = 0) -> _Rule:
    return _Rule(MergeTagSyntax(id_, name), re.compile(pattern, flags))


# In matching order: when a value holds tags of several syntaxes, the first one names it.
# The order also settles overlaps (``{{email}}`` holds ``{email}``, ``%%NAME%%`` holds
# ``%NAME%``): the more specific syntax comes first.
_RULES: tuple[_Rule, ...] = (
    _rule(
        "mailchimp",
        "Mailchimp *|…|* (Mailchimp, Mailchimp Transactional)",
        r"\*\|[^*]+\|\*",
    ),
    _rule(
        "ampscript",
        "Salesforce Marketing Cloud AMPscript and personalization strings %%…%% "
        "(Marketing Cloud, Account Engagement/Pardot, Acoustic, Aurea ListManager)",
        r"%%[^%]+%%",
    ),
    _rule(
        "liquid",
        "Liquid / Handlebars / Jinja {{ … }} (Klaviyo, Braze, HubSpot, Iterable, Customer.io, "
        "Postmark, SendGrid, Brevo, Mailjet, Marketo, MailerSend, listmonk, …)",
        # Either half alone counts: AMP treats an unbalanced {{ or }} as template syntax.
        r"\{\{|\}\}",
    ),
    _rule(
        "liquid_tag",
        "Liquid / Jinja / Twig tags {% … %} (Klaviyo, Braze, Mailjet, MailerSend, Marketo, …)",
        r"\{%" + _NOT_ESCAPE + r"|%\}",
    ),
    _rule(
        "erb",
        "<% … %> tags (SendGrid <%asm_…_url%>, Adobe Campaign, ERB)",
        r"<%|%>",
    ),
    _rule(
        "template_toolkit",
        "Template Toolkit [% … %]",
        r"\[%[^\[\]]*%\]",
    ),
    _rule(
        "dollar_brace",
        "${…} expressions (Braze attributes such as ${first_name}, Actito, FreeMarker)",
        r"\$\{",
    ),
    _rule(
        "zoho",
        "Zoho Campaigns $[…:…]$",
        r"\$\[[A-Za-z_]\w*:[^\[\]]*\]",
    ),
    _rule(
        "brace_dollar",
        "{$…} variables (MailerLite, MailerSend)",
        r"\{\$",
    ),
    _rule(
        "brace_bang",
        "{!…} fields (AWeber, Salesforce merge fields)",
        r"\{![A-Za-z_]",
    ),
    _rule(
        "mautic",
        "{field=value} tokens (Mautic {contactfield=email})",
        r"\{[A-Za-z_]\w*=[^{}]*\}",
    ),
    _rule(
        "single_brace",
        "Single-brace fields {…} (Elastic Email {email}, Mautic {unsubscribe_url}, Sailthru, …)",
        r"\{[A-Za-z_][\w.:-]*(?:\|[^{}]*)?\}",
    ),
    _rule(
        "double_bracket",
        "Double-bracket fields [[…]] (Mailjet [[var:name]], GetResponse, Constant Contact, …)",
        r"\[\[\s*[A-Za-z_][^\[\]]*\]\]",
    ),
    _rule(
        "bracket",
        "Single-bracket fields [firstname,fallback=] / [unsubscribe] "
        "(Campaign Monitor, Sendy, SendGrid Marketing Campaigns, MailWizz)",
        _BRACKET,
        re.IGNORECASE,
    ),
    _rule(
        "percent",
        "Percent fields %…% (ActiveCampaign %FIRSTNAME%, Mailgun %recipient.name%)",
        # Upper case with at least three characters: a run of escapes such as %E2%80%99
        # leaves exactly two between its percent signs. Lower case only with a . or _
        # inside and not starting like an escape (Mailgun %unsubscribe_url%).
        r"%[A-Z][A-Z0-9_-]{2,}%"
        r"|%" + _NOT_ESCAPE + r"[a-z][a-z0-9]*[._][a-z0-9._]*%",
    ),
    _rule(
        "hash",
        "Hash fields #…# and ##…## (Flexmail #firstname#, Newsman ##firstname##)",
        r"(?<![\w#])##?[A-Za-z_][\w.:-]*#",
    ),
)

SYNTAXES: tuple[MergeTagSyntax, ...] = tuple(rule.syntax for rule in _RULES)


def find_merge_tag(value: str) -> MergeTagSyntax | None:
    """The first syntax whose tag appears in the href value (also after percent-decoding), or None.

    ``value`` is an ``href`` as the HTML parser gives it (entities decoded) and trimmed.
    Editors often percent-encode a tag typed into a link dialog (``*%7CEMAIL%7C*``), and the
    platform still fills it in, so the decoded form is checked too.
    """
    decoded = unquote(value) if "%" in value else value
    forms = (value,) if decoded == value else (value, decoded)
    for rule in _RULES:
        for form in forms:
            if rule.pattern.search(form):
                return rule.syntax
    return None
