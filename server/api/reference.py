"""Cities, the capability catalogue and reserves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from server.api.deps import CurrentActor, Db
from server.api.schemas import ReserveIn, Slug
from server.services import catalogue
from server.services.resources import list_reserves, set_reserve

router = APIRouter(tags=["reference"])


@router.get("/cities")
def get_cities(actor: CurrentActor, database: Db) -> dict[str, Any]:
    items = database.read(catalogue.list_cities)
    return {"items": items, "total": len(items)}


@router.get("/cities/{slug}")
def get_city(slug: Slug, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: catalogue.city_detail(s, slug))


@router.get("/capabilities")
def get_capabilities(actor: CurrentActor, database: Db) -> dict[str, Any]:
    items = database.read(catalogue.list_capabilities)
    rules = database.read(catalogue.list_substitutions)
    return {"items": items, "total": len(items), "substitution_rules": rules}


@router.get("/cities/{slug}/reserves")
def get_reserves(slug: Slug, actor: CurrentActor, database: Db) -> dict[str, Any]:
    items = database.read(lambda s: list_reserves(s, slug))
    return {"items": items, "total": len(items)}


@router.put("/cities/{slug}/reserves/{capability}")
def put_reserve(
    slug: Slug,
    capability: Annotated[str, Path(pattern=r"^[A-Z0-9][A-Z0-9_-]*$", max_length=64)],
    body: ReserveIn,
    actor: CurrentActor,
    database: Db,
) -> dict[str, Any]:
    return database.run(lambda tx: set_reserve(tx, slug, capability, body.minimum), actor=actor)
