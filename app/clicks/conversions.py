"""Conversions: an order the sender reports against the click that led to it.

With a campaign's ``click_param`` set, the redirector hands each click's id to the
destination (``?cm_click=<id>``); the sender's shop keeps it with the order and reports it
(``POST /api/v1/conversions``). The conversion is filed under the click's campaign, variant,
part, link and recipient, and added to ``conversion_stats`` (per link and currency) in the
same transaction. ``order_id`` makes it idempotent: the same order reported again changes
nothing; the same order id with another click, value or currency is refused. docs/funnel.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clicks.statements import dialect_insert, table_of
from app.errors import ClickmapError, NotFound
from app.models import Click, Conversion, ConversionStats, utcnow

MICROS = Decimal(1_000_000)


class OrderConflict(ClickmapError):
    def __init__(self, message: str) -> None:
        super().__init__("order_conflict", message, 409)


@dataclass(frozen=True)
class Recorded:
    conversion: Conversion
    created: bool  # False: the order was reported before, with the same figures


def to_micros(value: Decimal | None) -> int | None:
    return None if value is None else int((value * MICROS).to_integral_value())


def from_micros(micros: int | None) -> str | None:
    """A stored value as a plain decimal string: ``19.99``, ``100``, never ``1E+2``."""
    return None if micros is None else format((Decimal(micros) / MICROS).normalize(), "f")


def record_conversion(
    session: Session,
    click_id: str,
    order_id: str,
    value: Decimal | None = None,
    currency: str | None = None,
    converted_at: datetime | None = None,
) -> Recorded:
    """Record an order against a stored click, once. Raises ``NotFound`` (no such click:
    a wrong id, or one not stored yet, which a retry a few seconds later finds) or
    ``OrderConflict``. The caller owns the transaction."""
    click = session.execute(
        select(
            Click.campaign_id, Click.variant_id, Click.part, Click.placement_id, Click.recipient_id
        ).where(Click.click_id == click_id)
    ).first()
    if click is None:
        raise NotFound("click_not_found", f"no click with id {click_id!r} is recorded (yet)")
    micros = to_micros(value)
    currency = currency.upper() if currency else None
    insert = dialect_insert(session)
    inserted = session.execute(
        insert(table_of(Conversion))
        .values(
            campaign_id=click.campaign_id,
            order_id=order_id,
            click_id=click_id,
            variant_id=click.variant_id,
            part=click.part,
            placement_id=click.placement_id,
            recipient_id=click.recipient_id,
            value_micros=micros,
            currency=currency,
            converted_at=converted_at or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "order_id"])
        .returning(table_of(Conversion).c.id)
    ).first()
    found = session.scalars(
        select(Conversion).where(
            Conversion.campaign_id == click.campaign_id, Conversion.order_id == order_id
        )
    ).one()
    if inserted is None:
        if (found.click_id, found.value_micros, found.currency) != (click_id, micros, currency):
            raise OrderConflict(
                f"order {order_id!r} was reported before with another click, value or currency"
            )
        return Recorded(found, False)
    stats = table_of(ConversionStats)
    upsert = insert(stats).values(
        placement_id=click.placement_id,
        currency=currency or "",
        campaign_id=click.campaign_id,
        conversions=1,
        value_micros=micros or 0,
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["placement_id", "currency"],
            set_={
                "conversions": stats.c.conversions + 1,
                "value_micros": stats.c.value_micros + upsert.excluded.value_micros,
            },
        )
    )
    return Recorded(found, True)
