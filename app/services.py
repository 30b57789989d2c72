"""Per-app singletons built from configuration: the token codec, link rules, personalizer.

Built lazily and kept in ``app.extensions`` so the CLI, the API and the redirector share one
instance (and its caches) per process.
"""

from __future__ import annotations

from flask import Flask

from app.campaigns import Personalizer
from app.rewriting import LinkRules
from app.tokens import TokenCodec


def token_codec(app: Flask) -> TokenCodec:
    codec: TokenCodec | None = app.extensions.get("clickmap.codec")
    if codec is None:
        codec = app.extensions["clickmap.codec"] = TokenCodec(app.config["SECRET_KEYS"])
    return codec


def link_rules(app: Flask) -> LinkRules:
    return LinkRules(
        do_not_track=tuple(d.lower() for d in app.config["DO_NOT_TRACK_DOMAINS"]),
        opt_out_attribute=app.config["OPT_OUT_ATTRIBUTE"],
    )


def personalizer(app: Flask) -> Personalizer:
    found: Personalizer | None = app.extensions.get("clickmap.personalizer")
    if found is None:
        found = app.extensions["clickmap.personalizer"] = Personalizer(
            token_codec(app), app.config["TRACKING_BASE_URL"], link_rules(app)
        )
    return found
