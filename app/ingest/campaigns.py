"""Campaigns in, personalized emails out: the sender's side of Clickmap.

``create_campaign`` validates every part before writing anything, so bad input leaves no
half-written campaign. ``Personalizer`` compiles each part once and then, per recipient, only
mints tokens and joins precomputed text: that is what makes personalization fast.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import NotFound, TooLarge, Unprocessable
from app.ingest.links import skip_message
from app.ingest.rewriting import (
    HONEYPOT_AFTER,
    HONEYPOT_BEFORE,
    CompiledPart,
    LinkRules,
    NotHTMLError,
    check_html,
    scan,
)
from app.models import Campaign, Delivery, Placement, Recipient, SentEmail, Variant, utcnow
from app.tokens import (
    MAX_POSITION,
    MessageIdCodec,
    TokenCodec,
    message_id_codec,
    open_codec,
    token_codec,
)
from app.urls import UnsafeDestination, location_for
from app.vocabulary import HONEYPOT, PARTS, Part

if TYPE_CHECKING:
    from flask import Flask

# The header a sender may add to each email to carry its Clickmap id (docs/esp-webhooks.md).
ID_HEADER = "X-Clickmap-Id"
# Gmail and other AMP clients refuse an AMP part larger than this.
AMP_SIZE_LIMIT = 200_000
MAX_RECIPIENT_ID_LENGTH = 255


@dataclass(frozen=True)
class VariantInput:
    name: str
    html: str
    amp: str | None = None


@dataclass
class CreatedCampaign:
    campaign: Campaign
    warnings: list[str] = field(default_factory=list)


def _check_part(variant: str, part: str, text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise TooLarge(
            "part_too_large",
            f"variant {variant!r}: the {part} part is {size:,} bytes; the limit is {max_bytes:,}",
        )
    try:
        check_html(text)
    except NotHTMLError as exc:
        raise Unprocessable("not_html", f"variant {variant!r}: the {part} part {exc}") from exc


def create_campaign(
    session: Session,
    name: str,
    variants: Sequence[VariantInput],
    *,
    rules: LinkRules,
    max_part_bytes: int,
    utm: Mapping[str, str] | None = None,
    track_opens: bool = True,
    click_param: str | None = None,
) -> CreatedCampaign:
    """Validate, catalog and store a campaign with its variants and their placements."""
    check_click_param(click_param)
    name = (name or "").strip()
    if not name:
        raise Unprocessable("invalid_campaign", "a campaign needs a non-empty name")
    if not variants:
        raise Unprocessable("invalid_campaign", "a campaign needs at least one variant")
    seen: set[str] = set()
    for v in variants:
        if not v.name or not v.name.strip():
            raise Unprocessable("invalid_variant", "every variant needs a non-empty name")
        if v.name in seen:
            raise Unprocessable("invalid_variant", f"variant name {v.name!r} is used twice")
        seen.add(v.name)
        _check_part(v.name, "html", v.html, max_part_bytes)
        if v.amp is not None:
            _check_part(v.name, "amp", v.amp, max_part_bytes)
    if utm is not None and not all(
        isinstance(k, str) and k.startswith("utm_") and isinstance(val, str)
        for k, val in utm.items()
    ):
        raise Unprocessable("invalid_utm", "utm must map utm_* names to strings")

    campaign = Campaign(
        name=name, utm=dict(utm) if utm else None, track_opens=track_opens, click_param=click_param
    )
    warnings: list[str] = []
    for v in variants:
        variant = Variant(name=v.name, html=v.html, amp=v.amp)
        campaign.variants.append(variant)
        parts: list[tuple[Part, str]] = [("html", v.html)]
        if v.amp is not None:
            parts.append(("amp", v.amp))
        for part, text in parts:
            result = scan(text, part, rules)
            if len(result.links) > MAX_POSITION + 1:
                raise Unprocessable(
                    "too_many_links",
                    f"variant {v.name!r}: the {part} part has {len(result.links):,} links; a "
                    f"part may have at most {MAX_POSITION + 1:,}",
                )
            for link in result.links:
                location = _location(link.destination, utm) if link.tracked else None
                tracked = location is not None
                reason = link.skip_reason if tracked or not link.tracked else "invalid_url"
                variant.placements.append(
                    Placement(
                        campaign=campaign,
                        part=part,
                        position=link.position,
                        kind=link.kind,
                        href=link.href,
                        destination=link.destination,
                        location=location,
                        text=link.text[:200],
                        tracked=tracked,
                        skip_reason=reason,
                        occurrences=link.occurrences,
                    )
                )
            if part == "html":
                _add_honeypot(variant, campaign, len(result.links))
            if part == "amp":
                warnings.extend(_amp_size_warning(v.name, text, result.compiled))
    session.add(campaign)
    session.flush()
    return CreatedCampaign(campaign, warnings)


# What a conversion parameter's name may be: a plain query-parameter name, never one that
# needs escaping (docs/funnel.md).
CLICK_PARAM = re.compile(r"[A-Za-z0-9_.~-]{1,40}")


def check_click_param(name: str | None) -> None:
    if name is not None and not CLICK_PARAM.fullmatch(name):
        raise Unprocessable(
            "invalid_click_param",
            f"click_param must be 1 to 40 letters, digits or _ . ~ - (e.g. cm_click), got {name!r}",
        )


_UNSET: Any = object()


def update_settings(
    campaign: Campaign, *, track_opens: bool | None = None, click_param: str | None = _UNSET
) -> None:
    """Change a campaign's tracking settings: the open pixel in emails personalized from
    now on, and the click-id parameter of redirects (running redirectors pick it up within
    10 seconds). ``click_param=None`` switches the parameter off."""
    if track_opens is not None:
        campaign.track_opens = track_opens
    if click_param is not _UNSET:
        check_click_param(click_param)
        campaign.click_param = click_param


def _add_honeypot(variant: Variant, campaign: Campaign, position: int) -> None:
    """Give the HTML part its hidden link (docs/machine-clicks.md), one past its last link.

    It leads where the part's first tracked link leads: a scanner that follows it gets the
    same 302 to a page of the sender's that it gets for that link, and the email names no
    address the sender did not write. A part with no tracked link has no clicks to tell
    apart and gets none, and neither does a part whose links use every token position.
    """
    first = next((p for p in variant.placements if p.part == "html" and p.tracked), None)
    if first is None or position > MAX_POSITION:
        return
    variant.placements.append(
        Placement(
            campaign=campaign,
            part="html",
            position=position,
            kind=HONEYPOT,
            href="",
            destination=first.destination,
            location=first.location,
            text="",
            tracked=True,
            skip_reason=None,
            occurrences=1,
        )
    )


def _location(destination: str | None, utm: Mapping[str, str] | None) -> str | None:
    """The redirect's ``Location`` for a link, or None when it cannot be computed (then the
    link is not tracked: the redirector never has to refuse a tracked link)."""
    if destination is None:
        return None
    try:
        return location_for(destination, utm)
    except UnsafeDestination:
        return None


def _amp_size_warning(variant: str, text: str, compiled: CompiledPart) -> list[str]:
    # Tracked URLs are all the same length, so one render tells the size of every recipient's.
    sample = compiled.render(["https://" + "x" * 70] * (max(compiled.slots, default=-1) + 1))
    size = len(sample.encode("utf-8"))
    if size <= AMP_SIZE_LIMIT:
        return []
    return [
        f"variant {variant!r}: the rewritten AMP part is about {size:,} bytes, over the "
        f"{AMP_SIZE_LIMIT:,}-byte limit of AMP email clients; they will show the HTML part"
    ]


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.deleted_at is not None:
        raise NotFound("campaign_not_found", f"no campaign with id {campaign_id}")
    return campaign


def get_variant(campaign: Campaign, name: str) -> Variant:
    for variant in campaign.variants:
        if variant.name == name:
            return variant
    names = ", ".join(v.name for v in campaign.variants)
    raise NotFound("variant_not_found", f"campaign {campaign.id} has no variant {name!r} ({names})")


def catalog(campaign: Campaign) -> dict[str, Any]:
    """The campaign as the API and the CLI show it: every link of the sender's, tracked or
    skipped (the hidden honeypot link is ours, not theirs, so it is not listed)."""
    return {
        "id": campaign.id,
        "name": campaign.name,
        "created_at": campaign.created_at.isoformat(),
        "utm": campaign.utm,
        "track_opens": campaign.track_opens,
        "click_param": campaign.click_param,
        "variants": [
            {
                "name": v.name,
                "parts": ["html"] + (["amp"] if v.amp is not None else []),
                "links": [
                    {
                        "part": p.part,
                        "position": p.position,
                        "kind": p.kind,
                        "href": p.href,
                        "destination": p.destination,
                        "text": p.text,
                        "tracked": p.tracked,
                        "skip_reason": p.skip_reason,
                        "skip_message": skip_message(p.skip_reason, p.href) or None,
                    }
                    for p in v.placements
                    if p.kind != HONEYPOT
                ],
            }
            for v in campaign.variants
        ],
    }


def _insert_ignore(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def ensure_recipients(session: Session, external_ids: Iterable[str]) -> dict[str, int]:
    """Map sender recipient ids to internal ids, creating the missing ones (race-safe)."""
    wanted = list(dict.fromkeys(external_ids))
    for rid in wanted:
        if (
            not isinstance(rid, str)
            or not rid.strip()
            or len(rid) > MAX_RECIPIENT_ID_LENGTH
            or "\x00" in rid
        ):
            raise Unprocessable(
                "invalid_recipient",
                f"recipient ids are non-empty strings of at most {MAX_RECIPIENT_ID_LENGTH} "
                f"characters, got {rid!r}",
            )
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        missing = set(chunk)
        rows = session.execute(
            select(Recipient.external_id, Recipient.id).where(Recipient.external_id.in_(chunk))
        )
        for ext, internal in rows:
            found[ext] = internal
            missing.discard(ext)
        if missing:
            insert = _insert_ignore(session)
            session.execute(
                insert(Recipient)
                .values([{"external_id": ext} for ext in missing])
                .on_conflict_do_nothing(index_elements=["external_id"])
            )
            rows = session.execute(
                select(Recipient.external_id, Recipient.id).where(
                    Recipient.external_id.in_(missing)
                )
            )
            found.update({ext: internal for ext, internal in rows})
    return found


def record_deliveries(
    session: Session,
    campaign: Campaign,
    variant_name: str,
    external_ids: Sequence[str],
    delivered_at: datetime | None = None,
) -> int:
    """Record that these recipients were sent this variant. Idempotent; returns rows added.

    ``delivered_at`` (default: now) is when the email reached them; the machine-click rules
    judge a click's timing against it (``app.clicks.machines.too_soon``)."""
    variant = get_variant(campaign, variant_name)
    ids = ensure_recipients(session, external_ids)
    if not ids:
        return 0
    at = delivered_at or utcnow()
    rows = [
        {
            "campaign_id": campaign.id,
            "variant_id": variant.id,
            "recipient_id": rid,
            "delivered_at": at,
        }
        for rid in ids.values()
    ]
    return _insert_new(session, Delivery, rows)


