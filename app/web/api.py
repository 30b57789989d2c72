"""The JSON API under ``/api/v1``, for senders: campaigns in, personalized emails out.

Every route needs ``Authorization: Bearer <token>`` (``clickmap token create``), checked
for every ``/api/`` route by ``app.web.auth.require_user_or_token``. Errors are
``{"error": {"code", "message"}}`` with a stable code.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from app.db import get_session
from app.errors import ClickmapError, InvalidInput
from app.ingest import campaigns
from app.ingest.campaigns import link_rules, personalizer
from app.reports.heatmap import ViewParams, build_view

bp = Blueprint("api", __name__)


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("invalid_json", "the request body must be a JSON object")
    return body


def _string_list(body: dict[str, Any], key: str, limit: int) -> list[str]:
    values = body.get(key)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidInput("invalid_recipients", f"{key!r} must be a list of strings")
    if not values:
        raise InvalidInput("invalid_recipients", f"{key!r} must not be empty")
    if len(values) > limit:
        raise ClickmapError(
            "batch_too_large", f"at most {limit} recipients per request, got {len(values)}", 413
        )
    return values


@bp.post("/campaigns")
def create_campaign() -> tuple[Response, int]:
    body = _json_body()
    raw_variants = body.get("variants")
    if not isinstance(raw_variants, list):
        raise InvalidInput("invalid_campaign", "'variants' must be a list")
    variants = []
    for raw in raw_variants:
        if not isinstance(raw, dict) or not isinstance(raw.get("html"), str):
            raise InvalidInput("invalid_variant", "each variant needs 'name' and an 'html' string")
        amp = raw.get("amp")
        if amp is not None and not isinstance(amp, str):
            raise InvalidInput("invalid_variant", "'amp' must be a string when given")
        variants.append(campaigns.VariantInput(str(raw.get("name", "")), raw["html"], amp))
    session = get_session()
    created = campaigns.create_campaign(
        session,
        str(body.get("name", "")),
        variants,
        rules=link_rules(current_app),
        max_part_bytes=current_app.config["MAX_PART_BYTES"],
        utm=body.get("utm"),
    )
    session.commit()
    result = campaigns.catalog(created.campaign)
    result["warnings"] = created.warnings
    return jsonify(result), 201


@bp.get("/campaigns/<int:campaign_id>")
def show_campaign(campaign_id: int) -> Response:
    return jsonify(campaigns.catalog(campaigns.get_campaign(get_session(), campaign_id)))


@bp.get("/campaigns/<int:campaign_id>/heatmap")
def heatmap(campaign_id: int) -> Response:
    """The heatmap's figures and tiers, for the same query parameters as the page."""
    view = build_view(get_session(), campaign_id, ViewParams.from_query(request.args))
    return jsonify(
        {
            "campaign": view.campaign_id,
            "name": view.campaign_name,
            "variant": view.variant,
            "part": view.params.part,
            "metric": view.params.metric,
            "query": view.params.to_query(),
            "delivered": view.delivered,
            "total": view.total,
            "unique": view.unique,
            "rate": view.rate,
            "tier_rule": [{"tier": tier, "label": label} for tier, label in view.legend],
            "links": [
                {
                    "placement_id": link.placement_id,
                    "position": link.position,
                    "kind": link.kind,
                    "text": link.text,
                    "destination": link.destination,
                    "total": link.total,
                    "unique": link.unique,
                    "rate": link.rate,
                    "share": link.share,
                    "value": link.value,
                    "tier": link.tier,
                }
                for link in view.links
            ],
            "skipped": [
                {"position": s.position, "kind": s.kind, "href": s.href, "reason": s.reason}
                for s in view.skipped
            ],
        }
    )


@bp.post("/campaigns/<int:campaign_id>/variants/<name>/personalize")
def personalize(campaign_id: int, name: str) -> Response:
    body = _json_body()
    ids = _string_list(body, "recipients", current_app.config["MAX_PERSONALIZE_BATCH"])
    session = get_session()
    campaign = campaigns.get_campaign(session, campaign_id)
    variant = campaigns.get_variant(campaign, name)
    emails = list(personalizer(current_app).personalize(session, variant, ids))
    session.commit()
    return jsonify({"campaign": campaign.id, "variant": variant.name, "emails": emails})


@bp.post("/campaigns/<int:campaign_id>/deliveries")
def deliveries(campaign_id: int) -> Response:
    body = _json_body()
    if not isinstance(body.get("variant"), str):
        raise InvalidInput("invalid_variant", "'variant' must name one of the campaign's variants")
    ids = _string_list(body, "recipients", 10_000)
    session = get_session()
    campaign = campaigns.get_campaign(session, campaign_id)
    added = campaigns.record_deliveries(session, campaign, body["variant"], ids)
    session.commit()
    return jsonify(
        {
            "campaign": campaign.id,
            "variant": body["variant"],
            "recorded": len(set(ids)),
            "new": added,
        }
    )
