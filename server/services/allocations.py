"""Network-wide allocation plans: build one (stored with what it was built on), apply one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.tables import (
    AllocationPlanRow,
    CityRow,
    IncidentRow,
    RequestItemRow,
    RequestRow,
    ResourceRow,
)
from server.db.unit_of_work import Tx
from server.domain.allocation import PRIORITIES, Plan, PlanLine, UnitTable, plan_allocation
from server.domain.cover import CoverFlag, lender_cover
from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.model import Point, Priority, Role
from server.domain.policy import require_role
from server.domain.requests import OPEN_LINE_STATUSES, line_status, remaining
from server.domain.status import UnitStatus
from server.services import catalogue, offers
from server.services.views import iso, to_line

PLANNERS = (Role.ADMIN, Role.COORDINATOR)
MODES = ("offers", "dispatch")


def make_plan(
    tx: Tx,
    *,
    request_ids: Sequence[int] | None,
    request_item_ids: Sequence[int] | None,
    exercise: bool,
    route_factors: dict[str, float],
    cover_eta_hours: float,
) -> dict[str, Any]:
    """The best plan for the open lines (all, or those named) and every available unit."""
    assert tx.actor is not None
    require_role(tx.actor, PLANNERS, "planning an allocation")
    session = tx.session
    lines, items = _open_lines(session, tx, request_ids, request_item_ids, exercise)
    units = _available_units(session, exercise)
    known = catalogue.capabilities(session)
    plan = plan_allocation(
        lines,
        units,
        catalogue=known,
        route_factors=route_factors,
        reserves=catalogue.reserves(session),
    )
    cities = {r.slug: Point(r.lat, r.lon) for r in session.scalars(select(CityRow))}
    covers, flags = lender_cover(
        ((a.city, a.capability) for a in plan.assignments),
        before=units,
        taken=[a.resource_id for a in plan.assignments],
        cities=cities,
        catalogue=known,
        route_factors=route_factors,
        threshold_hours=cover_eta_hours,
    )
    row = AllocationPlanRow(
        exercise=exercise,
        created_at=tx.now,
        created_by=tx.actor.user_id,
        body={},
        basis=_basis(session, plan, items),
        applied_at=None,
        applied_by=None,
        applied_mode=None,
    )
    session.add(row)
    session.flush()
    body = _plan_body(row, plan)
    body["lender_cover"] = [
        {
            "city": c.city,
            "capability": c.capability,
            "left_at_home": c.left_at_home,
            "nearest_eta_hours": _hours(c.nearest_eta_hours),
        }
        for c in covers
    ]
    body["flags"] = _flags(flags)
    row.body = body
    tx.record(
        "allocation.planned",
        "allocation_plan",
        row.id,
        city=None,
        payload={
            "id": row.id,
            "exercise": exercise,
            "request_ids": sorted({line.request_id for line in lines}),
            "incident_ids": sorted({line.incident_id for line in lines}),
            "assignments": len(plan.assignments),
            "unfilled": len(plan.unfilled),
            "objective": body["objective"],
            "flags": body["flags"],
        },
        exercise=exercise,
    )
    return body


def apply_plan(
    tx: Tx, plan_id: int, *, mode: str, route_factors: dict[str, float]
) -> dict[str, Any]:
    """Turn a plan into offers (or direct dispatches) in this one transaction, unless stale."""
    assert tx.actor is not None
    require_role(tx.actor, PLANNERS, "applying an allocation plan")
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}", field="mode")
    row = tx.session.get(AllocationPlanRow, plan_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no allocation plan {plan_id}", field="plan_id")
    if row.applied_at is not None:
        raise Conflict(
            f"allocation plan {plan_id} was already applied ({row.applied_mode}) "
            f"at {iso(row.applied_at)}",
            field="plan_id",
        )
    _refuse_if_stale(tx.session, row)
    made: list[dict[str, Any]] = []
    for a in row.body["assignments"]:
        args = {"request_item_id": a["request_item_id"], "resource_id": a["resource_id"]}
        if mode == "offers":
            made.append(offers.make_offer(tx, **args, route_factors=route_factors))
        else:
            made.append(offers.dispatch(tx, **args, route_factors=route_factors)["deployment"])
    row.applied_at, row.applied_by, row.applied_mode = tx.now, tx.actor.user_id, mode
    key = "offers" if mode == "offers" else "deployments"
    tx.record(
        "allocation.applied",
        "allocation_plan",
        row.id,
        city=None,
        payload={
            "plan_id": row.id,
            "mode": mode,
            "exercise": row.exercise,
            f"{key[:-1]}_ids": [m["id"] for m in made],
            "flags": row.body.get("flags", []),
        },
        exercise=row.exercise,
    )
    return {"plan_id": row.id, key: made}


def plan_detail(session: Session, plan_id: int) -> dict[str, Any]:
    row = session.get(AllocationPlanRow, plan_id)
    if row is None:
        raise NotFound(f"no allocation plan {plan_id}", field="plan_id")
    return {
        **row.body,
        "applied_at": iso(row.applied_at),
        "applied_mode": row.applied_mode,
    }


def offer_cover(
    session: Session, offer_id: int, *, route_factors: dict[str, float], cover_eta_hours: float
) -> dict[str, Any]:
    """Lender cover for one offer: what the donor keeps of the offered unit's capability, and
    the soonest ETA of that capability to the donor city, with the unit and without it.

    The offered unit counts as at home "before" whatever the offer's status (a pending offer
    makes it `offered`, an accepted one sends it away), so the answer is what lending it costs
    the donor against every other available unit of the same kind (live or exercise).
    """
    offer = offers.load_offer(session, offer_id)
    unit = session.get(ResourceRow, offer.resource_id)
    assert unit is not None  # a foreign key
    others = _available_units(session, unit.exercise)
    mine = others.take(np.flatnonzero(others.ids != unit.id))
    before = UnitTable.of(
        [*mine.ids.tolist(), unit.id],
        [*mine.city.tolist(), unit.city],
        [*mine.capability.tolist(), unit.capability],
        [*mine.lat.tolist(), unit.lat],
        [*mine.lon.tolist(), unit.lon],
        [*mine.readiness.tolist(), unit.readiness_hours],
    )
    city = session.get(CityRow, offer.donor_city)
    assert city is not None
    covers, flags = lender_cover(
        [(offer.donor_city, unit.capability)],
        before=before,
        taken=[unit.id],
        cities={city.slug: Point(city.lat, city.lon)},
        catalogue=catalogue.capabilities(session),
        route_factors=route_factors,
        threshold_hours=cover_eta_hours,
    )
    return {
        "offer_id": offer.id,
        "offer_status": offer.status,
        "resource_id": unit.id,
        "exercise": unit.exercise,
        "cover_eta_hours": cover_eta_hours,
        "lender_cover": [
            {
                "city": c.city,
                "capability": c.capability,
                "left_at_home": c.left_at_home,
                "nearest_eta_hours": _hours(c.nearest_eta_hours),
                "nearest_eta_hours_before": _hours(c.before_eta_hours),
            }
            for c in covers
        ],
        "flags": _flags(flags),
    }


def _flags(flags: Sequence[CoverFlag]) -> list[dict[str, Any]]:
    return [
        {
            "city": f.city,
            "capability": f.capability,
            "reason": f.reason,
            "nearest_eta_hours": _hours(f.nearest_eta_hours),
        }
        for f in flags
    ]


def _open_lines(
    session: Session,
    tx: Tx,
    request_ids: Sequence[int] | None,
    request_item_ids: Sequence[int] | None,
    exercise: bool,
) -> tuple[list[PlanLine], list[RequestItemRow]]:
    query = select(RequestRow).where(RequestRow.cancelled_at.is_(None))
    if request_ids is not None:
        requests = {
            r.id: r
            for r in session.scalars(select(RequestRow).where(RequestRow.id.in_(request_ids)))
        }
        _check_named(
            "request", request_ids, requests, exercise, lambda r: r.exercise, "request_ids"
        )
        query = query.where(RequestRow.id.in_(request_ids))
    query = query.where(RequestRow.exercise == exercise)
    requests = {r.id: r for r in session.scalars(query)}
    items_query = select(RequestItemRow).where(RequestItemRow.request_id.in_(list(requests)))
    if request_item_ids is not None:
        named = {
            i.id: i
            for i in session.scalars(
                select(RequestItemRow).where(RequestItemRow.id.in_(request_item_ids))
            )
        }
        parents = {
            r.id: r.exercise
            for r in session.scalars(
                select(RequestRow).where(RequestRow.id.in_({i.request_id for i in named.values()}))
            )
        }
        _check_named(
            "request item",
            request_item_ids,
            named,
            exercise,
            lambda i: parents[i.request_id],
            "request_item_ids",
        )
        items_query = items_query.where(RequestItemRow.id.in_(request_item_ids))
    incidents = {
        i.id: i
        for i in session.scalars(
            select(IncidentRow).where(
                IncidentRow.id.in_({r.incident_id for r in requests.values()})
            )
        )
    }
    lines: list[PlanLine] = []
    items: list[RequestItemRow] = []
    for item in session.scalars(items_query.order_by(RequestItemRow.id)):
        line = to_line(item)
        if line_status(line, cancelled=False, now=tx.now) not in OPEN_LINE_STATUSES:
            continue
        request = requests[item.request_id]
        incident = incidents[request.incident_id]
        items.append(item)
        lines.append(
            PlanLine(
                id=item.id,
                request_id=request.id,
                incident_id=incident.id,
                city=request.city,
                lat=incident.lat,
                lon=incident.lon,
                priority=Priority(request.priority),
                capability=item.capability,
                # Lines store their resolved substitutes (see requests.create_request).
                accepted=(
                    item.capability,
                    *[s for s in item.substitutes or () if s != item.capability],
                ),
                remaining=remaining(line),
            )
        )
    return lines, items


def _check_named(
    what: str,
    wanted: Sequence[int],
    found: dict[int, Any],
    exercise: bool,
    is_exercise: Any,
    field: str,
) -> None:
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise NotFound(f"no {what} {', '.join(map(str, missing))}", field=field)
    mixed = sorted(k for k, v in found.items() if bool(is_exercise(v)) != exercise)
    if mixed:
        kind = "an exercise" if exercise else "a live"
        raise InvalidInput(
            f"exercise and live data never mix: {what} {', '.join(map(str, mixed))} "
            f"is not part of {kind} plan",
            field=field,
        )


def _available_units(session: Session, exercise: bool) -> UnitTable:
    rows = session.execute(
        select(
            ResourceRow.id,
            ResourceRow.city,
            ResourceRow.capability,
            ResourceRow.lat,
            ResourceRow.lon,
            ResourceRow.readiness_hours,
        ).where(ResourceRow.status == UnitStatus.AVAILABLE.value, ResourceRow.exercise == exercise)
    ).all()
    return UnitTable.of(
        [r.id for r in rows],
        [r.city for r in rows],
        [r.capability for r in rows],
        [r.lat for r in rows],
        [r.lon for r in rows],
        [r.readiness_hours for r in rows],
    )


def _basis(session: Session, plan: Plan, items: Sequence[RequestItemRow]) -> dict[str, Any]:
    """What apply compares: each assigned unit's version and status, each line's accepted."""
    ids = [a.resource_id for a in plan.assignments]
    units = {}
    if ids:
        for rid, version, status in session.execute(
            select(ResourceRow.id, ResourceRow.version, ResourceRow.status).where(
                ResourceRow.id.in_(ids)
            )
        ):
            units[str(rid)] = [version, status]
    return {"units": units, "lines": {str(i.id): i.accepted for i in items}}


def _refuse_if_stale(session: Session, row: AllocationPlanRow) -> None:
    """409 naming every unit and line that changed since the plan was made."""
    # Lock request lines before units, each by id: the order every use case takes them in
    # (make_offer, accept_offer, move_deployment), so racing transactions cannot deadlock.
    changed_lines: list[dict[str, Any]] = []
    basis_lines: dict[str, int] = row.basis.get("lines", {})
    for iid in sorted(basis_lines, key=int):
        item = session.get(RequestItemRow, int(iid), with_for_update=True)
        now = item.accepted if item else None
        if now != basis_lines[iid]:
            changed_lines.append({"request_item_id": int(iid), "was": basis_lines[iid], "now": now})
    changed_units: list[dict[str, Any]] = []
    basis_units: dict[str, list[Any]] = row.basis.get("units", {})
    for rid in sorted(basis_units, key=int):
        version, status = basis_units[rid]
        unit = session.get(ResourceRow, int(rid), with_for_update=True)
        if unit is None or (unit.version, unit.status) != (version, status):
            changed_units.append(
                {
                    "resource_id": int(rid),
                    "callsign": unit.callsign if unit else None,
                    "was": {"version": version, "status": status},
                    "now": {"version": unit.version, "status": unit.status} if unit else None,
                }
            )
    if not changed_units and not changed_lines:
        return
    named = [
        f"resource {u['resource_id']}"
        + (f" ({u['callsign']})" if u["callsign"] else "")
        + (f" is {u['now']['status']} (version {u['now']['version']})" if u["now"] else " is gone")
        + f", was {u['was']['status']} (version {u['was']['version']})"
        for u in changed_units
    ] + [
        f"request item {line['request_item_id']} has {line['now']} accepted, was {line['was']}"
        for line in changed_lines
    ]
    raise Conflict(
        f"allocation plan {row.id} is stale: " + "; ".join(named) + "; make a new plan",
        field="plan_id",
        changed={"resources": changed_units, "request_items": changed_lines},
    )


def _plan_body(row: AllocationPlanRow, plan: Plan) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "exercise": row.exercise,
        "assignments": [
            {
                "request_item_id": a.request_item_id,
                "request_id": a.request_id,
                "resource_id": a.resource_id,
                "city": a.city,
                "capability": a.capability,
                # Rounded as the candidates endpoint rounds them.
                "eta_hours": round(a.eta_hours, 4),
                "distance_km": round(a.distance_km, 3),
            }
            for a in plan.assignments
        ],
        "unfilled": [
            {
                "request_item_id": u.request_item_id,
                "request_id": u.request_id,
                "capability": u.capability,
                "quantity": u.quantity,
                "reason": u.reason,
            }
            for u in plan.unfilled
        ],
        "objective": {
            "filled": {p.value: plan.filled[p] for p in PRIORITIES},
            "total_eta_hours": round(plan.total_eta_hours, 4),
        },
    }


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