def record_sent(session: Session, variant: Variant, recipient_ids: Iterable[int]) -> None:
    """Record that these recipients were personalized ``variant`` (idempotent)."""
    rows = [
        {"variant_id": variant.id, "recipient_id": rid, "campaign_id": variant.campaign_id}
        for rid in sorted(set(recipient_ids))
    ]
    _insert_new(session, SentEmail, rows)


def _insert_new(
    session: Session, model: type[Delivery] | type[SentEmail], rows: list[dict[str, Any]]
) -> int:
    """Insert the (variant, recipient) rows not there yet; returns how many were added.

    In chunks of 1,000: one statement for a send of 20,000 would pass PostgreSQL's limit of
    65,535 bound parameters. RETURNING counts the rows added on both databases (psycopg's
    rowcount for such an insert is -1)."""
    insert = _insert_ignore(session)
    added = 0
    for start in range(0, len(rows), 1000):
        added += len(
            session.execute(
                insert(model)
                .values(rows[start : start + 1000])
                .on_conflict_do_nothing(index_elements=["variant_id", "recipient_id"])
                .returning(model.recipient_id)
            ).all()
        )
    return added


@dataclass(frozen=True)
class _CompiledVariant:
    campaign_id: int
    variant_id: int
    parts: dict[str, tuple[CompiledPart, tuple[int, ...]]]  # part -> (template, tracked positions)
    # part -> the slot of the open pixel's URL (docs/opens.md), for parts that carry one
    pixels: dict[str, int] = field(default_factory=dict)


