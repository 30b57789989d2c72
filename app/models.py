"""The tables, as plain typed data. Logic lives in the domain modules that receive a session.

Clicks are append-only facts written by the redirector's writer; the ``*_stats`` and
``click_hourly`` tables are aggregates the same writer keeps up to date in the same
transaction, so reports read a few rows per link instead of counting raw clicks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.db import Base

# SQLite only auto-increments INTEGER PRIMARY KEY, so big ids are BIGINT elsewhere only.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL keeps the zone; SQLite stores text without one, so values are normalized to
    UTC on the way in and marked UTC on the way out. Code can then compare and subtract
    datetimes from either database without caring which one it was.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the campaign is deleted: its links then answer 410 Gone.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Optional UTM parameters, e.g. {"utm_source": "newsletter"}, added to each tracked
    # placement's location at ingest.
    utm: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    # Whether personalized emails carry the open pixel (docs/opens.md); on unless switched off.
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The query parameter that hands the click's id to the destination, for conversions
    # (e.g. ``cm_click``); None: the Location is the link's own (docs/funnel.md).
    click_param: Mapped[str | None] = mapped_column(String(40), default=None)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="campaign", order_by="Variant.id", cascade="all, delete-orphan"
    )


class Variant(Base):
    __tablename__ = "variant"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Both parts are stored exactly as the sender sent them (after decoding to text).
    html: Mapped[str] = mapped_column(Text)
    amp: Mapped[str | None] = mapped_column(Text, default=None)

    campaign: Mapped[Campaign] = relationship(back_populates="variants")
    placements: Mapped[list[Placement]] = relationship(
        back_populates="variant",
        order_by="(Placement.part, Placement.position)",
        cascade="all, delete-orphan",
    )


class Placement(Base):
    """One clickable spot in one part of one variant. What was sent is immutable once
    created; only the marketer's own ``label`` and ``cta`` flag change afterwards (through
    ``app.ingest.placements``, which records each change in ``placement_change``).

    The same destination in two places is two placements; a VML button and the ``<a>`` it
    stands in for are one placement with two occurrences.
    """

    __tablename__ = "placement"
    __table_args__ = (UniqueConstraint("variant_id", "part", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    variant_id: Mapped[int] = mapped_column(ForeignKey("variant.id", ondelete="CASCADE"))
    part: Mapped[str] = mapped_column(String(8))  # "html" | "amp"
    position: Mapped[int] = mapped_column(Integer)  # document order within the part
    kind: Mapped[str] = mapped_column(String(8))  # "a" | "area" | "vml"
    href: Mapped[str] = mapped_column(Text)  # as written in the source
    # Both are the WHATWG parser's serialization (app.urls): the destination is shown in
    # reports; the location, UTM included, is the redirect's Location, computed at ingest.
    # A placement is tracked only if its location could be computed.
    destination: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text, default=None)
    text: Mapped[str] = mapped_column(String(200), default="")
    tracked: Mapped[bool] = mapped_column(Boolean)
    skip_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    # The marketer's name for the link, shown instead of its text where set, and whether it
    # is a call to action (reports flag a CTA clicked by too few recipients).
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    cta: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    variant: Mapped[Variant] = relationship(back_populates="placements")
    campaign: Mapped[Campaign] = relationship()


class PlacementChange(Base):
    """One change a dashboard user made to a placement's label or CTA flag: who, when, and
    the value before and after, so a renamed report can always be traced back.

    The user's name is copied, not only referenced: the row must still say who it was after
    the account is deleted (``user_id`` is then set to null).
    """

    __tablename__ = "placement_change"
    __table_args__ = (Index("ix_placement_change_placement", "placement_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    placement_id: Mapped[int] = mapped_column(ForeignKey("placement.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), default=None
    )
    username: Mapped[str] = mapped_column(String(150))
    field: Mapped[str] = mapped_column(String(16))  # "label" | "cta"
    old_value: Mapped[str | None] = mapped_column(String(200), default=None)
    new_value: Mapped[str | None] = mapped_column(String(200), default=None)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Recipient(Base):
    """A sender's recipient id, mapped to a small internal id that tokens carry (encrypted)."""

    __tablename__ = "recipient"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# A delivery's status: ``delivered`` until the ESP reports a permanent bounce, a complaint
# or a drop (``app.clicks.delivery_events``). Only ``delivered`` rows count as delivered in
# the reports' click rate; the other three are the recipients who left it.
DELIVERED = "delivered"
BOUNCED = "bounced"
COMPLAINED = "complained"
DROPPED = "dropped"
DELIVERY_STATUSES = (DELIVERED, BOUNCED, COMPLAINED, DROPPED)


