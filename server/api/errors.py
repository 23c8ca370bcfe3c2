"""Domain and database errors -> HTTP, in one place. Never a 500 for a known failure."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from server.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    Conflict: 409,
    Forbidden: 403,
    Unauthenticated: 401,
    Unavailable: 503,
}
RETRY_AFTER_SECONDS = "2"


def status_of(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["detail"],
}
_ERROR = {"$ref": "#/components/schemas/Error"}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
}
# Documented on every /api operation, so clients (and schemathesis) know every answer.
API_ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "401": ("Missing, unknown, expired or revoked token.", {}),
    "403": ("The token's role or city may not do this.", {}),
    "404": ("No such object.", {}),
    "409": ("The current state forbids it (e.g. the unit is no longer available).", {}),
    "429": ("Rate limited (docs/security.md).", _RETRY_AFTER),
    "503": ("The database is unavailable.", _RETRY_AFTER),
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers every operation can give to an OpenAPI document, in place."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            wanted = dict(API_ERRORS) if path.startswith("/api/") else {"503": API_ERRORS["503"]}
            if "requestBody" in operation:
                wanted["400"] = ("The body is not JSON.", {})
                wanted["413"] = ("The body is larger than max_body_bytes.", {})
            for status, (description, headers) in wanted.items():
                answer: dict[str, Any] = {
                    "description": description,
                    "content": {"application/json": {"schema": _ERROR}},
                }
                if headers:
                    answer["headers"] = headers
                responses.setdefault(status, answer)
            if "422" in responses:
                # Pydantic's list of errors, or ours: a domain error naming the field.
                content = responses["422"].setdefault("content", {})
                current = content.get("application/json", {}).get("schema")
                options = [current, _ERROR] if current else [_ERROR]
                content["application/json"] = {"schema": {"anyOf": options}}
    return schema


RouteEntry = tuple[re.Pattern[str], int, frozenset[str]]


def _route_table(app: FastAPI) -> list[RouteEntry]:
    """Every route's full path pattern, parameter count and methods (prefixed routers too)."""
    cached: list[RouteEntry] | None = getattr(app.state, "route_table", None)
    if cached is not None:
        return cached
    table: list[RouteEntry] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            context = getattr(route, "include_context", None)
            if context is not None:
                walk(context.included_router.routes, prefix + context.prefix)
            elif getattr(route, "methods", None):
                regex, _, params = compile_path(prefix + route.path)
                table.append((regex, len(params), frozenset(route.methods)))

    walk(app.router.routes, "")
    app.state.route_table = table
    return table


def install(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(original())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code != 405:
            return await http_exception_handler(request, error)
        # Starlette names only the methods of the first route matching the path; a path with
        # GET and POST routes must answer with both (RFC 9110 Allow).
        path = request.scope["path"]
        matches = [(n, methods) for regex, n, methods in _route_table(app) if regex.match(path)]
        # A literal segment beats a parameter (/resources/bulk is not /resources/{id}).
        fewest = min((n for n, _ in matches), default=0)
        allowed = {m for n, methods in matches if n == fewest for m in methods}
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        return JSONResponse({"detail": error.detail}, status_code=405, headers=headers)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, error: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthenticated) else None
        if isinstance(error, Unavailable):
            headers = {"Retry-After": RETRY_AFTER_SECONDS}
        return JSONResponse(error.body(), status_code=status_of(error), headers=headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, error: IntegrityError) -> JSONResponse:
        # The database's own invariants (one live offer / deployment per unit, unique
        # callsigns) caught a race the code's checks could not see.
        log.info("integrity conflict: %s", error.orig)
        return JSONResponse(
            {
                "detail": "a concurrent change conflicts with this one; reload and retry",
                "code": "conflict",
            },
            status_code=409,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)  # every pooled connection busy for pool_timeout seconds
    async def _database_down(_: Request, error: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", getattr(error, "orig", None) or error)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly", "code": "unavailable"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
