"""The ESPs' delivery webhooks: ``POST /webhooks/<esp>`` for ses, sendgrid, mailgun, postmark.

Machine to machine: no login cookie is read (``app.web.auth`` treats these paths as cookieless
and public), so no CSRF token either (declared with ``csrf.exempt``). Each request is
believed only once its ESP's own check passes (``app.ingest.esp``: a signature, or Postmark's
Basic credentials, compared in constant time there), then its events are applied by
``app.clicks.delivery_events``. The body is read up to ``WEBHOOK_MAX_BYTES``.

Answers are JSON. Accepted: 200 ``{"received", "recorded", "duplicates", "ignored",
"refused"}``. Refused: the API's error shape, ``{"error": {"code", "message"}}``, with the
verifier's stable code: 400 ``malformed``, 401 ``bad_credentials``, 403 for a signature,
window, topic or certificate address that does not check out. An ESP Clickmap has no secret
for answers 404 ``webhook_not_configured``, an unknown name 404 ``unknown_esp``. Bad input
never makes a 5xx; an unreachable SNS (its certificate, a subscription to confirm) is a 503,
so SNS tries again.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app.clicks.delivery_events import apply_events, remember_token
from app.clicks.labelling import thresholds_from
from app.config import ConfigError
from app.db import get_session
from app.errors import ClickmapError, NotFound, TooLarge
from app.ingest.esp import (
    DEFAULT_TOLERANCE_SECONDS,
    DeliveryEvent,
    WebhookRejected,
    load_json,
    mailgun,
    postmark,
    sendgrid,
    ses,
)
from app.tokens import message_id_codec
from app.web import csrf

URL_PREFIX = "/webhooks"
bp = Blueprint("webhooks", __name__)
csrf.exempt(bp, "machine to machine: authenticated by each ESP's signature, never the cookie")

ESPS = ("ses", "sendgrid", "mailgun", "postmark")
# The HTTP status of each rejection code (app.ingest.esp.WebhookRejected).
STATUS = {"malformed": 400, "bad_credentials": 401}
FORBIDDEN = 403
# Mailgun tokens are kept for twice the window and a minute: a timestamp up to the window
# in the future is fresh until twice the window after it was first accepted.
TOKEN_MEMORY_SECONDS = 2 * DEFAULT_TOLERANCE_SECONDS + 60
# SNS certificates and confirmation answers are small; more is not SNS.
FETCH_LIMIT = 64 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
_CERTIFICATES = "clickmap.sns_certificates"


class Rejected(ClickmapError):
    """A webhook refused, as the JSON error the API would give."""


class Unavailable(ClickmapError):
    status = 503


def init_app(app: Flask) -> None:
    """Check the webhook settings at start (a bad SendGrid key fails here, not per request)
    and register the routes."""
    key = app.config["WEBHOOK_SENDGRID_PUBLIC_KEY"]
    if key:
        try:
            sendgrid.load_public_key(key)
        except ValueError as exc:
            raise ConfigError(f"WEBHOOK_SENDGRID_PUBLIC_KEY: {exc}") from exc
    arns = app.config["WEBHOOK_SES_TOPIC_ARNS"]
    if isinstance(arns, str) or not all(isinstance(a, str) and a for a in arns):
        raise ConfigError("WEBHOOK_SES_TOPIC_ARNS must be a list of topic ARNs")
    user, password = app.config["WEBHOOK_POSTMARK_USER"], app.config["WEBHOOK_POSTMARK_PASSWORD"]
    if bool(user) != bool(password):
        raise ConfigError("WEBHOOK_POSTMARK_USER and WEBHOOK_POSTMARK_PASSWORD go together")
    app.extensions[_CERTIFICATES] = _CertificateCache()
    app.register_blueprint(bp, url_prefix=URL_PREFIX)


@bp.post("/<esp>")
def receive(esp: str) -> Response:
    """Verify one ESP's webhook and apply its delivery events."""
    if esp not in ESPS:
        raise NotFound("unknown_esp", f"no webhook for {esp!r}; use one of {', '.join(ESPS)}")
    if not _configured(esp):
        raise NotFound("webhook_not_configured", f"the {esp} webhook is not configured")
    body = _body()
    try:
        events = _RECEIVERS[esp](body)
    except WebhookRejected as exc:
        if exc.code == "replayed":
            # A request accepted before: answering 200 stops the ESP's retries, and nothing
            # is applied twice.
            return jsonify({"received": 0, "duplicate": True})
        current_app.logger.info("%s webhook refused: %s", esp, exc)
        raise Rejected(exc.code, str(exc.args[0]), STATUS.get(exc.code, FORBIDDEN)) from None
    if events is None:  # an SNS confirmation, handled
        return jsonify({"received": 0, "confirmed": True})
    session = get_session()
    outcome = apply_events(
        session, events, message_id_codec(current_app), thresholds_from(current_app.config)
    )
    session.commit()
    return jsonify(outcome.as_json())


