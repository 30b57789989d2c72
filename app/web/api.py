"""The JSON API under ``/api/v1``: campaigns in, personalized emails out, heatmap data back.

Every route needs ``Authorization: Bearer <token>`` (``clickmap token create``), checked for
every ``/api/`` route by ``app.web.auth.require_user_or_token``; only the OpenAPI document and
its reference page are public. Each route is declared with the models that validate its
input and describe its answer (``app.web.contract``); ``/api/v1/openapi.json`` is written
from those declarations. Errors are ``{"error": {"code", "message"[, "details"]}}`` with a
stable code.

The heatmap endpoints follow the shape of the heatmaps APIs marketers already script against
(totals, then one entry per element with count, percentage and a selector), with email's own
figures beside them: unique clickers and the click rate (unique / delivered x 100).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    send_from_directory,
)
from sqlalchemy.orm import Session

from app.clicks import conversions
from app.clicks.devices import COUNTRY_DATA
from app.clicks.labelling import thresholds_from
from app.clicks.recording import judge_again
from app.db import get_session
from app.errors import ClickmapError
from app.ingest import campaigns
from app.ingest.campaigns import link_rules, personalizer
from app.ingest.placements import mark_cta, rename_placement
from app.models import Placement, Variant
from app.reports import abtest, exports, listings, repeats
from app.reports.comparison import CompareParams, build_comparison
from app.reports.funnel import FunnelRow, build_funnel
from app.reports.heatmap import HeatmapView, LinkStat, ViewParams, build_view
from app.reports.selectors import placement_selectors
from app.web import csrf, schemas
from app.web.contract import Contract, json_body, query_args
from app.web.downloads import comparison_pdf_response, pdf_response

URL_PREFIX = "/api/v1"
bp = Blueprint("api", __name__)
contract = Contract(bp)
csrf.exempt(bp, "Bearer tokens only, never the login cookie (app.web.auth)")

# Swagger UI, as its Python distribution ships it: the reference page needs no CDN.
try:
    import swagger_ui  # type: ignore[import-untyped]

    REFERENCE_ASSETS: Path | None = Path(swagger_ui.__file__).parent / "static"
except ImportError:  # pragma: no cover - a declared dependency
    REFERENCE_ASSETS = None


# -- campaigns -------------------------------------------------------------------------------


@contract.endpoint(
    "post", "/campaigns", body=schemas.CampaignIn, response=schemas.CreatedCampaignOut, status=201
)
def create_campaign() -> tuple[Response, int]:
    """Create a campaign from its variants' HTML (and AMP) parts.

    Every link is catalogued: tracked, or skipped with the reason. Parts are limited to
    MAX_PART_BYTES, and a part may hold at most 65,536 links (a token addresses a link by a
    16-bit position): more is refused with code too_many_links.
    """
    body = json_body(schemas.CampaignIn)
    session = get_session()
    created = campaigns.create_campaign(
        session,
        body.name,
        [campaigns.VariantInput(v.name, v.html, v.amp) for v in body.variants],
        rules=link_rules(current_app),
        max_part_bytes=current_app.config["MAX_PART_BYTES"],
        utm=body.utm,
        track_opens=body.track_opens,
        click_param=body.click_param,
    )
    session.commit()
    result = campaigns.catalog(created.campaign)
    result["warnings"] = created.warnings
    return jsonify(result), 201


@contract.endpoint("get", "/campaigns/{campaign_id}", response=schemas.CampaignOut)
def show_campaign(campaign_id: int) -> Response:
    """A campaign with every link of every variant, tracked or skipped."""
    return jsonify(campaigns.catalog(campaigns.get_campaign(get_session(), campaign_id)))


@contract.endpoint(
    "patch",
    "/campaigns/{campaign_id}/settings",
    body=schemas.CampaignSettingsIn,
    response=schemas.CampaignOut,
)
def campaign_settings(campaign_id: int) -> Response:
    """Change a campaign's tracking: the open pixel, the click-id parameter.

    Fields left out keep their value; click_param null switches the parameter off. The pixel
    setting applies to emails personalized from now on; running redirectors apply a new
    click_param within 10 seconds.
    """
    body = json_body(schemas.CampaignSettingsIn)
    session = get_session()
    campaign = campaigns.get_campaign(session, campaign_id)
    if "click_param" in body.model_fields_set:
        campaigns.update_settings(
            campaign, track_opens=body.track_opens, click_param=body.click_param
        )
    else:
        campaigns.update_settings(campaign, track_opens=body.track_opens)
    session.commit()
    return jsonify(campaigns.catalog(campaign))


@contract.endpoint(
    "post",
    "/conversions",
    body=schemas.ConversionIn,
    response=schemas.ConversionOut,
    status=201,
    errors=(409,),
    also=((200, "The order was reported before, with the same figures: nothing changed."),),
)
def conversion() -> tuple[Response, int]:
    """Report an order against the click id its destination received.

    Idempotent on orderId (per campaign): the same order again answers 200 with created
    false; the same orderId with another click, value or currency answers 409
    order_conflict. An unknown click id (or one not stored yet: retry in a few seconds)
    answers 404 click_not_found.
    """
    body = json_body(schemas.ConversionIn)
    session = get_session()
    recorded = conversions.record_conversion(
        session, body.click_id, body.order_id, body.value, body.currency, body.converted_at
    )
    session.commit()
    found = recorded.conversion
    variant = session.get(Variant, found.variant_id)
    answer = {
        "conversion": found.id,
        "campaign": found.campaign_id,
        "variant": variant.name if variant is not None else "",
        "placementId": found.placement_id,
        "clickId": found.click_id,
        "orderId": found.order_id,
        "value": conversions.from_micros(found.value_micros),
        "currency": found.currency,
        "created": recorded.created,
    }
    return jsonify(answer), 201 if recorded.created else 200


def _batch(ids: list[str], limit: int) -> list[str]:
    if len(ids) > limit:
        raise ClickmapError(
            "batch_too_large", f"at most {limit} recipients per request, got {len(ids)}", 413
        )
    return ids


@contract.endpoint(
    "post",
    "/campaigns/{campaign_id}/variants/{name}/personalize",
    body=schemas.PersonalizeIn,
    response=schemas.PersonalizedOut,
)
def personalize(campaign_id: int, name: str) -> Response:
    """Each recipient's copy of a variant, its tracked links rewritten.

    At most MAX_PERSONALIZE_BATCH recipients per request (413 batch_too_large beyond).
    """
    ids = _batch(
        json_body(schemas.PersonalizeIn).recipients, current_app.config["MAX_PERSONALIZE_BATCH"]
    )
    session = get_session()
    campaign = campaigns.get_campaign(session, campaign_id)
    variant = campaigns.get_variant(campaign, name)
    emails = list(personalizer(current_app).personalize(session, variant, ids))
    session.commit()
    return jsonify({"campaign": campaign.id, "variant": variant.name, "emails": emails})


DELIVERY_BATCH = 10_000


@contract.endpoint(
    "post",
    "/campaigns/{campaign_id}/deliveries",
    body=schemas.DeliveriesIn,
    response=schemas.DeliveriesOut,
)
def deliveries(campaign_id: int) -> Response:
    """Record that a variant was delivered to these recipients (idempotent).

    At most 10,000 recipients per request (413 batch_too_large beyond).
    """
    body = json_body(schemas.DeliveriesIn)
    ids = _batch(body.recipients, DELIVERY_BATCH)
    session = get_session()
    campaign = campaigns.get_campaign(session, campaign_id)
    added = campaigns.record_deliveries(session, campaign, body.variant, ids, body.delivered_at)
    # Clicks judged before their delivery was known are judged again against it.
    recipients = campaigns.ensure_recipients(session, ids)
    judge_again(
        session,
        [(campaign.id, rid) for rid in sorted(recipients.values())],
        thresholds_from(current_app.config),
    )
    session.commit()
    return jsonify(
        {"campaign": campaign.id, "variant": body.variant, "recorded": len(set(ids)), "new": added}
    )


# -- the marketer's link names and CTA flags -------------------------------------------------


def _placement(placement: Placement, variant: str) -> dict[str, Any]:
    return {
        "placementId": placement.id,
        "campaign": placement.campaign_id,
        "variant": variant,
        "part": placement.part,
        "kind": placement.kind,
        "position": placement.position,
        "text": placement.text,
        "destination": placement.destination,
        "label": placement.label,
        "cta": placement.cta,
    }


def _funnel_row(row: FunnelRow) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    rates = {step: rounded(rate) for step, _count, rate in row.steps[1:]}
    return {
        "variant": row.variant,
        "sent": row.sent,
        "delivered": row.delivered,
        "viewed": row.viewed,
        "clicked": row.clicked,
        "converted": row.converted,
        "openedNotClicked": row.opened_not_clicked,
        "rates": rates,
        "clickRate": rounded(row.click_rate),
        "clickToOpenRate": rounded(row.click_to_open_rate),
        "revenue": row.revenue,
        "opens": {k: row.opens.get(k, 0) for k in ("total", "human", "proxy", "machine")},
    }


@contract.endpoint(
    "patch",
    "/campaigns/{campaign_id}/placements/{placement_id}",
    body=schemas.PlacementIn,
    response=schemas.PlacementOut,
)
def update_placement(campaign_id: int, placement_id: int) -> Response:
    """Name a link, or mark it as a call to action (or not).

    What the heatmap page's edit form does. A field left out stays as it is; a label of null
    or "" clears the name. Each change is recorded in the campaign's placement changes under
    "API token" and the token's name; a value equal to the current one records nothing.
    placementId is an entry's element.placementId in the heatmap endpoints; the hidden
    honeypot link and untracked links are not found (404 link_not_found).
    """
    body = json_body(schemas.PlacementIn)
    session = get_session()
    placement = None
    if "label" in body.model_fields_set:
        placement = rename_placement(session, campaign_id, placement_id, body.label, g.api_token)
    if body.cta is not None:
        placement = mark_cta(session, campaign_id, placement_id, body.cta, g.api_token)
    assert placement is not None  # PlacementIn holds a label, a cta or both
    variant = session.get(Variant, placement.variant_id)
    assert variant is not None  # a placement's variant is never deleted apart from it
    session.commit()
    return jsonify(_placement(placement, variant.name))


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/placement-changes",
    query=schemas.ChangesQuery,
    response=schemas.ChangesOut,
)
def placement_changes(campaign_id: int) -> Response:
    """Who renamed which link or marked it as a CTA, and when.

    The campaign's history, newest first, a page at a time. Pass nextCursor back as cursor
    for the next page (null on the last). The page at /campaigns/{id}/changes shows the same
    rows.
    """
    query = query_args(schemas.ChangesQuery)
    page = listings.placement_change_page(
        get_session(), campaign_id, after=query.cursor, limit=query.limit
    )
    return jsonify(
        {
            "campaign": campaign_id,
            "changes": [
                {
                    "changedAt": row.changed_at.isoformat(),
                    "by": row.username,
                    "field": row.field,
                    "oldValue": row.old_value,
                    "newValue": row.new_value,
                    "placementId": row.placement_id,
                    "variant": row.variant,
                    "part": row.part,
                    "position": row.position,
                    "text": row.text,
                    "label": row.label,
                }
                for row in page.rows
            ],
            "nextCursor": page.next_cursor,
        }
    )


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/funnel",
    query=schemas.FunnelQuery,
    response=schemas.FunnelOut,
)
def funnel(campaign_id: int) -> Response:
    """Sent, delivered, viewed, clicked and converted, per variant and in total.

    The figures of the campaign page and the PDF (docs/funnel.md): recipients at each step,
    each step's rate of the step before, the click rate beside the click-to-open rate, and
    the viewers who never clicked. People only unless machines=include.
    """
    query = query_args(schemas.FunnelQuery)
    found = build_funnel(get_session(), campaign_id, human_only=query.machines == "exclude")
    return jsonify(
        {
            "campaign": found.campaign_id,
            "machines": query.machines,
            "trackOpens": found.track_opens,
            "variants": [_funnel_row(row) for row in found.variants],
            "total": _funnel_row(found.total),
        }
    )


# -- heatmap data ----------------------------------------------------------------------------


def _selectors(session: Session, view: HeatmapView) -> dict[int, str | None]:
    """CSS selectors of the view's links in the sent part, by position."""
    variant = session.get(Variant, view.variant_id)
    assert variant is not None  # build_view found it
    rules = link_rules(current_app)
    if view.params.part == "amp" and variant.amp is not None:  # build_view checked it exists
        return placement_selectors(variant.amp, "amp", rules)
    return placement_selectors(variant.html, "html", rules)


