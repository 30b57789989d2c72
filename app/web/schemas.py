"""The JSON API's request and response shapes: one set of pydantic models that both validates
what comes in and writes the OpenAPI document (``app.web.openapi``), so the two cannot drift.

Request bodies are strict: a ``name`` of ``null``, ``123`` or ``{}`` is a 422 naming the field,
never a campaign called "None"; unknown fields are refused too, so a misspelt ``variant`` does
not pass silently. Query strings are read leniently (everything in a URL is text), with the
same enumerations. Response models document what the API sends; the API's tests and its
schema-driven fuzzing check every answer against them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from app.errors import ClickmapError
from app.ingest.placements import MAX_LABEL_LENGTH, clean_label
from app.reports.listings import DEFAULT_CHANGES, MAX_CHANGES
from app.reports.stats import UNKNOWN
from app.vocabulary import CLIENTS, DEVICES, PARTS

# The limits the database sets (column sizes) are the limits the API states.
CampaignName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
VariantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
RecipientId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
UtmName = Annotated[str, StringConstraints(pattern=r"^utm_[A-Za-z0-9_]{1,60}$")]


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: a lenient parser would read ``startDate=0`` as 1970-01-01."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected an ISO 8601 date, YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _in_utc(value: datetime) -> datetime:
    """An instant in UTC, within the years reports know (2000 to 2999), so that moving
    it to UTC can never leave the calendar (0001-01-01T00:00+14:00 would)."""
    if not 2000 <= value.year <= 2999:
        raise ValueError("expected a time between the years 2000 and 2999")
    return value.astimezone(UTC)


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]
Part = Literal["html", "amp"]
Device = Literal["desktop", "mobile", "tablet", "other"]
Metric = Literal["total", "unique", "rate", "share", "conversions", "revenue"]
Period = Literal["all", "24h", "7d", "30d", "90d"]
Machines = Literal["exclude", "include"]


def _client(value: str) -> str:
    if value not in (*CLIENTS, UNKNOWN):
        raise ValueError(f"expected one of {', '.join((*CLIENTS, UNKNOWN))}")
    return value


Client = Annotated[
    str,
    AfterValidator(_client),
    WithJsonSchema({"type": "string", "enum": [*CLIENTS, UNKNOWN]}),
]
Country = Annotated[str, StringConstraints(pattern=rf"^([A-Z]{{2}}|{UNKNOWN})$")]
Ctas = Literal["all", "only"]
Group = Literal["link", "destination"]
assert set(Part.__args__) == set(PARTS) and set(Device.__args__) == set(DEVICES)  # type: ignore[attr-defined]


class Body(BaseModel):
    """A JSON request body: exact types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """Query-string arguments: text converted to the declared types; others are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# -- requests --------------------------------------------------------------------------------


class VariantIn(Body):
    name: VariantName
    html: str = Field(description="The HTML part, as it will be sent.")
    amp: str | None = Field(default=None, description="The AMP for Email part, if any.")


class CampaignIn(Body):
    name: CampaignName
    track_opens: bool = Field(
        default=True, description="Put the open pixel in personalized emails (default on)."
    )
    click_param: ClickParam | None = Field(
        default=None,
        description="The query parameter that hands each click's id to the destination "
        "(e.g. cm_click), for conversions; default none.",
    )
    variants: list[VariantIn] = Field(min_length=1, max_length=26)
    utm: dict[UtmName, Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None,
        description="UTM parameters added to every tracked link's redirect, unless the link "
        "already sets that parameter.",
    )


ClickParam = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.~-]{1,40}$")]


class CampaignSettingsIn(Body):
    track_opens: bool | None = Field(
        default=None,
        description="Whether emails personalized from now on carry the open pixel.",
    )
    click_param: ClickParam | None = Field(
        default=None,
        description="The query parameter that hands each click's id to the destination "
        "(e.g. cm_click), for conversions; null switches it off.",
    )


class ConversionIn(Body):
    click_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] = Field(
        alias="clickId", description="The click id the destination received."
    )
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")] = (
        Field(alias="orderId", description="The sender's order id: reporting it again is a no-op.")
    )
    value: (
        Annotated[
            Decimal, Field(strict=False, ge=0, lt=10**12, decimal_places=6, allow_inf_nan=False)
        ]
        | None
    ) = Field(default=None, description="The order's value (a number or a decimal string).")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217 code; required with a value."
    )
    converted_at: Instant | None = Field(
        default=None, alias="convertedAt", strict=False, description="Default now."
    )

    @model_validator(mode="after")
    def _currency_with_value(self) -> ConversionIn:
        if (self.value is None) != (self.currency is None):
            raise ValueError("value and currency go together")
        return self


class PersonalizeIn(Body):
    recipients: list[RecipientId] = Field(
        min_length=1, description="The sender's recipient ids; at most MAX_PERSONALIZE_BATCH."
    )


class DeliveriesIn(Body):
    variant: VariantName
    recipients: list[RecipientId] = Field(min_length=1, max_length=10_000)
    delivered_at: Instant | None = Field(
        default=None,
        alias="deliveredAt",
        strict=False,  # JSON has no datetime type: an ISO 8601 string is the only form
        description="When the email reached them (ISO 8601 with an offset); default now. "
        "The machine-click rules judge a click's timing against it.",
    )


def _label(value: str | None) -> str | None:
    """The label as it will be stored (``placements.clean_label``: the page's rule), so a
    name the page would refuse is a 422 naming ``label`` here."""
    try:
        return clean_label(value)
    except ClickmapError as exc:
        raise ValueError(exc.message) from exc


Label = Annotated[
    Annotated[str, StringConstraints(max_length=4 * MAX_LABEL_LENGTH)] | None,
    AfterValidator(_label),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "maxLength": 4 * MAX_LABEL_LENGTH}, {"type": "null"}],
            "description": "The link's name, shown instead of its text. Runs of whitespace "
            f"become one space; at most {MAX_LABEL_LENGTH} characters then, no control "
            "characters. Empty or null clears it.",
        }
    ),
]


class PlacementIn(Body):
    """What to change about one link; a field left out stays as it is."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    label: Label = None
    cta: bool | None = Field(default=None, description="Marked as a call to action, or not.")

    @model_validator(mode="after")
    def _something(self) -> PlacementIn:
        if not self.model_fields_set:
            raise ValueError("give label, cta or both")
        if "cta" in self.model_fields_set and self.cta is None:
            raise ValueError("cta is true or false")
        return self


class HeatmapQuery(Query):
    variant: VariantName | None = Field(
        default=None, description="Variant name; default the first."
    )
    part: Part = "html"
    metric: Metric = Field(default="total", description="What colors the tiers.")
    period: Period = Field(default="all", description="Rolling window in whole UTC hours.")
    start_date: IsoDate | None = Field(
        default=None, alias="startDate", description="First day (UTC, ISO 8601); overrides period."
    )
    end_date: IsoDate | None = Field(
        default=None, alias="endDate", description="Last day, inclusive (UTC, ISO 8601)."
    )
    device: Device | None = None
    machines: Machines = Field(
        default="exclude",
        description="Clicks labelled machine (security scanners, link previewers): left out "
        "of every figure by default; include them to count every click.",
    )
    client: Client | None = Field(
        default=None,
        description="Only clicks from this email client (or the browser the link opened "
        f"in); {UNKNOWN}: clicks that name none. Every figure then counts raw clicks.",
    )
    country: Country | None = Field(
        default=None,
        description="Only clicks from networks registered to this country (ISO 3166-1 "
        f"alpha-2, e.g. FR); {UNKNOWN}: private or reserved networks, or no address. Every "
        "figure then counts raw clicks.",
    )
    ctas: Ctas = Field(
        default="all",
        description="only: list just the links marked as calls to action (the totals stay "
        "the whole part's).",
    )
    group: Group = Field(
        default="link",
        description="destination: one entry per destination, its links' clicks summed and "
        "its unique clickers counted once across them.",
    )


class ReportQuery(HeatmapQuery):
    sort: Literal["metric", "position"] = Field(
        default="metric", description="The link table's order: by the metric, or email order."
    )


class ElementsQuery(HeatmapQuery):
    limit: int = Field(default=10, ge=1, le=50)
    sort: Literal["count", "unique", "clickRate", "position"] = "count"


class RepeatClicksQuery(HeatmapQuery):
    min_clicks: int = Field(default=5, ge=2, le=100, alias="minClicks")
    window_seconds: float = Field(default=10.0, gt=0, le=3600, alias="windowSeconds")


class ClicksQuery(HeatmapQuery):
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200, description="From nextCursor.")


