"""Incidents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.api.deps import CurrentActor, Db, Idempotency
from server.api.responses import Limit, Offset, page, reply
from server.api.schemas import Id, IncidentIn, Slug
from server.services import incidents
from server.services.views import incident_view

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.post("", status_code=201)
def create_incident(
    body: IncidentIn, actor: CurrentActor, database: Db, claim: Idempotency
) -> JSONResponse:
    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        return 201, incidents.create_incident(tx, **body.model_dump())

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.get("")
def list_incidents(
    actor: CurrentActor,
    database: Db,
    city: Slug | None = None,
    exercise: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = database.read(
        lambda s: incidents.list_incidents(
            s, city=city, exercise=exercise, limit=limit, offset=offset
        )
    )
    return page(items, total, limit, offset)


@router.get("/{incident_id}")
def get_incident(incident_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: incident_view(incidents.load_incident(s, incident_id)))