def _view_params(query: schemas.HeatmapQuery, metric: str | None = None) -> ViewParams:
    """The heatmap's switches for a query: dates, when given, make a custom period."""
    custom = query.start_date is not None or query.end_date is not None
    return ViewParams(
        metric=metric or query.metric,
        variant=query.variant,
        part=query.part,
        period="custom" if custom else query.period,
        start=query.start_date,
        end=query.end_date,
        device=query.device,
        machines=query.machines,
        client=query.client,
        country=query.country,
        ctas=query.ctas,
        group=query.group,
    )


def _figures(session: Session, campaign_id: int, query: schemas.HeatmapQuery) -> HeatmapView:
    """The heatmap view a data endpoint answers from: its figures without the charts."""
    return build_view(
        session,
        campaign_id,
        _view_params(query),
        datetime.now(UTC),
        charts=False,
        cta_min_rate=current_app.config["CTA_MIN_CLICK_RATE"],
    )


def _window(view: HeatmapView) -> dict[str, Any]:
    since, until = view.where.since, view.where.until
    return {
        "campaign": view.campaign_id,
        "name": view.campaign_name,
        "variant": view.variant,
        "part": view.params.part,
        "metric": view.params.metric,
        "period": view.params.period,
        "startDate": since.isoformat() if since else None,
        "endDate": until.isoformat() if until else None,
        "device": view.params.device,
        "machines": view.params.machines,
        "ctas": view.params.ctas,
        "group": view.params.group,
        "machineClicks": {"count": view.left_out.clicks, "reasons": view.left_out.reasons},
        "client": view.params.client,
        "country": view.params.country,
        "countryData": COUNTRY_DATA,
        "currency": view.currency,
    }