class ChangesQuery(Query):
    limit: int = Field(default=DEFAULT_CHANGES, ge=1, le=MAX_CHANGES)
    cursor: str | None = Field(default=None, max_length=200, description="From nextCursor.")


# -- responses -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    field: str = Field(description="Where in the request, e.g. variants.0.name or query.limit.")
    message: str
    type: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable and machine-readable; clients match on it.")
    message: str = Field(description="A sentence for people.")
    details: list[ErrorDetail] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class LinkOut(BaseModel):
    part: Part
    position: int
    kind: Literal["a", "area", "vml"]
    href: str = Field(description="As written in the source.")
    destination: str | None = Field(description="What a browser opens (WHATWG serialization).")
    text: str
    tracked: bool
    skip_reason: str | None
    skip_message: str | None


class VariantOut(BaseModel):
    name: str
    parts: list[Part]
    links: list[LinkOut]


class CampaignOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    utm: dict[str, str] | None
    track_opens: bool
    click_param: str | None
    variants: list[VariantOut]


class CreatedCampaignOut(CampaignOut):
    warnings: list[str]


class EmailOut(BaseModel):
    recipient: str
    variant: str
    html: str | None
    amp: str | None
    clickmapId: str = Field(
        description="This email's opaque, signed id: attach it at the ESP (a custom arg, "
        "user variable, message tag or metadata named clickmap_id) so its delivery events "
        "reach this campaign and recipient; see docs/esp-webhooks.md."
    )
    headers: dict[str, str] = Field(
        description="Headers to add to the email: X-Clickmap-Id carries clickmapId (SES "
        "identity notifications read it from the original headers)."
    )


