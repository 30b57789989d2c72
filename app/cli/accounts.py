"""``clickmap user`` (dashboard users) and ``clickmap token`` (API tokens for senders)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.accounts import create_api_token, create_user, set_password
from app.db import get_session
from app.errors import ClickmapError, cli_error
from app.models import User
from app.reports.labels import format_when

# -- users ------------------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Dashboard users."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@user_group.command("create")
@click.argument("username")
@_PASSWORD_STDIN
@with_appcontext
def user_create(username: str, password_stdin: bool) -> None:
    """Create a dashboard user; the password is asked for twice (hidden)."""
    password = _read_password(password_stdin)
    session = get_session()
    try:
        create_user(session, username, password)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    click.echo(f"user {username} created")


@user_group.command("set-password")
@click.argument("username")
@_PASSWORD_STDIN
@with_appcontext
def user_set_password(username: str, password_stdin: bool) -> None:
    """Replace a user's password; the user's open sessions end."""
    password = _read_password(password_stdin)
    session = get_session()
    try:
        set_password(session, username, password)
    except ClickmapError as exc:
        raise cli_error(exc) from exc
    session.commit()
    click.echo(f"password of {username} changed")


@user_group.command("list")
@with_appcontext
def user_list() -> None:
    """Print every user and when it was created."""
    for user in get_session().scalars(select(User).order_by(User.username)):
        click.echo(f"{user.username}\t{format_when(user.created_at)}")


# -- API tokens -------------------------------------------------------------------------------


@click.group("token")
def token_group() -> None:
    """API tokens for senders."""


@token_group.command("create")
@click.argument("name")
@with_appcontext
def token_create(name: str) -> None:
    """Create an API token; it is printed once and only its hash is kept."""
    session = get_session()
    token = create_api_token(session, name)
    session.commit()
    click.echo(token)