class Delivery(Base):
    """One variant sent to one recipient, and what became of it.

    ``delivered_at`` is when the email reached the recipient (as the sender or the ESP said);
    for a row first written by a bounce, complaint or drop it is that event's time.
    """

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("variant_id", "recipient_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    variant_id: Mapped[int] = mapped_column(ForeignKey("variant.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id", ondelete="CASCADE"))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=DELIVERED, server_default=DELIVERED)
    # When the status left ``delivered`` (None while it is ``delivered``).
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class DeliveryEvent(Base):
    """A delivery event an ESP reported by webhook, matched to its campaign and recipient.

    Stored once: ``idempotency_key`` is a digest of the event's fields, so an event posted
    again (an ESP's retry, a replayed request) conflicts with its first copy and changes
    nothing. No recipient address is kept: ``message_id`` is Clickmap's opaque id.
    """

    __tablename__ = "delivery_event"
    __table_args__ = (Index("ix_delivery_event_campaign_event", "campaign_id", "event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    esp: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))  # delivered, bounced, complained, dropped
    raw_type: Mapped[str] = mapped_column(String(64))  # the ESP's own name for it
    permanent: Mapped[bool | None] = mapped_column(Boolean, default=None)
    message_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variant.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookToken(Base):
    """A webhook token already accepted (Mailgun's one-use tokens), kept past its window.

    Mailgun's signature does not cover the event, so a captured request could be posted again
    within the window; the token is what makes it useless. Rows live in the database, shared
    by every worker and instance, and are pruned once older than the window. Only the
    token's SHA-256 is kept, so its length is bounded whatever was posted.
    """

    __tablename__ = "webhook_token"
    __table_args__ = (Index("ix_webhook_token_seen_at", "seen_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    esp: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Click(Base):
    """One recorded click: an append-only fact.

    ``click_id`` is minted by the redirector before it answers, so a click replayed after a
    crash or an outage is stored exactly once. The IP is kept truncated (IPv4 /24, IPv6 /48).

    No foreign keys (migration 0003): the writer inserts clicks by the thousand per
    transaction, and checking four parents per row cost more than half of the database's
    time per click. The parents are checked once per (link, recipient) pair instead, by the
    keys of ``placement_recipient``, which every stored click inserts or updates in the same
    transaction; an existing pair row implies its parents exist, as it goes with them by
    cascade. No cascade removes clicks, though: removing a campaign, placement or recipient
    for good must delete its clicks too, in the same transaction, after the parent (so that
    clicks a concurrent writer commits meanwhile go as well).

    On PostgreSQL the table is partitioned by month of ``clicked_at`` (migration 0012,
    ``app.clicks.partitions``), whose keys must hold the partition key: there the primary key
    is ``(id, clicked_at)`` and the unique key ``(click_id, clicked_at)``. A replay comes from
    the same spool record, time included, so it conflicts all the same. SQLite keeps the keys
    declared here.
    """

    __tablename__ = "click"
    __table_args__ = (
        Index("ix_click_placement_clicked_at", "placement_id", "clicked_at"),
        Index("ix_click_campaign_clicked_at", "campaign_id", "clicked_at"),
        # One recipient's clicks on one campaign: what the writer reads to label a click
        # (``app.clicks.labelling``), since a sweep is judged over the recipient's clicks.
        Index("ix_click_campaign_recipient", "campaign_id", "recipient_id", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    click_id: Mapped[str] = mapped_column(String(32), unique=True)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    campaign_id: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[int] = mapped_column(Integer)
    part: Mapped[str] = mapped_column(String(8))
    placement_id: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    device: Mapped[str] = mapped_column(String(16), default="other")
    client: Mapped[str | None] = mapped_column(String(64), default=None)
    ip_prefix: Mapped[str | None] = mapped_column(String(64), default=None)
    # The ISO 3166-1 alpha-2 country ``ip_prefix`` is registered to (``devices.country``);
    # None where it belongs to none (private or reserved networks) or there was no address.
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    # The request's ``Sec-Purpose`` (or legacy ``Purpose``) header: a prefetch is no click.
    purpose: Mapped[str | None] = mapped_column(String(64), default=None)
    # ``human`` or ``machine`` (``app.clicks.machines``), the rules that fired, comma
    # separated in ``machines.REASONS`` order ('' for a human), and how sure they are
    # (``certain`` or ``likely``; None for a human). Kept by ``app.clicks.labelling``.
    label: Mapped[str] = mapped_column(String(8), default="human", server_default="human")
    reasons: Mapped[str] = mapped_column(String(128), default="", server_default="")
    certainty: Mapped[str | None] = mapped_column(String(8), default=None)


class PlacementRecipient(Base):
    """Who clicked which placement: one row per (placement, recipient), kept by the writer.

    Its row count per placement is the unique-click figure, so reports never run
    ``COUNT(DISTINCT)`` over raw clicks.
    """

    __tablename__ = "placement_recipient"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    first_clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    # Of ``clicks``, those labelled human: the pair counts as a human clicker while > 0.
    human_clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    device: Mapped[str] = mapped_column(String(16), default="other")


class PlacementStats(Base):
    """Running totals per placement: total clicks and distinct recipients."""

    __tablename__ = "placement_stats"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    unique: Mapped[int] = mapped_column(BigInteger, default=0)
    # The same two figures over the clicks labelled human (``app.clicks.labelling``).
    human_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    human_unique: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Recipients whose first (last) click in the email part was on this link, of all
    # clicks and of human ones (``app.clicks.labelling.human_figures``).
    first_clickers: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_clickers: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    human_first_clickers: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    human_last_clickers: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ClickHourly(Base):
    """Clicks per placement, hour and device class: the source of time series and filters."""

    __tablename__ = "click_hourly"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0"
    )  # of them, human
    # Who clicked in this cell, and who clicked as a human: compressed sets of recipient
    # ids (``app.clicks.clicker_sets``), unioned over a filter's cells for exact uniques.
    clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    human_clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class ClickDaily(Base):
    """``click_hourly`` by UTC day: a long period's whole days read one cell per (link,
    day, device) instead of 24, so a 30- or 90-day view reads about a twentieth of the
    cells (``app.reports.stats``)."""

    __tablename__ = "click_daily"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(BigInteger, default=0)
    clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    human_clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class ClickSegment(Base):
    """Clicks per placement, device class, email client and country, over all time: what a
    segment view (a client or a country, with or without a device) counts, with the same
    clicker sets as ``click_hourly``. ``client`` and ``country`` are '' where a click has
    none (the reports call that "unknown")."""

    __tablename__ = "click_segment"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(BigInteger, default=0)
    clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    human_clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class ClickSegmentDaily(Base):
    """``click_segment`` by UTC day: a segment within a period (Germany in the last 7 days)
    reads one cell per (link, day, device, client, country) for the period's whole days,
    and the clicks of the hours either side (``app.reports.stats``)."""

    __tablename__ = "click_segment_daily"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(BigInteger, default=0)
    clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    human_clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class PartClicker(Base):
    """Who clicked anything in one part of one variant: one row per recipient, kept by the
    writer. A new row is what adds one to ``part_stats.unique``."""

    __tablename__ = "part_clicker"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), primary_key=True
    )


class CampaignClicker(Base):
    """Who clicked anything in a campaign (any variant, any part): one row per recipient.
    A new row is what adds one to ``campaign_stats.unique``."""

    __tablename__ = "campaign_clicker"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), primary_key=True
    )


class PartStats(Base):
    """Running totals per variant part: clicks on any link, and distinct clickers."""

    __tablename__ = "part_stats"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    unique: Mapped[int] = mapped_column(BigInteger, default=0)
    # The same two figures over the clicks labelled human (``app.clicks.labelling``).
    human_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    human_unique: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Who clicked anything in the part, and who as a human (``app.clicks.clicker_sets``):
    # a scope of several parts (a variant's HTML and AMP, which the funnel and the
    # comparison count) unions them, instead of counting its clickers row by row.
    clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    human_clickers: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class CampaignStats(Base):
    """Running totals per campaign: clicks on any link, and distinct clickers."""

    __tablename__ = "campaign_stats"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    unique: Mapped[int] = mapped_column(BigInteger, default=0)
    # The same two figures over the clicks labelled human (``app.clicks.labelling``).
    human_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    human_unique: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PartHourly(Base):
    """Clicks per variant part, hour and device class: ``click_hourly`` without the link,
    so the time chart and the device split read (hours x devices) rows, not x links."""

    __tablename__ = "part_hourly"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0"
    )  # of them, human


class PartCell(Base):
    """Clicks per variant part, hour, device class, email client and country ('' for none):
    the time chart, the device split and the totals of a segment view, which
    ``part_hourly`` has no columns for. Its rows grow with the combinations that occur, not
    with the clicks."""

    __tablename__ = "part_cell"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human_total: Mapped[int] = mapped_column(BigInteger, default=0)


class CellReasons(Base):
    """Machine clicks per ``part_cell`` cell and reason: the "left out as machine" panel
    of a filtered view (period, device, client, country), as ``machine_reasons`` is the
    unfiltered one's."""

    __tablename__ = "cell_reasons"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)