class PersonalizedOut(BaseModel):
    campaign: int
    variant: str
    emails: list[EmailOut]


class DeliveriesOut(BaseModel):
    campaign: int
    variant: str
    recorded: int = Field(description="Distinct recipients in the request.")
    new: int = Field(description="Of those, how many were not recorded before.")


class ConversionOut(BaseModel):
    conversion: int
    campaign: int
    variant: str
    placementId: int
    clickId: str
    orderId: str
    value: str | None = Field(description="As a decimal string, exactly as stored.")
    currency: str | None
    created: bool = Field(description="False when the order was reported before.")


class ElementRef(BaseModel):
    """A stable reference to one link of the sent email."""

    placementId: int
    part: Part
    kind: Literal["a", "area", "vml"]
    position: int = Field(description="Document order within the part, from 0.")
    selector: str | None = Field(
        description="A CSS selector for the link in the sent HTML; null where none can reach "
        "it (Outlook-only VML buttons)."
    )


class HeatmapEntry(BaseModel):
    element: ElementRef
    text: str
    destination: str | None
    count: int = Field(description="Total clicks.")
    unique: int = Field(description="Distinct recipients who clicked.")
    percentage: float = Field(description="Share of the part's total clicks, in percent.")
    clickRate: float | None = Field(
        description="Unique clickers / delivered x 100; null when nothing was delivered."
    )
    tier: Literal["red", "orange", "yellow", "green", "blue", "gray"]
    firstClicks: int = Field(
        description="Recipients whose first link clicked in this email part was this one "
        "(over all their clicks, whatever the period or device)."
    )
    lastClicks: int = Field(description="Recipients whose last link clicked was this one.")
    label: str | None = Field(
        description="The marketer's name for the link, shown instead of its text; null if none."
    )
    cta: bool = Field(description="Marked as a call to action.")
    belowCtaGuideline: bool = Field(
        description="A CTA whose clickRate is under the guideline (CTA_MIN_CLICK_RATE, "
        "default 10%)."
    )
    placementIds: list[int] = Field(
        description="The links this entry stands for: one, or all links to the destination "
        "with group=destination."
    )
    conversions: int = Field(
        description="Conversions reported against this link's clicks (all time, every label)."
    )
    revenue: str = Field(
        description="Their value in the window's currency, as a decimal string ('0' if none)."
    )


