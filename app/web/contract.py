"""The API's contract in one place: each endpoint is declared once, with the models that
validate its input and describe its answer, and the OpenAPI 3.1 document is written from
those same declarations (``document``), so the two cannot drift.

Reading a request is strict and bounded, because the API faces scripts and hostile clients:
the body must be ``application/json`` (415), valid UTF-8 JSON (400) nested at most
``MAX_JSON_DEPTH`` deep (400, where Python's parser would otherwise recurse until it fails),
with no lone surrogate or NUL in any string (400: neither can be stored as text), and then match
its model (422, naming each field at fault).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from werkzeug.routing import IntegerConverter

from app.errors import API_ERRORS, InvalidInput, Unprocessable, UnsupportedMediaType
from app.web.schemas import ErrorOut

MAX_JSON_DEPTH = 32
# Ids are 32-bit signed integers in the database: a larger one names nothing (404), and must
# not reach the database, where it would overflow.
MAX_ID = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


class IdConverter(IntegerConverter):
    """``<id:name>``: a database id, 1 to ``MAX_ID``; anything else matches no route (404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)


# -- reading requests ------------------------------------------------------------------------


def _check_tree(value: Any) -> None:
    """Refuse nesting past ``MAX_JSON_DEPTH`` and strings holding lone surrogates; iterative,
    so no input can make it recurse."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                raise InvalidInput(
                    "invalid_unicode",
                    f"{path or 'the body'} holds a lone surrogate (\\ud800-\\udfff), which is "
                    "not a Unicode character",
                )
            if "\x00" in node:
                raise InvalidInput(
                    "invalid_unicode",
                    f"{path or 'the body'} holds U+0000 (NUL), which text cannot be stored with",
                )
            continue
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput("json_too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH}")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str):
                    stack.append((key, depth, path))
                stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))


def _details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    return [
        {
            "field": prefix + ".".join(str(part) for part in error["loc"]) or "body",
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]


def json_body(model: type[M]) -> M:
    """This request's JSON body, checked as the module docstring says, as a ``model``."""
    if not request.is_json:
        raise UnsupportedMediaType(
            "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    raw = request.get_data(cache=True)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInput("invalid_json", "the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise InvalidInput("json_too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH}") from exc
    except ValueError as exc:
        raise InvalidInput("invalid_json", f"the body is not valid JSON: {exc}") from exc
    _check_tree(value)
    if not isinstance(value, dict):
        raise Unprocessable(
            "validation_failed",
            "the body must be a JSON object",
            details=[{"field": "body", "message": "expected an object", "type": "dict_type"}],
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise Unprocessable(
            "validation_failed", "the body does not match the schema", details=_details(exc)
        ) from exc


def query_args(model: type[M]) -> M:
    """This request's query string as a ``model`` (422 naming the argument at fault)."""
    args = dict(request.args.items())  # an empty value is a value, not the default
    for key, value in args.items():
        if _SURROGATE.search(value):  # only reachable through an invalid percent-escape
            raise InvalidInput("invalid_unicode", f"query argument {key!r} is not valid Unicode")
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise Unprocessable(
            "validation_failed",
            "the query does not match the schema",
            details=_details(exc, "query."),
        ) from exc


# -- declaring endpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    method: str
    path: str  # OpenAPI form, relative to the blueprint: /campaigns/{campaign_id}
    name: str  # the view function's name, also the operationId
    summary: str
    description: str
    response: type[BaseModel] | None  # None: ``media_type`` bytes, not JSON
    status: int
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    errors: tuple[int, ...]
    media_type: str = "application/json"
    # Other success statuses with the same body, each with its meaning (e.g. an idempotent
    # create that answers 200 for a request it has seen).
    also: tuple[tuple[int, str], ...] = ()


# Path parameters by name: the Flask converter and the OpenAPI schema.
PATH_PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "campaign_id": ("id", {"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_ID}),
    "name": ("string", {"type": "string", "minLength": 1, "maxLength": 100}),
    "placement_id": (
        "id",
        {"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_ID},
    ),
}
PATH_EXAMPLES: dict[str, Any] = {"campaign_id": 1, "name": "A", "placement_id": 1}
# Every authenticated endpoint can answer these, whatever else it does.
COMMON_ERRORS = (401, 404, 429)


class Contract:
    """The endpoints of one blueprint, declared with their models."""

    def __init__(self, blueprint: Blueprint) -> None:
        self.blueprint = blueprint
        self.operations: list[Operation] = []

    def endpoint(
        self,
        method: str,
        path: str,
        *,
        response: type[BaseModel] | None,
        status: int = 200,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
        media_type: str = "application/json",
        also: tuple[tuple[int, str], ...] = (),
    ) -> Callable[[F], F]:
        """Register a view under ``path`` (OpenAPI form) and record it for the document; its
        docstring's first line is the summary, the rest the description."""

        def register(view: F) -> F:
            rule = re.sub(
                r"\{(\w+)\}", lambda m: f"<{PATH_PARAMETERS[m.group(1)][0]}:{m.group(1)}>", path
            )
            self.blueprint.add_url_rule(rule, view_func=view, methods=[method.upper()])
            summary, _, description = (view.__doc__ or view.__name__).strip().partition("\n")
            found = set(errors) | set(COMMON_ERRORS)
            if body is not None:
                found |= {400, 413, 415, 422}
            if query is not None:
                found |= {400, 422}
            self.operations.append(
                Operation(
                    method=method.lower(),
                    path=path,
                    name=view.__name__,
                    summary=summary.strip(),
                    description=" ".join(description.split()),
                    response=response,
                    status=status,
                    body=body,
                    query=query,
                    errors=tuple(sorted(found)),
                    media_type=media_type,
                    also=also,
                )
            )
            return view

        return register

    def document(self, *, title: str, version: str, server: str) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared endpoint."""
        models: set[type[BaseModel]] = {ErrorOut}
        for op in self.operations:
            if op.response is not None:
                models.add(op.response)
            if op.body is not None:
                models.add(op.body)
        ordered = sorted(models, key=lambda m: m.__name__)
        _, schemas = models_json_schema(
            [(m, "validation" if m is not ErrorOut else "serialization") for m in ordered],
            ref_template="#/components/schemas/{model}",
        )
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method] = _operation(op)
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "servers": [{"url": server}],
            "security": [{"bearerAuth": []}],
            "paths": paths,
            "components": {
                "schemas": schemas.get("$defs", {}),
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API token from `clickmap token create`.",
                    }
                },
            },
        }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    found = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": PATH_PARAMETERS[name][1],
            "example": PATH_EXAMPLES[name],
        }
        for name in re.findall(r"\{(\w+)\}", op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            description = prop.pop("description", None)
            prop.pop("title", None)
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if description:
                parameter["description"] = description
            found.append(parameter)
    return found


def _operation(op: Operation) -> dict[str, Any]:
    schema: dict[str, Any] = (
        _ref(op.response)
        if op.response is not None
        else {"type": "string", "contentMediaType": op.media_type}
    )
    responses: dict[str, Any] = {
        str(op.status): {"description": op.summary, "content": {op.media_type: {"schema": schema}}}
    }
    for status, description in op.also:
        responses[str(status)] = {
            "description": description,
            "content": {op.media_type: {"schema": schema}},
        }
    for status in op.errors:
        responses[str(status)] = {
            "description": API_ERRORS[status],
            "content": {"application/json": {"schema": _ref(ErrorOut)}},
        }
    found: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.description:
        found["description"] = op.description
    if op.body is not None:
        found["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    return found
