"""Domain and database errors -> HTTP, in one place. Never a 500 for a known failure."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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


def install(app: FastAPI) -> None:
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