class MachineClicks(BaseModel):
    count: int = Field(
        description="Clicks labelled machine in this window (whether or not counted above)."
    )
    reasons: dict[str, int] = Field(
        description="Machine clicks per rule that caught them, most first; a click caught by "
        "two rules counts under both."
    )


class Window(BaseModel):
    campaign: int
    name: str
    variant: str
    part: Part
    metric: Metric
    period: str
    startDate: datetime | None = Field(description="Inclusive, UTC; null: since the start.")
    endDate: datetime | None = Field(description="Exclusive, UTC; null: until now.")
    device: Device | None
    machines: Machines
    ctas: Ctas
    group: Group
    machineClicks: MachineClicks
    client: str | None = Field(description="The email client segment, if one was asked for.")
    country: str | None = Field(description="The country segment, if one was asked for.")
    countryData: str = Field(description="Where countries come from, and the data's release.")
    currency: str | None = Field(
        description="The currency of the links' revenue: the one the variant's orders carry "
        "most value in; null without orders of any value."
    )


class HeatmapOut(Window):
    totalClicks: int
    uniqueClickers: int
    deliveries: int = Field(
        description="Recipients the email was delivered to: the click rate's denominator. "
        "Bounced (permanently), complained and dropped recipients are not counted."
    )
    bounces: int = Field(description="Recipients whose email bounced permanently (ESP webhooks).")
    complaints: int = Field(description="Recipients who reported the email as spam.")
    clickRate: float | None
    clicks: list[HeatmapEntry]


class ElementsOut(Window):
    deliveries: int
    elements: list[HeatmapEntry]


class RepeatEntry(BaseModel):
    element: ElementRef
    text: str
    destination: str | None
    count: int = Field(description="Bursts of repeated clicks.")
    recipients: int = Field(description="Distinct recipients with a burst.")
    avgClicks: float
    maxClicks: int
    severity: Literal["high", "medium", "low"]


class RepeatClicksOut(Window):
    minClicks: int
    windowSeconds: float
    repeatClicks: list[RepeatEntry]


class ClickOut(BaseModel):
    clickId: str
    clickedAt: datetime = Field(description="UTC, ISO 8601 with microseconds.")
    variant: str
    part: Part
    placementId: int
    position: int
    recipient: str
    method: str
    device: str
    client: str | None
    userAgent: str
    ipPrefix: str | None
    country: str | None = Field(description="ISO 3166-1 alpha-2 of the network's registration.")
    label: Literal["human", "machine"]
    reasons: list[str] = Field(description="The rules that labelled it machine; empty for human.")
    certainty: Literal["certain", "likely"] | None


class ClicksOut(Window):
    clicks: list[ClickOut]
    nextCursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")


# -- comparing two variants ------------------------------------------------------------------


class FunnelQuery(Query):
    machines: Machines = Field(
        default="exclude",
        description="Machine opens and clicks: left out by default (viewed counts human and "
        "proxy opens); include them to count every open and click.",
    )


class FunnelRates(BaseModel):
    delivered: float | None = Field(description="Delivered / sent x 100.")
    viewed: float | None = Field(description="Viewed / delivered x 100 (the open rate).")
    clicked: float | None = Field(
        description="Clicked / viewed x 100 (click-to-open); clicked / delivered when opens "
        "are not tracked."
    )
    converted: float | None = Field(description="Converted / clicked x 100.")


class FunnelOpens(BaseModel):
    total: int
    human: int
    proxy: int
    machine: int


class FunnelRowOut(BaseModel):
    variant: str | None = Field(description="null for the campaign's row (its variants added).")
    sent: int = Field(description="Recipients personalized this variant.")
    delivered: int = Field(description="Recipients with a recorded delivery.")
    viewed: int | None = Field(
        description="Recipients with a human or proxy open (any open with machines "
        "included); null when opens are not tracked and none arrived."
    )
    clicked: int = Field(description="Recipients who clicked any of the sender's links.")
    converted: int = Field(description="Recipients with a conversion.")
    openedNotClicked: int | None = Field(description="Viewers who never clicked.")
    rates: FunnelRates = Field(description="Each step of the step before, in percent.")
    clickRate: float | None = Field(description="Clicked / delivered x 100.")
    clickToOpenRate: float | None = Field(description="Clicked / viewed x 100.")
    revenue: dict[str, str] = Field(description="Conversion value per currency.")
    opens: FunnelOpens = Field(description="Pixel loads by label.")


