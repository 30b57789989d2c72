"""The closed sets of values the data is made of, defined once for every stage.

``PARTS``: the parts of an email variant. Their order is part of the click token's format
(``app.tokens`` stores a part as its index here), so it is never reordered, only appended to.

``HONEYPOT``: the kind of the hidden link ingest adds to each HTML part, next to the
sender's ``a``, ``area`` and ``vml`` links. It is tracked, so whatever clicks it is recorded
(docs/machine-clicks.md), but it is no link of the sender's: reports leave it out.

``DEVICES``: the device classes a click is filed under (``app.clicks.devices`` decides one
per user agent; reports split and filter by them), in the order reports show them.
"""

from __future__ import annotations

from typing import Literal, get_args

Part = Literal["html", "amp"]
PARTS: tuple[Part, ...] = get_args(Part)

HONEYPOT = "honeypot"

DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "other")
