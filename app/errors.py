"""Domain errors with stable codes, and how every surface turns them into answers.

A ``ClickmapError`` carries a machine-readable ``code`` (stable: clients match on it), a
sentence for people, the HTTP status it maps to and, for invalid input, the fields at fault.
The domain modules raise them; the JSON API answers ``{"error": {"code": ..., "message": ...}}``
(plus ``details`` naming the fields); the CLI prints the message.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed


class ClickmapError(Exception):
    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # per-field problems, shown as the error's "details"
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


class Unprocessable(ClickmapError):
    """Well-formed JSON whose content breaks the contract (wrong types, limits, values)."""

    status = 422


class UnsupportedMediaType(ClickmapError):
    status = 415


class TooManyRequests(ClickmapError):
    status = 429

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


# The statuses an API error can have, with what each means: the OpenAPI document lists them.
API_ERRORS: dict[int, str] = {
    400: "Malformed request: not JSON, nested too deep, invalid Unicode, a bad cursor.",
    401: "No valid API token (Authorization: Bearer <token>).",
    403: "The token is valid but may not do this.",
    404: "No such campaign, variant, part or placement (ids past the database's range too).",
    409: "The request conflicts with the current state.",
    413: "The body or a batch is larger than the server accepts.",
    415: "The body is not application/json.",
    422: "The JSON does not match the schema; details name each field.",
    429: "Too many failed attempts; retry after the Retry-After header's seconds.",
}


# Requests under this path are the JSON API's: Bearer tokens only (never the session
# cookie), and errors answered as JSON.
API_PREFIX = "/api/"


def is_api_request() -> bool:
    """Whether this request is for the JSON API (the one test every surface uses)."""
    return request.path.startswith(API_PREFIX)


# The ESPs' delivery webhooks: machine to machine, answered in JSON like the API, but
# authenticated by each ESP's own signature or credentials (app.web.webhooks).
WEBHOOK_PREFIX = "/webhooks/"


def answers_in_json() -> bool:
    """Whether this request's errors are JSON: the API's and the webhooks'."""
    return request.path.startswith((API_PREFIX, WEBHOOK_PREFIX))


def cli_error(exc: ClickmapError) -> click.ClickException:
    """The one-line message every ``clickmap`` command prints for a domain error."""
    return click.ClickException(f"{exc.message} [{exc.code}]")


def error_response(code: str, message: str, status: int, **extra: Any) -> Response:
    """The one error shape: ``{"error": {"code", "message"[, "details"]}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ClickmapError)
    def _domain_error(exc: ClickmapError) -> Response:
        extra = {"details": exc.details} if getattr(exc, "details", None) else {}
        response = error_response(exc.code, exc.message, exc.status, **extra)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if not answers_in_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(code, exc.description or exc.name, exc.code or 500)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response | tuple[str, int]:
        app.logger.error("database unavailable: %s", exc.orig)
        if answers_in_json():
            return error_response(
                "database_unavailable", "The database cannot be reached; try again shortly.", 503
            )
        return "The database cannot be reached; try again shortly.", 503