# The open pixel (docs/opens.md), written around its URL: 1x1, no border, no margin, no
# text for screen readers. It goes where the honeypot goes, right after ``<body>``, so an
# email clipped for its length (Gmail clips past 102 KB) still loads it.
PIXEL_BEFORE = {
    "html": '<img src="',
    "amp": '<amp-img src="',
}
PIXEL_AFTER = {
    "html": '" width="1" height="1" alt="" style="display:block;width:1px;height:1px;'
    'border:0;margin:0;padding:0">',
    # AMP for Email has no amp-pixel or amp-analytics: an amp-img is its open pixel.
    "amp": '" width="1" height="1" alt="" layout="fixed"></amp-img>',
}


class Personalizer:
    """Per-recipient emails from templates compiled once per variant (cached: parts are
    immutable once stored)."""

    def __init__(
        self,
        codec: TokenCodec,
        base_url: str,
        rules: LinkRules,
        *,
        message_ids: MessageIdCodec | None = None,
        pixel_codec: TokenCodec | None = None,
    ) -> None:
        self.codec = codec
        self.message_ids = message_ids
        self.pixel_codec = pixel_codec
        self.rules = rules
        # AMP clients only follow https links, and load only https images.
        amp_base = "https://" + base_url.split("://", 1)[1]
        self.base = {"html": base_url + "/c/", "amp": amp_base + "/c/"}
        self.pixel_base = {"html": base_url + "/o/", "amp": amp_base + "/o/"}
        self._cache: dict[tuple[int, bool], _CompiledVariant] = {}
        self._lock = threading.Lock()

    def compile(self, variant: Variant) -> _CompiledVariant:
        # Parts never change once stored; whether they carry the pixel may (a campaign
        # setting), so it is part of the key.
        opens = self.pixel_codec is not None and variant.campaign.track_opens
        with self._lock:
            cached = self._cache.get((variant.id, opens))
        if cached is not None:
            return cached
        parts: dict[str, tuple[CompiledPart, tuple[int, ...]]] = {}
        pixels: dict[str, int] = {}
        sources: tuple[tuple[Part, str | None], ...] = (
            ("html", variant.html),
            ("amp", variant.amp),
        )
        for part, text in sources:
            if text is None:
                continue
            # Which links are tracked is what was stored at ingest, not what the rules say
            # today: a token is only ever minted for a placement the redirector will follow.
            tracked = {p.position for p in variant.placements if p.part == part and p.tracked}
            scanned = scan(text, part, self.rules)
            template = scanned.compiled.keeping(tracked)
            for honeypot in variant.placements:
                if honeypot.part == part and honeypot.kind == HONEYPOT and honeypot.tracked:
                    template = template.inserting(
                        scanned.landing, HONEYPOT_BEFORE, honeypot.position, HONEYPOT_AFTER
                    )
            if opens:
                pixels[part] = max(template.slots, default=-1) + 1
                template = template.inserting(
                    scanned.landing, PIXEL_BEFORE[part], pixels[part], PIXEL_AFTER[part]
                )
            parts[part] = (template, tuple(sorted(tracked.intersection(template.slots))))
        compiled = _CompiledVariant(variant.campaign_id, variant.id, parts, pixels)
        with self._lock:
            self._cache[(variant.id, opens)] = compiled
        return compiled

    def render(self, compiled: _CompiledVariant, recipient_id: int) -> dict[str, str | None]:
        out: dict[str, str | None] = dict.fromkeys(PARTS)
        for part, (template, positions) in compiled.parts.items():
            urls: list[str] = [""] * (max(template.slots, default=-1) + 1)
            tokens = self.codec.encode_many(
                compiled.campaign_id, compiled.variant_id, part, positions, recipient_id
            )
            base = self.base[part]
            for pos, token in zip(positions, tokens, strict=True):
                urls[pos] = base + token
            pixel = compiled.pixels.get(part)
            if pixel is not None and self.pixel_codec is not None:
                token = self.pixel_codec.encode_many(
                    compiled.campaign_id, compiled.variant_id, part, [0], recipient_id
                )[0]
                urls[pixel] = self.pixel_base[part] + token
            out[part] = template.render(urls)
        return out

    def personalize(
        self, session: Session, variant: Variant, external_ids: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        """Each recipient's HTML and AMP, in the order given, with the email's Clickmap id
        (and the header carrying it) when the personalizer has a message id codec; each is
        recorded as sent (``sent_email``, the funnel's first step)."""
        compiled = self.compile(variant)
        ids = ensure_recipients(session, external_ids)
        record_sent(session, variant, ids.values())
        for ext in external_ids:
            parts = self.render(compiled, ids[ext])
            email: dict[str, Any] = {"recipient": ext, "variant": variant.name, **parts}
            if self.message_ids is not None:
                clickmap_id = self.message_ids.encode(
                    compiled.campaign_id, compiled.variant_id, ids[ext]
                )
                email["clickmapId"] = clickmap_id
                email["headers"] = {ID_HEADER: clickmap_id}
            yield email


def link_rules(app: Flask) -> LinkRules:
    """The link rules ``app`` is configured with (do-not-track domains, opt-out attribute)."""
    return LinkRules(
        do_not_track=tuple(d.lower() for d in app.config["DO_NOT_TRACK_DOMAINS"]),
        opt_out_attribute=app.config["OPT_OUT_ATTRIBUTE"],
    )


def personalizer(app: Flask) -> Personalizer:
    """The app's personalizer, built once per process so the CLI, the API and the demo share
    its cache of compiled parts."""
    found: Personalizer | None = app.extensions.get("clickmap.personalizer")
    if found is None:
        found = app.extensions["clickmap.personalizer"] = Personalizer(
            token_codec(app),
            app.config["TRACKING_BASE_URL"],
            link_rules(app),
            message_ids=message_id_codec(app),
            pixel_codec=open_codec(app),
        )
    return found
