"""Offers of units for request lines, their acceptance, and the deployments that follow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db.tables import DeploymentRow, OfferRow, RequestItemRow, RequestRow, ResourceRow
from server.db.unit_of_work import Tx, rows_changed
from server.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.domain.matching import distance_km, eta_hours
from server.domain.model import LineStatus, Point
from server.domain.policy import require_any_city, require_city
from server.domain.requests import OPEN_LINE_STATUSES
from server.domain.status import (
    DEPLOYMENT_NEXT,
    OFFER_NEXT,
    UNIT_FOR_DEPLOYMENT,
    DeploymentStatus,
    OfferStatus,
    UnitStatus,
    check_transition,
)
from server.services import catalogue
from server.services.incidents import load_incident
from server.services.requests import items_of, load_request
from server.services.resources import available_count, load_resource, move_unit
from server.services.views import deployment_view, item_view, offer_view, request_view


def load_item(session: Session, item_id: int, *, lock: bool = False) -> RequestItemRow:
    row = session.get(RequestItemRow, item_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"no request item {item_id}", field="request_item_id")
    return row


def load_offer(session: Session, offer_id: int, *, lock: bool = False) -> OfferRow:
    row = session.get(OfferRow, offer_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"no offer {offer_id}", field="id")
    return row


def make_offer(
    tx: Tx,
    *,
    request_item_id: int,
    resource_id: int,
    route_factors: dict[str, float],
    override_reserve: bool = False,
) -> dict[str, Any]:
    """A donor city offers one of its units for a line; the unit becomes `offered`."""
    assert tx.actor is not None
    item = load_item(tx.session, request_item_id, lock=True)
    request = load_request(tx.session, item.request_id)
    unit = load_resource(tx.session, resource_id, lock=True, field="resource_id")
    require_city(tx.actor, unit.city, "offering a unit")
    if override_reserve and not tx.actor.is_network_wide:
        raise Forbidden("only a coordinator may override a reserve", field="override_reserve")
    _check_line_open(tx, request, item)
    if unit.city == request.city:
        raise InvalidInput("a city cannot lend its own unit to itself", field="resource_id")
    if unit.exercise != request.exercise:
        kind = "an exercise" if request.exercise else "a live"
        raise InvalidInput(f"exercise and live data never mix: {kind} request", field="resource_id")
    accepted = (item.capability, *(item.substitutes or ()))
    if unit.capability not in accepted:
        raise InvalidInput(
            f"a {unit.capability} cannot fill a line for {item.capability} "
            f"(accepted: {', '.join(accepted)})",
            field="resource_id",
        )
    if unit.status != UnitStatus.AVAILABLE.value:
        raise Conflict(
            f"resource {unit.id} is {unit.status}, not available",
            field="resource_id",
            current=unit.status,
        )
    reserve = catalogue.reserves(tx.session).get((unit.city, unit.capability), 0)
    others = available_count(tx.session, unit.city, unit.capability, unit.exercise) - 1
    if others < reserve and not override_reserve:
        raise Conflict(
            f"{unit.city} keeps at least {reserve} {unit.capability} at home "
            f"and would have {others} left; "
            "a coordinator may override this with override_reserve",
            field="resource_id",
            reserve=reserve,
            left=others,
        )
    incident = load_incident(tx.session, request.incident_id)
    capability = catalogue.capabilities(tx.session)[unit.capability]
    km = distance_km(Point(unit.lat, unit.lon), Point(incident.lat, incident.lon))
    move_unit(tx, unit, UnitStatus.OFFERED, expect=UnitStatus.AVAILABLE)
    offer = OfferRow(
        request_item_id=item.id,
        resource_id=unit.id,
        donor_city=unit.city,
        requesting_city=request.city,
        status=OfferStatus.PENDING.value,
        reserve_override=override_reserve and others < reserve,
        distance_km=round(km, 3),
        eta_hours=round(eta_hours(unit.readiness_hours, km, capability, route_factors), 4),
        created_at=tx.now,
        created_by=tx.actor.user_id,
    )
    tx.session.add(offer)
    item.offered += 1
    tx.session.flush()
    _record_offer(tx, "offer.created", offer, request)
    return offer_view(offer)


def accept_offer(tx: Tx, offer_id: int) -> dict[str, Any]:
    """The requesting city (or a coordinator) accepts: a deployment starts `mobilising`."""
    assert tx.actor is not None
    offer = load_offer(tx.session, offer_id, lock=True)
    require_city(tx.actor, offer.requesting_city, "accepting an offer")
    check_transition("offer", OFFER_NEXT, OfferStatus(offer.status), OfferStatus.ACCEPTED)
    item = load_item(tx.session, offer.request_item_id, lock=True)
    request = load_request(tx.session, item.request_id)
    _check_line_open(tx, request, item)
    _set_offer_status(tx, offer, OfferStatus.ACCEPTED)
    unit = load_resource(tx.session, offer.resource_id, lock=True)
    move_unit(tx, unit, UnitStatus.MOBILISING, expect=UnitStatus.OFFERED)
    item.offered -= 1
    item.accepted += 1
    deployment = DeploymentRow(
        offer_id=offer.id,
        resource_id=offer.resource_id,
        request_item_id=item.id,
        donor_city=offer.donor_city,
        requesting_city=offer.requesting_city,
        status=DeploymentStatus.MOBILISING.value,
        created_at=tx.now,
        updated_at=tx.now,
        timeline={DeploymentStatus.MOBILISING.value: tx.now.isoformat()},
    )
    tx.session.add(deployment)
    tx.session.flush()
    _record_offer(tx, "offer.accepted", offer, request)
    _record_deployment(tx, "deployment.created", deployment, request)
    return {**offer_view(offer), "deployment": deployment_view(deployment)}


def decline_offer(tx: Tx, offer_id: int) -> dict[str, Any]:
    assert tx.actor is not None
    offer = load_offer(tx.session, offer_id, lock=True)
    require_city(tx.actor, offer.requesting_city, "declining an offer")
    close_offer(tx, offer, OfferStatus.DECLINED)
    return offer_view(offer)


def withdraw_offer(tx: Tx, offer_id: int) -> dict[str, Any]:
    assert tx.actor is not None
    offer = load_offer(tx.session, offer_id, lock=True)
    require_city(tx.actor, offer.donor_city, "withdrawing an offer")
    close_offer(tx, offer, OfferStatus.WITHDRAWN)
    return offer_view(offer)


def close_offer(tx: Tx, offer: OfferRow, status: OfferStatus) -> None:
    """Decline or withdraw a pending offer: the unit is free again."""
    check_transition("offer", OFFER_NEXT, OfferStatus(offer.status), status)
    _set_offer_status(tx, offer, status)
    item = load_item(tx.session, offer.request_item_id, lock=True)
    item.offered -= 1
    unit = load_resource(tx.session, offer.resource_id, lock=True)
    move_unit(tx, unit, UnitStatus.AVAILABLE, expect=UnitStatus.OFFERED)
    request = load_request(tx.session, item.request_id)
    tx.session.flush()
    _record_offer(tx, f"offer.{status.value}", offer, request)


def dispatch(
    tx: Tx,
    *,
    request_item_id: int,
    resource_id: int,
    route_factors: dict[str, float],
    override_reserve: bool = False,
) -> dict[str, Any]:
    """A coordinator's direct dispatch for pre-agreed arrangements: offer and accept at once."""
    assert tx.actor is not None
    if not tx.actor.is_network_wide:
        raise Forbidden("direct dispatch is for coordinators")
    offer = make_offer(
        tx,
        request_item_id=request_item_id,
        resource_id=resource_id,
        route_factors=route_factors,
        override_reserve=override_reserve,
    )
    return accept_offer(tx, offer["id"])


