"""Offers, direct dispatch and deployments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.api.deps import CurrentActor, Db, Idempotency, RouteFactors
from server.api.responses import Limit, Offset, page, reply
from server.api.schemas import DeploymentStatusIn, Id, OfferIn, Slug
from server.domain.status import DeploymentStatus, OfferStatus
from server.services import offers

router = APIRouter(tags=["offers and deployments"])


@router.post("/offers", status_code=201)
def create_offer(
    body: OfferIn, actor: CurrentActor, database: Db, factors: RouteFactors, claim: Idempotency
) -> JSONResponse:
    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        return 201, offers.make_offer(tx, **body.model_dump(), route_factors=factors)

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.get("/offers")
def list_offers(
    actor: CurrentActor,
    database: Db,
    status: OfferStatus | None = None,
    request_item_id: Id | None = None,
    city: Slug | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = database.read(
        lambda s: offers.list_offers(
            s,
            status=status.value if status else None,
            request_item_id=request_item_id,
            city=city,
            limit=limit,
            offset=offset,
        )
    )
    return page(items, total, limit, offset)


@router.get("/offers/{offer_id}")
def get_offer(offer_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: offers.offer_detail(s, offer_id))


@router.post("/offers/{offer_id}/accept")
def accept_offer(offer_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: offers.accept_offer(tx, offer_id), actor=actor)


@router.post("/offers/{offer_id}/decline")
def decline_offer(offer_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: offers.decline_offer(tx, offer_id), actor=actor)


@router.post("/offers/{offer_id}/withdraw")
def withdraw_offer(offer_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: offers.withdraw_offer(tx, offer_id), actor=actor)


@router.post("/dispatches", status_code=201)
def create_dispatch(
    body: OfferIn, actor: CurrentActor, database: Db, factors: RouteFactors, claim: Idempotency
) -> JSONResponse:
    def use_case(tx: Any) -> tuple[int, dict[str, Any]]:
        return 201, offers.dispatch(tx, **body.model_dump(), route_factors=factors)

    return reply(database.run_idempotent(use_case, actor=actor, claim=claim))


@router.get("/deployments")
def list_deployments(
    actor: CurrentActor,
    database: Db,
    status: DeploymentStatus | None = None,
    city: Slug | None = None,
    resource_id: Id | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = database.read(
        lambda s: offers.list_deployments(
            s,
            status=status.value if status else None,
            city=city,
            resource_id=resource_id,
            limit=limit,
            offset=offset,
        )
    )
    return page(items, total, limit, offset)


@router.get("/deployments/{deployment_id}")
def get_deployment(deployment_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: offers.deployment_detail(s, deployment_id))


@router.post("/deployments/{deployment_id}/status")
def move_deployment(
    deployment_id: Id, body: DeploymentStatusIn, actor: CurrentActor, database: Db
) -> dict[str, Any]:
    return database.run(
        lambda tx: offers.move_deployment(tx, deployment_id, body.status), actor=actor
    )
