"""Raw clicks for export, a page at a time, with a cursor instead of page numbers.

An export walks every click a ``ClickFilter`` covers in the order they happened (clicked_at,
then the row id to break ties). Each page ends with ``next_cursor``, an opaque token naming
the last click returned; the next page starts strictly after it (keyset pagination). Unlike
OFFSET, a page costs the same however deep the walk is, and clicks recorded meanwhile cannot
shift rows between pages: newer clicks are simply found on later pages. A click recorded late
with a time *before* the cursor (replayed from a spool after an outage) is behind the walk
and not returned; an export bounded by ``until`` in the past and started after the writer
caught up is complete.

The cursor holds only a position, the click's time and row id, packed in 17 bytes and
encoded as URL-safe base64 (23 characters): nothing that identifies a recipient. It is not
signed; a forged cursor can only name another position in the same order, and anything that
is not a cursor this module wrote is refused with ``InvalidInput("invalid_cursor")``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from app.clicks.machines import stored_reasons
from app.errors import InvalidInput
from app.models import Click, Placement, Recipient, Variant
from app.reports.stats import REPORTED, ClickFilter, click_filters, in_utc

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_VERSION = 1
_LAYOUT = struct.Struct(">BQQ")  # version, microseconds since the epoch, click row id
_CURSOR_LENGTH = 23  # base64 of 17 bytes, without padding
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID = 2**63 - 1  # BIGINT
_MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(
    microseconds=1
)


@dataclass(frozen=True)
class ExportedClick:
    """One click as an export shows it."""

    click_id: str  # minted by the redirector, unique across all clicks
    clicked_at: str  # ISO 8601 in UTC, microseconds included: 2025-03-01T08:05:00.000000Z
    variant: str  # the variant's name
    part: str  # "html" | "amp"
    placement_id: int
    position: int  # the placement's position in its part
    recipient: str  # the sender's recipient id
    method: str
    device: str
    client: str | None
    user_agent: str
    ip_prefix: str | None  # IPv4 /24 or IPv6 /48, never the full address
    label: str  # "human" | "machine" (app.clicks.machines)
    reasons: tuple[str, ...]  # the rules that labelled it machine, empty for human
    certainty: str | None  # "certain" | "likely"; None for human
    country: str | None = None  # ISO 3166-1 alpha-2 of ip_prefix's registration, if any


@dataclass(frozen=True)
class ClickPage:
    """One page of an export; ``next_cursor`` is None on the last page."""

    rows: tuple[ExportedClick, ...]
    next_cursor: str | None


def _micros(moment: datetime) -> int:
    return (in_utc(moment) - _EPOCH) // timedelta(microseconds=1)


def _text(packed: bytes) -> str:
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def encode_cursor(clicked_at: datetime, row_id: int) -> str:
    """The cursor naming one click's place in the export order."""
    return _text(_LAYOUT.pack(_VERSION, _micros(clicked_at), row_id))


def _invalid(cursor: str) -> InvalidInput:
    shown = cursor if len(cursor) <= 40 else cursor[:40] + "..."
    return InvalidInput("invalid_cursor", f"not a cursor from a previous page: {shown!r}")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(clicked_at, row id)`` from a cursor ``encode_cursor`` wrote; anything else, however
    close, raises ``InvalidInput("invalid_cursor")``."""
    if len(cursor) != _CURSOR_LENGTH or not cursor.isascii():
        raise _invalid(cursor)
    try:
        packed = base64.urlsafe_b64decode(cursor + "=")
    except (binascii.Error, ValueError) as exc:
        raise _invalid(cursor) from exc
    # The decoder skips characters outside the alphabet and ignores spare bits: only the
    # one spelling this module writes is accepted.
    if len(packed) != _LAYOUT.size or _text(packed) != cursor:
        raise _invalid(cursor)
    version, micros, row_id = _LAYOUT.unpack(packed)
    if version != _VERSION or micros > _MAX_MICROS or not 1 <= row_id <= _MAX_ID:
        raise _invalid(cursor)
    return _EPOCH + timedelta(microseconds=micros), row_id


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("invalid_limit", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def _query(where: ClickFilter) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Click.id,
            Click.click_id,
            Click.clicked_at,
            Variant.name,
            Click.part,
            Click.placement_id,
            Placement.position,
            Recipient.external_id,
            Click.method,
            Click.device,
            Click.client,
            Click.user_agent,
            Click.ip_prefix,
            Click.label,
            Click.reasons,
            Click.certainty,
            Click.country,
        )
        .join(Variant, Variant.id == Click.variant_id)
        .join(Placement, Placement.id == Click.placement_id)
        .join(Recipient, Recipient.id == Click.recipient_id)
        .where(*click_filters(where), REPORTED)
        .order_by(Click.clicked_at, Click.id)
    )


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with a ``Z`` and a fixed width (microseconds always
    shown), so exported times sort as text too."""
    return in_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _exported(values: Any) -> ExportedClick:
    return ExportedClick(
        click_id=values.click_id,
        clicked_at=iso_utc(values.clicked_at),
        variant=values.name,
        part=values.part,
        placement_id=int(values.placement_id),
        position=int(values.position),
        recipient=values.external_id,
        method=values.method,
        device=values.device,
        client=values.client,
        user_agent=values.user_agent,
        ip_prefix=values.ip_prefix,
        label=values.label,
        reasons=stored_reasons(values.reasons),
        certainty=values.certainty,
        country=values.country,
    )


def click_page(
    session: Session, where: ClickFilter, *, after: str | None = None, limit: int = DEFAULT_LIMIT
) -> ClickPage:
    """The clicks ``where`` covers, oldest first, starting after the click ``after`` names
    (from the start when None), at most ``limit`` (1 to 1,000) of them.

    One more row than asked for is read to tell whether another page follows, so the last
    page says so itself (``next_cursor`` None) instead of needing an empty page after it.
    """
    _check_limit(limit)
    query = _query(where)
    if after is not None:
        at, row_id = decode_cursor(after)
        query = query.where(Click.clicked_at >= at, or_(Click.clicked_at > at, Click.id > row_id))
    found = session.execute(query.limit(limit + 1)).all()
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last.clicked_at, int(last.id))
    return ClickPage(tuple(_exported(row) for row in page), next_cursor)
