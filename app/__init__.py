"""Clickmap: self-hosted link analytics for email campaigns.

``create_app`` is the one place the pieces are wired together; each surface (redirector,
JSON API, dashboard) is a blueprint, and the domain modules beside them know nothing of Flask.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as config_module
from app.clicks.labelling import thresholds_from


def create_app(
    config: Mapping[str, Any] | None = None, *, instance_path: str | os.PathLike[str] | None = None
) -> Flask:
    """Build the application.

    With no ``config`` every setting comes from the environment (``CLICKMAP_*``). With a
    ``config`` mapping (tests, embedders) the environment is not read at all: settings start
    from the defaults and the mapping wins, so nothing set in the calling shell leaks in.
    ``instance_path`` moves Flask's instance folder (where the default SQLite file and spool
    live) out of the checkout.
    """
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder="../templates",
        instance_path=os.fspath(instance_path) if instance_path is not None else None,
    )
    if config is None:
        settings = config_module.from_environ()
    else:
        settings = copy.deepcopy(config_module.DEFAULTS)
        settings.update(config)
    if settings["DATABASE_URL"] is None:
        os.makedirs(app.instance_path, exist_ok=True)
        settings["DATABASE_URL"] = "sqlite:///" + os.path.join(
            app.instance_path, "clickmap.sqlite3"
        )
    if settings["SPOOL_DIR"] is None:
        settings["SPOOL_DIR"] = os.path.join(app.instance_path, "spool")
    config_module.check(settings)
    try:  # a typo in a rule's threshold fails the start, not every batch of clicks
        thresholds_from(settings)
    except ValueError as exc:
        raise config_module.ConfigError(f"MACHINE_THRESHOLDS: {exc}") from exc
    app.config.update(settings)
    # Flask's own session cookie is signed with the newest key too.
    app.config["SECRET_KEY"] = settings["SECRET_KEYS"][-1]
    app.config["SECRET_KEY_FALLBACKS"] = list(settings["SECRET_KEYS"][:-1])

    proxies = int(settings["TRUSTED_PROXY_COUNT"])
    if proxies > 0:
        # The client's address and scheme as the trusted proxies saw them (the address each
        # one appends to X-Forwarded-For; X-Forwarded-Proto for https), never what the client
        # wrote itself. Host, port and prefix are not taken from headers: the app knows its
        # own (TRACKING_BASE_URL), and a forwarded Host could only mislead it. Without
        # proxies the headers are ignored and requests go straight to the app.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    from app import cli, db, errors
    from app.clicks import redirector, tracking
    from app.reports import labels
    from app.web import api, auth, dashboard, downloads, webhooks
    from app.web.contract import IdConverter

    app.url_map.converters["id"] = IdConverter  # <id:...>: a database id, else 404
    db.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    tracking.init_app(app)
    auth.init_app(app)
    labels.init_app(app)  # the heatmap report's template helpers, page and PDF alike
    app.register_blueprint(redirector.bp)
    app.register_blueprint(api.bp, url_prefix=api.URL_PREFIX)
    dashboard.init_app(app)
    downloads.init_app(app)
    webhooks.init_app(app)
    return app
