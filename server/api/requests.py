"""Aid requests and their candidates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from server.api.deps import CurrentActor, Db, Idempotency, RouteFactors
from server.api.responses import Limit, Offset, page, reply
from server.api.schemas import Id, RequestIn, Slug
from server.domain.model import LineStatus
from server.services import requests
from server.services.requests import LineInput

router = APIRouter(prefix="/requests", tags=["requests"])


@router.post("", status_code=201)
def create_request(
    body: RequestIn, actor: CurrentActor, database: Db, claim: Idempotency
) -> JSONResponse:
    lines = [
        LineInput(
            capability=i.capability,
            quantity=i.quantity,
            substitutes=tuple(i.substitutes) if i.substitutes is not None else None,
            needed_by=i.needed_by,
        )
        for i in body.items
    ]

    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        view = requests.create_request(
            tx,
            city=body.city,
            incident_id=body.incident_id,
            priority=body.priority,
            items=lines,
            note=body.note,
        )
        return 201, view

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.get("")
def list_requests(
    actor: CurrentActor,
    database: Db,
    city: Slug | None = None,
    status: LineStatus | None = None,
    exercise: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    now = database.clock()
    items, total = database.read(
        lambda s: requests.list_requests(
            s,
            now=now,
            city=city,
            status=status.value if status else None,
            exercise=exercise,
            limit=limit,
            offset=offset,
        )
    )
    return page(items, total, limit, offset)


@router.get("/{request_id}")
def get_request(request_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    now = database.clock()
    return database.read(lambda s: requests.request_detail(s, request_id, now))


@router.post("/{request_id}/cancel")
def cancel_request(request_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: requests.cancel_request(tx, request_id), actor=actor)


@router.get("/{request_id}/candidates")
def get_candidates(
    request_id: Id,
    actor: CurrentActor,
    database: Db,
    factors: RouteFactors,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    return database.read(
        lambda s: requests.candidates(s, request_id, route_factors=factors, limit=limit)
    )