class FunnelOut(BaseModel):
    campaign: int
    machines: Machines
    trackOpens: bool
    variants: list[FunnelRowOut]
    total: FunnelRowOut


class CompareQuery(Query):
    a: VariantName | None = Field(
        default=None, description="The first variant's name; default the campaign's first."
    )
    b: VariantName | None = Field(
        default=None, description="The second variant's name; default the next one after a."
    )
    machines: Machines = Field(
        default="exclude",
        description="Clicks labelled machine: left out of every figure by default, as on "
        "the heatmap; include them to count every click.",
    )


class Range(BaseModel):
    low: float
    high: float


class ArmOut(BaseModel):
    name: str
    deliveries: int = Field(description="The variant's recorded deliveries.")
    uniqueClickers: int = Field(
        description="Distinct recipients who clicked (for a link: that link; for the variant: "
        "any tracked link of any of its parts)."
    )
    clickRate: float | None = Field(
        description="uniqueClickers / deliveries x 100; null with no deliveries."
    )
    interval: Range | None = Field(description="Wilson score interval of clickRate, in percent.")


class DifferenceOut(BaseModel):
    a: ArmOut
    b: ArmOut
    difference: float | None = Field(description="b's click rate minus a's, percentage points.")
    interval: Range | None = Field(description="Newcombe's hybrid score interval of difference.")
    z: float | None = Field(
        description="Pooled two-proportion z statistic; positive if b is higher."
    )
    pValue: float | None = Field(description="Two-sided p-value of the pooled z-test.")
    significant: bool = Field(description="pValue below 1 - confidence.")


class ComparedLink(DifferenceOut):
    destination: str
    text: str
    positionA: int
    positionB: int


class UnmatchedLink(BaseModel):
    position: int
    destination: str
    text: str
    uniqueClickers: int


class CompareOut(DifferenceOut):
    campaign: int
    name: str
    machines: Machines
    confidence: float = Field(description="The intervals' level, 1 - the test's alpha.")
    winner: str | None = Field(description="Named only when the decision rule holds.")
    verdict: str = Field(description="The outcome in one sentence, as the page says it.")
    warnings: list[str]
    decisionRule: str
    machineClicks: list[int] = Field(
        description="Clicks labelled machine in a and in b (whether or not counted above)."
    )
    links: list[ComparedLink] = Field(
        description="Links of the HTML parts present in both variants (same destination and "
        "text), in a's order; descriptive only, never a winner."
    )
    onlyA: list[UnmatchedLink]
    onlyB: list[UnmatchedLink]


# -- the marketer's link names and CTA flags --------------------------------------------------


class PlacementOut(BaseModel):
    placementId: int
    campaign: int
    variant: str
    part: Part
    kind: Literal["a", "area", "vml"]
    position: int = Field(description="Document order within the part, from 0.")
    text: str = Field(description="The link's own text, as sent.")
    destination: str | None
    label: str | None = Field(description="The marketer's name for the link; null if none.")
    cta: bool = Field(description="Marked as a call to action.")


class ChangeOut(BaseModel):
    changedAt: datetime = Field(description="UTC.")
    by: str = Field(
        description="The dashboard user who made the change, or 'API token ' and the token's "
        "name for a change made through the API."
    )
    field: Literal["label", "cta"]
    oldValue: str | None = Field(
        description="Before: a name (null: none), or 'true' / 'false' for cta."
    )
    newValue: str | None = Field(description="After, as oldValue.")
    placementId: int
    variant: str
    part: Part
    position: int
    text: str = Field(description="The link's own text, as sent.")
    label: str | None = Field(description="The link's name now.")


class ChangesOut(BaseModel):
    campaign: int
    changes: list[ChangeOut] = Field(description="Newest first.")
    nextCursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")