class MachineReasons(Base):
    """Clicks labelled machine per variant part and reason: the "left out as machine"
    panel. A click with two reasons counts under each, so the rows add up to more than the
    machine clicks; the machine total is ``total - human_total`` of the stats tables."""

    __tablename__ = "machine_reasons"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(8), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)


class SentEmail(Base):
    """A recipient's personalized copy of a variant: one row per (variant, recipient), written
    when the email is personalized. Its count per variant is the funnel's "Sent"."""

    __tablename__ = "sent_email"

    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EmailOpen(Base):
    """One load of an email's open pixel: an append-only fact, like a click.

    ``open_id`` is minted by the redirector before it answers, so a replayed open is stored
    once. ``label`` is ``human``, ``proxy`` (a mailbox provider's image proxy fetched it for
    a reader: Gmail, Yahoo) or ``machine`` (``app.clicks.opens``), with the rules that fired
    in ``reasons``. No foreign keys, for the reason ``click`` has none.
    """

    __tablename__ = "email_open"
    __table_args__ = (
        Index("ix_email_open_campaign_opened_at", "campaign_id", "opened_at"),
        Index("ix_email_open_variant_recipient", "variant_id", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    open_id: Mapped[str] = mapped_column(String(32), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    campaign_id: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[int] = mapped_column(Integer)
    part: Mapped[str] = mapped_column(String(8))
    recipient_id: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    ip_prefix: Mapped[str | None] = mapped_column(String(64), default=None)
    label: Mapped[str] = mapped_column(String(8), default="human")
    reasons: Mapped[str] = mapped_column(String(64), default="")
    certainty: Mapped[str | None] = mapped_column(String(8), default=None)


class OpenRecipient(Base):
    """Who opened a variant: a row per recipient with any open (``viewer`` false) and a row
    per recipient with a human or proxy open (``viewer`` true). A new row is what adds one
    to ``open_stats.openers`` or ``open_stats.viewers``."""

    __tablename__ = "open_recipient"

    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipient.id", ondelete="CASCADE"), primary_key=True
    )
    viewer: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    first_opened_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OpenStats(Base):
    """Running totals of opens per variant: loads by label, distinct openers, and distinct
    viewers (recipients with a human or proxy open: the funnel's "Viewed")."""

    __tablename__ = "open_stats"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variant.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    human: Mapped[int] = mapped_column(BigInteger, default=0)
    proxy: Mapped[int] = mapped_column(BigInteger, default=0)
    machine: Mapped[int] = mapped_column(BigInteger, default=0)
    openers: Mapped[int] = mapped_column(BigInteger, default=0)
    viewers: Mapped[int] = mapped_column(BigInteger, default=0)


class Conversion(Base):
    """An order the sender reported against a click id (``POST /api/v1/conversions``).

    ``order_id`` is unique per campaign: reporting an order again changes nothing. The
    click's campaign, variant, part, link and recipient are copied from the click, so
    reports read conversions without joining the clicks. ``value_micros`` is the order's
    value in millionths of ``currency`` (exact integers, summed exactly on both databases).
    """

    __tablename__ = "conversion"
    __table_args__ = (
        UniqueConstraint("campaign_id", "order_id"),
        Index("ix_conversion_variant", "campaign_id", "variant_id", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(200))
    click_id: Mapped[str] = mapped_column(String(32))
    variant_id: Mapped[int] = mapped_column(Integer)
    part: Mapped[str] = mapped_column(String(8))
    placement_id: Mapped[int] = mapped_column(ForeignKey("placement.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(Integer)
    value_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversionStats(Base):
    """Conversions and revenue per link and currency ('' for orders without a value)."""

    __tablename__ = "conversion_stats"

    placement_id: Mapped[int] = mapped_column(
        ForeignKey("placement.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    value_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class User(Base):
    """A dashboard user.

    ``session_version`` is written into every login cookie and compared on every request
    (``app.web.auth``): raising it ends every session the user has open, at once, wherever
    the cookies went. Logging out raises it, and so does any new password hash, whoever
    sets it (``clickmap user set-password``, the demo), because it changes here.
    """

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @validates("password_hash")
    def _new_password_ends_sessions(self, _key: str, value: str) -> str:
        if self.password_hash is not None and value != self.password_hash:
            self.session_version = (self.session_version or 0) + 1
        return value


class ApiToken(Base):
    """A Bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class LoginAttempt(Base):
    """A dashboard login attempt that still counts against its name and network.

    Written before the password is checked (``app.accounts.LoginThrottle``), so the limit
    holds across processes and instances, and under concurrent guesses; a successful login
    deletes its name's attempts from its network, and rows older than the window are pruned.
    """

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_username_network", "username", "network", "attempted_at"),
        Index("ix_login_attempt_network", "network", "attempted_at"),
        Index("ix_login_attempt_attempted_at", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    network: Mapped[str] = mapped_column(String(64))  # IPv4 /24 or IPv6 /64 of the client
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
