"""Network-wide allocation plans (coordinators): plan, read, apply; lender cover of an offer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from server.api.deps import AppSettings, CurrentActor, Db, RouteFactors
from server.api.schemas import Id, Strict
from server.services import allocations

router = APIRouter(tags=["allocations"])


class PlanIn(Strict):
    request_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None
    request_item_ids: Annotated[list[Id], Field(max_length=50_000)] | None = None
    exercise: bool = False


class ApplyIn(Strict):
    mode: Literal["offers", "dispatch"] = "offers"


@router.post("/allocations/plan")
def make_plan(
    body: PlanIn, actor: CurrentActor, database: Db, factors: RouteFactors, settings: AppSettings
) -> dict[str, Any]:
    """The exact best plan for open lines and available units; stored, not yet applied."""
    return database.run(
        lambda tx: allocations.make_plan(
            tx,
            request_ids=body.request_ids,
            request_item_ids=body.request_item_ids,
            exercise=body.exercise,
            route_factors=factors,
            cover_eta_hours=settings.cover_eta_hours,
        ),
        actor=actor,
    )


@router.get("/allocations/{plan_id}")
def get_plan(plan_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: allocations.plan_detail(s, plan_id))


@router.post("/allocations/{plan_id}/apply")
def apply_plan(
    plan_id: Id, body: ApplyIn, actor: CurrentActor, database: Db, factors: RouteFactors
) -> dict[str, Any]:
    """Offers (or direct dispatches) for every assignment, in one transaction; 409 if stale."""
    return database.run(
        lambda tx: allocations.apply_plan(tx, plan_id, mode=body.mode, route_factors=factors),
        actor=actor,
    )


@router.get("/offers/{offer_id}/cover")
def get_offer_cover(
    offer_id: Id, actor: CurrentActor, database: Db, factors: RouteFactors, settings: AppSettings
) -> dict[str, Any]:
    """Lender cover for one offer: what the donor keeps, and its nearest ETA with and without."""
    return database.read(
        lambda s: allocations.offer_cover(
            s, offer_id, route_factors=factors, cover_eta_hours=settings.cover_eta_hours
        )
    )
