"""The ``clickmap`` command line, assembled here and nowhere else.

Each command group is a module of this package (``database``, ``accounts``, ``campaigns``,
``reports``, ``stats`` (with ``clicks``), ``serving``, ``demo``); the domain modules they
call know nothing of click.
Commands run inside an application context, so they use the same configuration, database
and domain modules as the web app. Errors print one clear line and exit non-zero.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from app.cli import accounts, campaigns, database, demo, reports, serving, stats


def _create_app() -> Flask:
    from app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """Clickmap: link analytics for email campaigns."""


# Every ``clickmap`` command (``clickmap --help`` lists them alphabetically).
COMMANDS: tuple[click.Command, ...] = (
    database.db_group,
    accounts.user_group,
    accounts.token_group,
    campaigns.campaign_group,
    reports.report_group,
    stats.stats_group,
    stats.clicks_group,
    serving.serve_command,
    demo.demo_command,
)


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