def _entry(view: HeatmapView, selectors: dict[int, str | None], link: LinkStat) -> dict[str, Any]:
    return {
        "element": _element(view, selectors, link.placement_id, link.kind, link.position),
        "text": link.text,
        "destination": link.destination,
        "count": link.total,
        "unique": link.unique,
        "percentage": round(link.share, 2),
        "clickRate": None if link.rate is None else round(link.rate, 2),
        "tier": link.tier,
        "firstClicks": link.first,
        "lastClicks": link.last,
        "label": link.name,
        "cta": link.cta,
        "belowCtaGuideline": link.below_cta_guideline,
        "placementIds": list(link.placement_ids),
        "conversions": link.conversions,
        "revenue": conversions.from_micros(link.revenue_micros),
    }


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/heatmap",
    query=schemas.HeatmapQuery,
    response=schemas.HeatmapOut,
)
def heatmap(campaign_id: int) -> Response:
    """The click heatmap: campaign totals and one entry per tracked link, in email order.

    The tiers are those of the page and the PDF, for the chosen metric.
    """
    query = query_args(schemas.HeatmapQuery)
    session = get_session()
    view = _figures(session, campaign_id, query)
    selectors = _selectors(session, view)
    return jsonify(
        {
            **_window(view),
            "totalClicks": view.total,
            "uniqueClickers": view.unique,
            "deliveries": view.delivered,
            "bounces": view.outcomes.bounced,
            "complaints": view.outcomes.complained,
            "clickRate": None if view.rate is None else round(view.rate, 2),
            "clicks": [
                _entry(view, selectors, link)
                for link in sorted(view.links, key=lambda s: s.position)
            ],
        }
    )


