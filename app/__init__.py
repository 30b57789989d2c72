"""Clickmap: self-hosted link analytics for email campaigns.

``create_app`` is the one place the pieces are wired together; each surface (redirector,
JSON API, dashboard) is a blueprint, and the domain modules beside them know nothing of Flask.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import config as config_module


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application from the environment, or from ``config`` when given (tests)."""
    app = Flask(__name__, instance_relative_config=True, template_folder="../templates")
    settings = config_module.from_environ()
    if config is not None:
        settings.update(config)
    if settings["DATABASE_URL"] is None:
        os.makedirs(app.instance_path, exist_ok=True)
        settings["DATABASE_URL"] = "sqlite:///" + os.path.join(
            app.instance_path, "clickmap.sqlite3"
        )
    if settings["SPOOL_DIR"] is None:
        settings["SPOOL_DIR"] = os.path.join(app.instance_path, "spool")
    config_module.check(settings)
    app.config.update(settings)
    # Flask's own session cookie is signed with the newest key too.
    app.config["SECRET_KEY"] = settings["SECRET_KEYS"][-1]
    app.config["SECRET_KEY_FALLBACKS"] = list(settings["SECRET_KEYS"][:-1])

    from app import cli, db, errors
    from app.clicks import redirector, tracking
    from app.reports import labels
    from app.web import api, dashboard, downloads

    db.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    tracking.init_app(app)
    labels.init_app(app)  # the heatmap report's template helpers, page and PDF alike
    app.register_blueprint(redirector.bp)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    dashboard.init_app(app)
    downloads.init_app(app)
    return app