def move_deployment(tx: Tx, deployment_id: int, status: DeploymentStatus) -> dict[str, Any]:
    """Advance a deployment; its unit and the line's counters follow."""
    assert tx.actor is not None
    deployment = tx.session.get(DeploymentRow, deployment_id, with_for_update=True)
    if deployment is None:
        raise NotFound(f"no deployment {deployment_id}", field="id")
    require_any_city(
        tx.actor, {deployment.donor_city, deployment.requesting_city}, "moving a deployment"
    )
    current = DeploymentStatus(deployment.status)
    check_transition("deployment", DEPLOYMENT_NEXT, current, status)
    changed = rows_changed(
        tx.session.execute(
            update(DeploymentRow)
            .where(DeploymentRow.id == deployment.id, DeploymentRow.status == current.value)
            .values(status=status.value, updated_at=tx.now)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        raise Conflict(f"deployment {deployment_id} changed meanwhile", field="status")
    tx.session.refresh(deployment)
    deployment.timeline = {**(deployment.timeline or {}), status.value: tx.now.isoformat()}
    item = load_item(tx.session, deployment.request_item_id, lock=True)
    request = load_request(tx.session, item.request_id)
    unit = load_resource(tx.session, deployment.resource_id, lock=True)
    move_unit(tx, unit, UNIT_FOR_DEPLOYMENT[status])
    if status is DeploymentStatus.ON_SCENE:
        item.arrived += 1
        incident = load_incident(tx.session, request.incident_id)
        unit.lat, unit.lon = incident.lat, incident.lon
    elif status is DeploymentStatus.RELEASED:
        item.released += 1
    elif status is DeploymentStatus.RETURNED:
        item.returned += 1
        unit.lat, unit.lon = unit.home_lat, unit.home_lon
    tx.session.flush()
    _record_deployment(tx, "deployment.status_changed", deployment, request, previous=current.value)
    return deployment_view(deployment)


def list_offers(
    session: Session,
    *,
    status: str | None,
    request_item_id: int | None,
    city: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(OfferRow)
    if status is not None:
        query = query.where(OfferRow.status == status)
    if request_item_id is not None:
        query = query.where(OfferRow.request_item_id == request_item_id)
    if city is not None:
        query = query.where((OfferRow.donor_city == city) | (OfferRow.requesting_city == city))
    rows = list(session.scalars(query.order_by(OfferRow.id.desc())))
    return [offer_view(r) for r in rows[offset : offset + limit]], len(rows)


def list_deployments(
    session: Session,
    *,
    status: str | None,
    city: str | None,
    resource_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(DeploymentRow)
    if status is not None:
        query = query.where(DeploymentRow.status == status)
    if resource_id is not None:
        query = query.where(DeploymentRow.resource_id == resource_id)
    if city is not None:
        query = query.where(
            (DeploymentRow.donor_city == city) | (DeploymentRow.requesting_city == city)
        )
    rows = list(session.scalars(query.order_by(DeploymentRow.id.desc())))
    return [deployment_view(r) for r in rows[offset : offset + limit]], len(rows)


def offer_detail(session: Session, offer_id: int) -> dict[str, Any]:
    return offer_view(load_offer(session, offer_id))


def deployment_detail(session: Session, deployment_id: int) -> dict[str, Any]:
    row = session.get(DeploymentRow, deployment_id)
    if row is None:
        raise NotFound(f"no deployment {deployment_id}", field="id")
    return deployment_view(row)


def _check_line_open(tx: Tx, request: RequestRow, item: RequestItemRow) -> None:
    view = item_view(item, cancelled=request.cancelled_at is not None, now=tx.now)
    if LineStatus(view["status"]) not in OPEN_LINE_STATUSES:
        raise Conflict(
            f"request item {item.id} is {view['status']}; it takes no more units",
            field="request_item_id",
            line_status=view["status"],
        )


def _set_offer_status(tx: Tx, offer: OfferRow, status: OfferStatus) -> None:
    # Compare-and-set on the status read, so 30 concurrent accepts have one winner.
    changed = rows_changed(
        tx.session.execute(
            update(OfferRow)
            .where(OfferRow.id == offer.id, OfferRow.status == OfferStatus.PENDING.value)
            .values(
                status=status.value,
                decided_at=tx.now,
                decided_by=tx.actor.user_id if tx.actor else None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    tx.session.refresh(offer)
    if changed != 1:
        raise Conflict(f"offer {offer.id} is {offer.status} now", field="id", current=offer.status)


def _record_offer(tx: Tx, type: str, offer: OfferRow, request: RequestRow) -> None:
    tx.record(
        type,
        "offer",
        offer.id,
        city=offer.requesting_city,
        payload={
            **offer_view(offer),
            "request": request_view(request, items_of(tx.session, request.id), tx.now),
        },
        exercise=request.exercise,
    )


def _record_deployment(
    tx: Tx, type: str, deployment: DeploymentRow, request: RequestRow, previous: str | None = None
) -> None:
    resource = tx.session.get(ResourceRow, deployment.resource_id)
    payload = {
        **deployment_view(deployment),
        "previous_status": previous,
        "request": request_view(request, items_of(tx.session, request.id), tx.now),
    }
    if resource is not None:
        payload["resource"] = {
            "callsign": resource.callsign,
            "lat": resource.lat,
            "lon": resource.lon,
        }
    tx.record(
        type,
        "deployment",
        deployment.id,
        city=deployment.requesting_city,
        payload=payload,
        exercise=request.exercise,
    )