_ELEMENT_ORDER = {
    "count": lambda s: (-s.total, s.position),
    "unique": lambda s: (-s.unique, s.position),
    "clickRate": lambda s: (-(s.rate or 0.0), s.position),
    "position": lambda s: (s.position,),
}


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/heatmap/elements",
    query=schemas.ElementsQuery,
    response=schemas.ElementsOut,
)
def elements(campaign_id: int) -> Response:
    """The most clicked links, `limit` of them (default 10, at most 50), by `sort`."""
    query = query_args(schemas.ElementsQuery)
    session = get_session()
    view = _figures(session, campaign_id, query)
    ranked = sorted(view.links, key=_ELEMENT_ORDER[query.sort])[: query.limit]
    selectors = _selectors(session, view)
    return jsonify(
        {
            **_window(view),
            "deliveries": view.delivered,
            "elements": [_entry(view, selectors, link) for link in ranked],
        }
    )


def _element(view: HeatmapView, selectors: dict[int, str | None], placement_id: int,
             kind: str, position: int) -> dict[str, Any]:  # fmt: skip
    return {
        "placementId": placement_id,
        "part": view.params.part,
        "kind": kind,
        "position": position,
        "selector": selectors.get(position),
    }


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/heatmap/repeat-clicks",
    query=schemas.RepeatClicksQuery,
    response=schemas.RepeatClicksOut,
)
def repeat_clicks(campaign_id: int) -> Response:
    """Links one recipient clicked again and again within seconds: often a page that did
    not load.

    A burst is a run of at least minClicks clicks by one recipient on one link, each within
    windowSeconds of the one before. Per link: the bursts, the recipients who had one, the
    mean and largest clicks per burst, and a severity graded on the mean (high: 10 or more,
    medium: 6 to under 10, low: under 6). This reads the period's raw clicks.
    """
    query = query_args(schemas.RepeatClicksQuery)
    session = get_session()
    view = _figures(session, campaign_id, query)
    window = timedelta(seconds=query.window_seconds)
    found = repeats.repeat_clicks(session, view.where, min_clicks=query.min_clicks, window=window)
    selectors = _selectors(session, view)
    return jsonify(
        {
            **_window(view),
            "minClicks": query.min_clicks,
            "windowSeconds": query.window_seconds,
            "repeatClicks": [
                {
                    "element": _element(view, selectors, r.placement_id, r.kind, r.position),
                    "text": r.text,
                    "destination": r.destination,
                    "count": r.count,
                    "recipients": r.recipients,
                    "avgClicks": r.avg_clicks,
                    "maxClicks": r.max_clicks,
                    "severity": r.severity,
                }
                for r in found
            ],
        }
    )


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/heatmap/clicks",
    query=schemas.ClicksQuery,
    response=schemas.ClicksOut,
)
def clicks(campaign_id: int) -> Response:
    """The raw clicks of the view, oldest first, a page at a time, for exports.

    Pass nextCursor back as cursor for the next page (null on the last). Pages are read by
    keyset, so clicks arriving meanwhile never shift them.
    """
    query = query_args(schemas.ClicksQuery)
    session = get_session()
    view = _figures(session, campaign_id, query)
    page = exports.click_page(session, view.where, after=query.cursor, limit=query.limit)
    return jsonify(
        {
            **_window(view),
            "clicks": [
                {
                    "clickId": row.click_id,
                    "clickedAt": row.clicked_at,
                    "variant": row.variant,
                    "part": row.part,
                    "placementId": row.placement_id,
                    "position": row.position,
                    "recipient": row.recipient,
                    "method": row.method,
                    "device": row.device,
                    "client": row.client,
                    "userAgent": row.user_agent,
                    "ipPrefix": row.ip_prefix,
                    "country": row.country,
                    "label": row.label,
                    "reasons": row.reasons,
                    "certainty": row.certainty,
                }
                for row in page.rows
            ],
            "nextCursor": page.next_cursor,
        }
    )


