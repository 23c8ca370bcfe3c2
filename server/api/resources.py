"""Units: register, list, read, change status by hand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.api.deps import CurrentActor, Db, Idempotency
from server.api.responses import Limit, Offset, page, reply
from server.api.schemas import Code, Id, ResourceBulkIn, ResourceIn, Slug, StatusIn
from server.domain.status import UnitStatus
from server.services import resources

router = APIRouter(prefix="/resources", tags=["resources"])


@router.post("", status_code=201)
def create_resource(
    body: ResourceIn, actor: CurrentActor, database: Db, claim: Idempotency
) -> JSONResponse:
    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        return 201, resources.create_resource(tx, **body.model_dump())

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.post("/bulk", status_code=201)
def create_resources_bulk(
    body: ResourceBulkIn, actor: CurrentActor, database: Db, claim: Idempotency
) -> JSONResponse:
    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        items = resources.create_resources_bulk(tx, **body.model_dump())
        return 201, {"items": items, "total": len(items)}

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.get("")
def list_resources(
    actor: CurrentActor,
    database: Db,
    city: Slug | None = None,
    capability: Code | None = None,
    status: UnitStatus | None = None,
    exercise: bool | None = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = database.read(
        lambda s: resources.list_resources(
            s,
            city=city,
            capability=capability,
            status=status.value if status else None,
            exercise=exercise,
            limit=limit,
            offset=offset,
        )
    )
    return page(items, total, limit, offset)


@router.get("/{resource_id}")
def get_resource(resource_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: resources.get_resource(s, resource_id))


@router.post("/{resource_id}/status")
def set_resource_status(
    resource_id: Id, body: StatusIn, actor: CurrentActor, database: Db
) -> dict[str, Any]:
    return database.run(
        lambda tx: resources.set_status_by_hand(tx, resource_id, body.status), actor=actor
    )
