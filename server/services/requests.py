"""Aid requests: post, cancel, read, and rank candidate units per line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from server.db.tables import (
    CapabilityRow,
    IncidentRow,
    OfferRow,
    RequestItemRow,
    RequestRow,
    ResourceRow,
    SubstitutionRow,
)
from server.db.unit_of_work import Tx
from server.db.writes import insert_with_children
from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.matching import rank_candidates
from server.domain.model import Point, Priority, Unit
from server.domain.policy import require_city, resolve_city
from server.domain.status import OfferStatus, UnitStatus
from server.services import catalogue
from server.services.incidents import load_incident
from server.services.views import request_view, to_line

MAX_LINES = 50


@dataclass(frozen=True, slots=True)
class LineInput:
    capability: str
    quantity: int
    substitutes: tuple[str, ...] | None = None
    needed_by: datetime | None = None


def create_request(
    tx: Tx,
    *,
    city: str | None,
    incident_id: int,
    priority: Priority,
    items: list[LineInput],
    note: str | None = None,
) -> dict[str, Any]:
    assert tx.actor is not None
    city = resolve_city(tx.actor, city, "posting an aid request")
    codes = [i.capability for i in items] + [c for i in items for c in i.substitutes or ()]
    incident, known = _incident_and_rules(tx.session, incident_id, codes)
    if incident is None:
        raise NotFound(f"no incident {incident_id}", field="incident_id")
    if incident.city != city:
        raise InvalidInput(
            f"incident {incident_id} belongs to {incident.city!r}, not {city!r}",
            field="incident_id",
        )
    if not 1 <= len(items) <= MAX_LINES:
        raise InvalidInput(f"a request has 1 to {MAX_LINES} items", field="items")
    for index, item in enumerate(items):
        where = f"items.{index}"
        if item.capability not in known:
            raise InvalidInput(
                f"unknown capability {item.capability!r}", field=f"{where}.capability"
            )
        if item.quantity < 1:
            raise InvalidInput("quantity must be at least 1", field=f"{where}.quantity")
        for sub in item.substitutes or ():
            if sub not in known:
                raise InvalidInput(f"unknown capability {sub!r}", field=f"{where}.substitutes")
        if item.needed_by is not None and item.needed_by <= tx.now:
            raise InvalidInput("needed_by is in the past", field=f"{where}.needed_by")
    request = RequestRow(
        city=city,
        incident_id=incident_id,
        priority=priority.value,
        exercise=incident.exercise,
        note=note,
        created_at=tx.now,
        created_by=tx.actor.user_id,
        cancelled_at=None,
    )
    rows = [
        RequestItemRow(
            position=index,
            capability=item.capability,
            quantity=item.quantity,
            # None means "the catalogue's rules"; we store the resolved list so that a later
            # change of rules does not change what an open request accepts.
            substitutes=list(
                item.substitutes if item.substitutes is not None else known[item.capability]
            ),
            needed_by=item.needed_by,
            offered=0,
            accepted=0,
            arrived=0,
            released=0,
            returned=0,
        )
        for index, item in enumerate(items)
    ]
    insert_with_children(tx.session, request, rows, link="request_id", sentinel="position")
    view = request_view(request, rows, tx.now)
    tx.record(
        "request.created", "request", request.id, city=city, payload=view, exercise=request.exercise
    )
    return view


_INCIDENT_AND_RULES = (
    select(IncidentRow.city, IncidentRow.exercise, CapabilityRow.code, SubstitutionRow.substitute)
    .select_from(IncidentRow)
    .outerjoin(CapabilityRow, CapabilityRow.code.in_(bindparam("codes", expanding=True)))
    .outerjoin(SubstitutionRow, SubstitutionRow.for_capability == CapabilityRow.code)
    .where(IncidentRow.id == bindparam("incident_id"))
    .order_by(SubstitutionRow.substitute)
)


def _incident_and_rules(
    session: Session, incident_id: int, codes: Iterable[str]
) -> tuple[Any, dict[str, list[str]]]:
    """The incident's row (city, exercise; None if there is none), and those of `codes` the
    catalogue holds with their substitution rules: one round trip, as posting a request runs
    it every time."""
    rows = (
        session.connection()
        .execute(_INCIDENT_AND_RULES, {"incident_id": incident_id, "codes": sorted(set(codes))})
        .all()
    )
    if not rows:
        return None, {}
    return rows[0], catalogue.rules_from((r.code, r.substitute) for r in rows if r.code)


def load_request(session: Session, request_id: int, *, lock: bool = False) -> RequestRow:
    row = session.get(RequestRow, request_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"no request {request_id}", field="id")
    return row


def items_of(session: Session, request_id: int) -> list[RequestItemRow]:
    return list(
        session.scalars(
            select(RequestItemRow)
            .where(RequestItemRow.request_id == request_id)
            .order_by(RequestItemRow.position)
        )
    )


def request_detail(session: Session, request_id: int, now: datetime) -> dict[str, Any]:
    row = load_request(session, request_id)
    return request_view(row, items_of(session, row.id), now)


def list_requests(
    session: Session,
    *,
    now: datetime,
    city: str | None,
    status: str | None,
    exercise: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(RequestRow)
    if city is not None:
        query = query.where(RequestRow.city == city)
    if exercise is not None:
        query = query.where(RequestRow.exercise == exercise)
    rows = list(session.scalars(query.order_by(RequestRow.id.desc())))
    items: dict[int, list[RequestItemRow]] = {}
    if rows:
        for item in session.scalars(
            select(RequestItemRow).where(RequestItemRow.request_id.in_([r.id for r in rows]))
        ):
            items.setdefault(item.request_id, []).append(item)
    views = [request_view(r, items.get(r.id, []), now) for r in rows]
    if status is not None:
        # Status is derived (it depends on the time), so it is filtered after deriving it.
        views = [v for v in views if v["status"] == status]
    return views[offset : offset + limit], len(views)


def cancel_request(tx: Tx, request_id: int) -> dict[str, Any]:
    """Cancel a request: its pending offers are declined and their units freed."""
    assert tx.actor is not None
    request = load_request(tx.session, request_id, lock=True)
    require_city(tx.actor, request.city, "cancelling a request")
    if request.cancelled_at is not None:
        raise Conflict(f"request {request_id} is already cancelled", field="id")
    from server.services.offers import close_offer  # offers build on requests

    items = items_of(tx.session, request.id)
    pending = tx.session.scalars(
        select(OfferRow).where(
            OfferRow.request_item_id.in_([i.id for i in items]),
            OfferRow.status == OfferStatus.PENDING.value,
        )
    ).all()
    for offer in pending:
        close_offer(tx, offer, OfferStatus.DECLINED)
    request.cancelled_at = tx.now
    tx.session.flush()
    view = request_view(request, items_of(tx.session, request.id), tx.now)
    tx.record(
        "request.cancelled",
        "request",
        request.id,
        city=request.city,
        payload=view,
        exercise=request.exercise,
    )
    return view


def lendable_units(
    session: Session,
    *,
    exercise: bool,
    outside_city: str,
    capabilities: Iterable[str] | None = None,
) -> list[Unit]:
    """Available units of every other city (optionally of some capabilities), as domain values.

    Exercise units serve exercises only, live units live requests; reserves are the ranker's.
    """
    query = select(ResourceRow).where(
        ResourceRow.status == UnitStatus.AVAILABLE.value,
        ResourceRow.exercise == exercise,
        ResourceRow.city != outside_city,
    )
    if capabilities is not None:
        query = query.where(ResourceRow.capability.in_(sorted(set(capabilities))))
    return [
        Unit(
            id=r.id,
            city=r.city,
            capability=r.capability,
            callsign=r.callsign,
            position=Point(r.lat, r.lon),
            readiness_hours=r.readiness_hours,
            status=UnitStatus(r.status),
            exercise=r.exercise,
        )
        for r in session.scalars(query)
    ]


def candidates(
    session: Session, request_id: int, *, route_factors: dict[str, float], limit: int = 50
) -> dict[str, Any]:
    request = load_request(session, request_id)
    incident = load_incident(session, request.incident_id)
    units = lendable_units(session, exercise=request.exercise, outside_city=request.city)
    known = catalogue.capabilities(session)
    reserves = catalogue.reserves(session)
    out = []
    for item in items_of(session, request.id):
        line = to_line(item)
        ranked = rank_candidates(
            line,
            incident=Point(incident.lat, incident.lon),
            requesting_city=request.city,
            exercise=request.exercise,
            units=units,
            catalogue=known,
            reserves=reserves,
            # Lines store their resolved substitutes (see create_request): no rules needed here.
            substitution_rules={},
            route_factors=route_factors,
        )
        out.append(
            {
                "item_id": item.id,
                "capability": item.capability,
                "remaining": max(0, item.quantity - item.accepted),
                "candidates": [
                    {
                        "resource_id": c.resource_id,
                        "city": c.city,
                        "capability": c.capability,
                        "callsign": c.callsign,
                        "distance_km": round(c.distance_km, 3),
                        "eta_hours": round(c.eta_hours, 4),
                    }
                    for c in ranked[:limit]
                ],
            }
        )
    return {"request_id": request.id, "items": out}


def count_requests(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)