def _arm(arm: abtest.ArmResult) -> dict[str, Any]:
    iv = arm.interval
    return {
        "name": arm.name,
        "deliveries": arm.delivered,
        "uniqueClickers": arm.unique_clickers,
        "clickRate": None if arm.rate is None else round(arm.rate, 4),
        "interval": None if iv is None else {"low": round(iv.low, 4), "high": round(iv.high, 4)},
    }


def _difference(c: abtest.Comparison) -> dict[str, Any]:
    iv = c.difference_interval
    return {
        "a": _arm(c.a),
        "b": _arm(c.b),
        "difference": None if c.difference is None else round(c.difference, 4),
        "interval": None if iv is None else {"low": round(iv.low, 4), "high": round(iv.high, 4)},
        "z": c.z,
        "pValue": c.p_value,
        "significant": c.significant,
    }


def _unmatched(link: abtest.LinkClicks) -> dict[str, Any]:
    return {
        "position": link.position,
        "destination": link.destination,
        "text": link.text,
        "uniqueClickers": link.unique_clickers,
    }


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/compare",
    query=schemas.CompareQuery,
    response=schemas.CompareOut,
)
def compare(campaign_id: int) -> Response:
    """Two variants compared on click rate, with the verdict of the decision rule.

    a and b default to the campaign's first two variants. The figures are those of the
    comparison page: unique clickers per delivered email with Wilson intervals, the
    difference b - a with Newcombe's interval, the pooled z-test's p-value, and a winner only
    when decisionRule holds. A campaign with a single variant, or a variant with more
    clickers than recorded deliveries, answers 422 (nothing_to_compare,
    deliveries_incomplete).
    """
    query = query_args(schemas.CompareQuery)
    params = CompareParams(a=query.a, b=query.b, machines=query.machines)
    view = build_comparison(get_session(), campaign_id, params)
    c = view.comparison
    return jsonify(
        {
            **_difference(c),
            "campaign": view.campaign_id,
            "name": view.campaign_name,
            "machines": view.params.machines,
            "confidence": c.confidence,
            "winner": c.winner,
            "verdict": view.verdict,
            "warnings": list(c.warnings),
            "decisionRule": view.decision_rule,
            "machineClicks": list(view.left_out),
            "links": [
                {
                    **_difference(link.comparison),
                    "destination": link.destination,
                    "text": link.text,
                    "positionA": link.position_a,
                    "positionB": link.position_b,
                }
                for link in view.links.matched
            ],
            "onlyA": [_unmatched(link) for link in view.links.only_a],
            "onlyB": [_unmatched(link) for link in view.links.only_b],
        }
    )


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/report.pdf",
    query=schemas.ReportQuery,
    response=None,
    media_type="application/pdf",
)
def report_pdf(campaign_id: int) -> Response:
    """The heatmap report as a PDF: the colored email, the figures and the charts.

    The same view switches as the heatmap; sort orders the ranked link table.
    """
    query = query_args(schemas.ReportQuery)
    params = dataclasses.replace(_view_params(query), sort=query.sort)
    return pdf_response(campaign_id, params)


