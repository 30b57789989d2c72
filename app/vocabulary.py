"""The closed sets of values the data is made of, defined once for every stage.

``PARTS``: the parts of an email variant. Their order is part of the click token's format
(``app.tokens`` stores a part as its index here), so it is never reordered, only appended to.

``HONEYPOT``: the kind of the hidden link ingest adds to each HTML part, next to the
sender's ``a``, ``area`` and ``vml`` links. It is tracked, so whatever clicks it is recorded
(docs/machine-clicks.md), but it is no link of the sender's: reports leave it out.

``DEVICES``: the device classes a click is filed under (``app.clicks.devices`` decides one
per user agent; reports split and filter by them), in the order reports show them.

``CLIENTS``: the email clients a click is filed under (``app.clicks.devices`` names one per
user agent, or None when no browser opened the link), in the order reports list them: the
mail programs and apps that name themselves, the mailbox providers' image proxies, then the
browsers a link opens in when the email was read in webmail or the app handed the link on,
``IN_APP_BROWSER`` for an app's own web view and ``OTHER_BROWSER`` for any other browser.
"""

from __future__ import annotations

from typing import Literal, get_args

Part = Literal["html", "amp"]
PARTS: tuple[Part, ...] = get_args(Part)

HONEYPOT = "honeypot"

DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "other")

IN_APP_BROWSER = "In-app browser"
OTHER_BROWSER = "Other browser"
CLIENTS: tuple[str, ...] = (
    "Apple Mail",
    "Outlook",
    "Gmail app",
    "Yahoo Mail app",
    "Samsung Email",
    "Thunderbird",
    "Spark",
    "Airmail",
    "Gmail image proxy",
    "Yahoo Mail proxy",
    "Chrome",
    "Safari",
    "Firefox",
    "Edge",
    "Samsung Internet",
    "Opera",
    IN_APP_BROWSER,
    OTHER_BROWSER,
)
