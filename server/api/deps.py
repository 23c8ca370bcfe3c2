"""Dependencies, declared once as Annotated aliases.

The ones that only look something up are `async def`: FastAPI runs a plain `def` dependency in
its thread pool, a hand-off to a worker thread and back for every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from config.settings import Settings, route_factors
from server.db.unit_of_work import Database, IdempotencyClaim
from server.domain.errors import Unauthenticated
from server.domain.model import Actor
from server.services.credentials import TokenCache

bearer = HTTPBearer(auto_error=False, description="A B40 token: `Authorization: Bearer <token>`")


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Db = Annotated[Database, Depends(get_database)]
AppSettings = Annotated[Settings, Depends(get_settings)]


async def current_actor(
    request: Request,
    database: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
    tokens: TokenCache = request.app.state.tokens
    actor = await tokens.actor(database, credentials.credentials)
    # For the middlewares around the app: the rate limiter (a token that authenticated is not
    # held back by failures from its address) and the access log (who made the call).
    request.scope.setdefault("b40", {})["actor"] = actor
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def get_route_factors(settings: AppSettings) -> dict[str, float]:
    return route_factors(settings)


RouteFactors = Annotated[dict[str, float], Depends(get_route_factors)]


async def idempotency_claim(
    request: Request,
    actor: CurrentActor,
    idempotency_key: Annotated[str | None, Header(max_length=200, min_length=1)] = None,
) -> IdempotencyClaim | None:
    if idempotency_key is None:
        return None
    return IdempotencyClaim(
        user_id=actor.user_id,
        key=idempotency_key,
        method=request.method,
        path=request.url.path,
        body=await request.body(),
    )


Idempotency = Annotated[IdempotencyClaim | None, Depends(idempotency_claim)]