@contract.endpoint(
    "get",
    "/campaigns/{campaign_id}/compare.pdf",
    query=schemas.CompareQuery,
    response=None,
    media_type="application/pdf",
)
def compare_pdf(campaign_id: int) -> Response:
    """The comparison of two variants as a PDF: the figures of /compare, then both emails.

    The same switches and answers as /compare; the emails are colored by unique clickers.
    """
    query = query_args(schemas.CompareQuery)
    params = CompareParams(a=query.a, b=query.b, machines=query.machines)
    return comparison_pdf_response(campaign_id, params)


# -- the contract itself ---------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of this API (public: it holds no data)."""
    return jsonify(contract.document(title="Clickmap API", version="1", server=URL_PREFIX))


# Swagger UI sets inline styles and loads nothing from elsewhere; scripts only from here.
REFERENCE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)


@bp.get("/docs")
def reference() -> Response:
    """A readable API reference, rendered in the browser from ``openapi.json``."""
    response = Response(render_template("api_reference.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = REFERENCE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/docs/assets/<path:filename>")
def reference_asset(filename: str) -> Response:
    if REFERENCE_ASSETS is None:  # pragma: no cover
        raise ClickmapError("not_found", "the API reference is not installed", 404)
    return send_from_directory(REFERENCE_ASSETS, filename, max_age=86400)
