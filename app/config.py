"""Every setting Clickmap reads, with its default, in one place.

Settings come from the environment (``CLICKMAP_*``); tests and embedders pass a mapping to
``create_app`` instead. Defaults are safe for a laptop: an embedded SQLite file in the
instance folder and a development secret that production refuses to start with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# The well-known development secret. Anything signed with it is forgeable by anyone who read
# this file, so a production start with it is refused (see ``check``).
DEV_SECRET = "clickmap-development-secret-do-not-use-in-production"  # noqa: S105

DEFAULTS: dict[str, Any] = {
    # SQLAlchemy URL; None means "clickmap.sqlite3 in the instance folder".
    "DATABASE_URL": None,
    # Newest last: the newest key signs, every key verifies, so keys can rotate.
    "SECRET_KEYS": [DEV_SECRET],
    # Where recipients' clicks arrive, e.g. https://t.example.com (no trailing slash).
    "TRACKING_BASE_URL": "http://127.0.0.1:5000",
    # Hosts (and their subdomains) whose links are never tracked.
    "DO_NOT_TRACK_DOMAINS": [],
    # An attribute that, present on a link, opts that link out of tracking.
    "OPT_OUT_ATTRIBUTE": "data-clickmap-notrack",
    # Upper bound for one email part, and for any request body.
    "MAX_PART_BYTES": 5 * 1024 * 1024,
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    # Batch limit of the personalize API call.
    "MAX_PERSONALIZE_BATCH": 1000,
    # Directory of the click spool (None means "spool" in the instance folder).
    "SPOOL_DIR": None,
    # How clicks reach the database: "process" (a writer process; clickmap serve sets it),
    # "thread" (a batch writer thread per process, behind the spool) or "inline" (before
    # the answer; used by tests). None: thread unless TESTING.
    "CLICK_WRITER": None,
    # Seconds the writer lets clicks gather before one transaction stores them all.
    "CLICK_BATCH_INTERVAL": 1.0,
    # Reverse proxies in front of Clickmap, each appending to X-Forwarded-For and setting
    # X-Forwarded-Proto: the client's address and scheme are taken from that many entries
    # from the right (werkzeug's ProxyFix). 0: the headers are ignored.
    "TRUSTED_PROXY_COUNT": 0,
    # Dashboard logins: at most LOGIN_ATTEMPTS password checks per username from one client
    # network (IPv4 /24, IPv6 /64) and LOGIN_NETWORK_ATTEMPTS per network, in any
    # LOGIN_WINDOW_SECONDS; a successful login forgives the name's failures from there.
    "LOGIN_ATTEMPTS": 5,
    "LOGIN_NETWORK_ATTEMPTS": 50,
    "LOGIN_WINDOW_SECONDS": 900,
    # At start, cache the links of campaigns created in the last N days (at most M links), so
    # they keep redirecting if the database is unreachable.
    "WARM_CAMPAIGN_DAYS": 180,
    "WARM_PLACEMENT_LIMIT": 200_000,
    # The PDF renderer may fetch an email's remote images (public addresses only); turn it
    # off to render only what Clickmap itself serves.
    "PDF_REMOTE_IMAGES": True,
    # The dashboard shows an email's remote images and fonts through its own proxy (public
    # addresses only, cached); the marketer's browser never loads them from the sender's
    # hosts either way. Off: they are left out of the page altogether.
    "EMAIL_REMOTE_IMAGES": True,
    # Overrides of the machine-click rules' thresholds, by name (``app.clicks.machines.
    # Thresholds`` has each default and why), e.g. "too_soon_seconds=2,sweep_share=0.9".
    # After a change, ``clickmap clicks reclassify`` judges the stored clicks again.
    "MACHINE_THRESHOLDS": {},
    # A link marked as a call to action is flagged when its click rate (unique clickers /
    # delivered x 100, in percent) is under this: 10 is Ptengine's guideline for a CTA.
    "CTA_MIN_CLICK_RATE": 10.0,
    # ESP delivery webhooks (``POST /webhooks/<esp>``, docs/esp-webhooks.md). An ESP whose
    # secret is empty is not configured, and its webhook answers 404.
    # SendGrid: the Event Webhook's verification key (base64, as SendGrid shows it).
    "WEBHOOK_SENDGRID_PUBLIC_KEY": "",
    # Mailgun: the HTTP webhook signing key.
    "WEBHOOK_MAILGUN_SIGNING_KEY": "",
    # Postmark: the user name and password written in the webhook's URL (Basic auth).
    "WEBHOOK_POSTMARK_USER": "",
    "WEBHOOK_POSTMARK_PASSWORD": "",
    # Amazon SES through SNS: the topic ARNs whose messages are believed.
    "WEBHOOK_SES_TOPIC_ARNS": [],
    # The largest webhook body accepted (a larger one answers 413).
    "WEBHOOK_MAX_BYTES": 2 * 1024 * 1024,
    # Embedders and tests may also pass, in the mapping only (never from the environment):
    # WEBHOOK_FETCH, a callable(url) -> bytes used for SNS's certificates and subscription
    # confirmations instead of an https request, and WEBHOOK_CLOCK, a callable returning the
    # Unix time the signatures' windows are judged at.
    # "production" refuses the development secret.
    "ENV": "development",
}

# Settings given as comma-separated lists in the environment.
_LIST_SETTINGS = {"SECRET_KEYS", "DO_NOT_TRACK_DOMAINS", "WEBHOOK_SES_TOPIC_ARNS"}
_INT_SETTINGS = {
    "MAX_PART_BYTES",
    "MAX_CONTENT_LENGTH",
    "MAX_PERSONALIZE_BATCH",
    "TRUSTED_PROXY_COUNT",
    "LOGIN_ATTEMPTS",
    "LOGIN_NETWORK_ATTEMPTS",
    "LOGIN_WINDOW_SECONDS",
    "WARM_CAMPAIGN_DAYS",
    "WARM_PLACEMENT_LIMIT",
    "WEBHOOK_MAX_BYTES",
}
_FLOAT_SETTINGS = {"CLICK_BATCH_INTERVAL", "CTA_MIN_CLICK_RATE"}
_BOOL_SETTINGS = {"PDF_REMOTE_IMAGES", "EMAIL_REMOTE_IMAGES"}


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read ``CLICKMAP_<NAME>`` for every setting; unset ones keep their default."""
    env = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for name in DEFAULTS:
        raw = env.get(f"CLICKMAP_{name}")
        if raw is None or raw == "":
            continue
        if name in _LIST_SETTINGS:
            settings[name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif name in _INT_SETTINGS:
            settings[name] = int(raw)
        elif name in _FLOAT_SETTINGS:
            settings[name] = float(raw)
        elif name == "MACHINE_THRESHOLDS":
            settings[name] = dict(
                item.strip().partition("=")[::2] for item in raw.split(",") if item.strip()
            )
        elif name in _BOOL_SETTINGS:
            settings[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            settings[name] = raw
    return settings


class ConfigError(RuntimeError):
    """The configuration cannot be used as given."""


def check(settings: Mapping[str, Any]) -> None:
    """Refuse settings that would run but be unsafe or broken."""
    keys = settings["SECRET_KEYS"]
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError("SECRET_KEYS must be a non-empty list of non-empty strings")
    base = str(settings["TRACKING_BASE_URL"])
    if not base.startswith(("http://", "https://")) or base.endswith("/"):
        raise ConfigError(
            f"TRACKING_BASE_URL must be an http(s) URL without a trailing slash, got {base!r}"
        )
    rate = settings["CTA_MIN_CLICK_RATE"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 100:
        raise ConfigError(f"CTA_MIN_CLICK_RATE must be a percentage from 0 to 100, got {rate!r}")
    if settings["ENV"] == "production":
        if DEV_SECRET in keys:
            raise ConfigError(
                "refusing to start in production with the development secret: "
                "set CLICKMAP_SECRET_KEYS to a long random value"
            )
        if any(len(k) < 32 for k in keys):
            raise ConfigError("production secret keys must be at least 32 characters long")
