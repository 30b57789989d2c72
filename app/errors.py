"""Domain errors with stable codes, and how every surface turns them into answers.

A ``ClickmapError`` carries a machine-readable ``code`` (stable: clients match on it), a
sentence for people, and the HTTP status it maps to. The domain modules raise them; the JSON
API answers ``{"error": {"code": ..., "message": ...}}``; the CLI prints the message.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException


class ClickmapError(Exception):
    status = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ClickmapError):
    status = 404


class InvalidInput(ClickmapError):
    status = 400


class TooLarge(ClickmapError):
    status = 413


class Unauthorized(ClickmapError):
    status = 401


# Requests under this path are the JSON API's: Bearer tokens only (never the session
# cookie), and errors answered as JSON.
API_PREFIX = "/api/"


def is_api_request() -> bool:
    """Whether this request is for the JSON API (the one test every surface uses)."""
    return request.path.startswith(API_PREFIX)


def cli_error(exc: ClickmapError) -> click.ClickException:
    """The one-line message every ``clickmap`` command prints for a domain error."""
    return click.ClickException(f"{exc.message} [{exc.code}]")


def error_response(code: str, message: str, status: int, **extra: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ClickmapError)
    def _domain_error(exc: ClickmapError) -> Response:
        return error_response(exc.code, exc.message, exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if not is_api_request():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, exc.description or exc.name, exc.code or 500)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response | tuple[str, int]:
        app.logger.error("database unavailable: %s", exc.orig)
        if is_api_request():
            return error_response(
                "database_unavailable", "The database cannot be reached; try again shortly.", 503
            )
        return "The database cannot be reached; try again shortly.", 503