def _configured(esp: str) -> bool:
    config = current_app.config
    if esp == "sendgrid":
        return bool(config["WEBHOOK_SENDGRID_PUBLIC_KEY"])
    if esp == "mailgun":
        return bool(config["WEBHOOK_MAILGUN_SIGNING_KEY"])
    if esp == "postmark":
        return bool(config["WEBHOOK_POSTMARK_USER"] and config["WEBHOOK_POSTMARK_PASSWORD"])
    return bool(config["WEBHOOK_SES_TOPIC_ARNS"])


def _body() -> bytes:
    """The raw body, at most ``WEBHOOK_MAX_BYTES`` of it (413 beyond)."""
    limit = int(current_app.config["WEBHOOK_MAX_BYTES"])
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("body_too_large", f"webhook bodies are limited to {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise TooLarge("body_too_large", f"webhook bodies are limited to {limit} bytes")
    return body


def _now() -> float:
    clock: Callable[[], float] = current_app.config.get("WEBHOOK_CLOCK") or time.time
    return clock()


# -- one receiver per ESP: verify, then parse (None: nothing to apply) --------------------------


def _sendgrid(body: bytes) -> list[DeliveryEvent]:
    sendgrid.verify(
        body,
        request.headers.get(sendgrid.SIGNATURE_HEADER),
        request.headers.get(sendgrid.TIMESTAMP_HEADER),
        current_app.config["WEBHOOK_SENDGRID_PUBLIC_KEY"],
        now=_now(),
    )
    return sendgrid.parse(body)


def _mailgun(body: bytes) -> list[DeliveryEvent]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise WebhookRejected("malformed", "the body is not a JSON object")
    now = _now()
    session = get_session()

    def seen(token: str) -> bool:
        moment = datetime.fromtimestamp(now, UTC)
        return remember_token(session, mailgun.ESP, token, TOKEN_MEMORY_SECONDS, moment)

    mailgun.verify(data, current_app.config["WEBHOOK_MAILGUN_SIGNING_KEY"], seen, now=now)
    return mailgun.parse(data)


def _postmark(body: bytes) -> list[DeliveryEvent]:
    postmark.verify(
        request.headers.get("Authorization"),
        current_app.config["WEBHOOK_POSTMARK_USER"],
        current_app.config["WEBHOOK_POSTMARK_PASSWORD"],
    )
    return postmark.parse(body)


def _ses(body: bytes) -> list[DeliveryEvent] | None:
    fetch = _fetcher()
    cache: _CertificateCache = current_app.extensions[_CERTIFICATES]
    message = ses.verify(
        body,
        topic_arns=list(current_app.config["WEBHOOK_SES_TOPIC_ARNS"]),
        fetch_certificate=lambda url: cache.get(url, fetch),
        now=datetime.fromtimestamp(_now(), UTC),
    )
    if message.type == "SubscriptionConfirmation":
        assert message.subscribe_url is not None  # verify checked it is SNS's own address
        fetch(message.subscribe_url)
        current_app.logger.info("confirmed the SNS subscription to %s", message.topic_arn)
        return None
    if message.type != "Notification":
        return None
    return ses.parse(message)


_RECEIVERS: dict[str, Callable[[bytes], list[DeliveryEvent] | None]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "ses": _ses,
}


# -- fetching from SNS ------------------------------------------------------------------------


def _fetcher() -> Callable[[str], bytes]:
    injected: Callable[[str], bytes] | None = current_app.config.get("WEBHOOK_FETCH")
    return injected or fetch_from_sns


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The address was checked to be SNS's own; a redirect would lead anywhere else.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(
    _NoRedirects(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
)


def fetch_from_sns(url: str) -> bytes:
    """GET ``url`` over https with certificate verification, only if it is SNS's own address
    (checked again here, whoever calls), following no redirect, reading at most 64 KiB.

    An answer SNS gives but that is not a success (a certificate that does not exist) refuses
    the message; an SNS that cannot be reached is ``Unavailable`` (503), so SNS retries.
    """
    checked = ses.sns_address(url, allow_china=False, code="bad_certificate_url")
    try:
        with _OPENER.open(checked, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            data: bytes = answer.read(FETCH_LIMIT + 1)
    except urllib.error.HTTPError as exc:
        raise WebhookRejected("bad_signature", f"SNS answered {exc.code} for {checked}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unavailable("sns_unreachable", f"SNS could not be reached: {exc}") from None
    if len(data) > FETCH_LIMIT:
        raise WebhookRejected("bad_signature", "SNS's answer is larger than a certificate")
    return data


class _CertificateCache:
    """SNS signing certificates by URL: SNS signs with a few, for months, so each is fetched
    once per process. Bounded, oldest first out."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._pems: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, url: str, fetch: Callable[[str], bytes]) -> bytes:
        with self._lock:
            found = self._pems.get(url)
        if found is not None:
            return found
        pem = fetch(url)
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            return pem  # refused by the caller's check; never kept
        with self._lock:
            self._pems[url] = pem
            while len(self._pems) > self.size:
                del self._pems[next(iter(self._pems))]
        return pem
