"""Units: register, list, change status by hand; reserves per city and capability."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.db.tables import ReserveRow, ResourceRow
from server.db.unit_of_work import Tx, rows_changed
from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.policy import require_city, resolve_city
from server.domain.status import UNIT_MANUAL, UNIT_NEXT, UnitStatus, check_transition
from server.services.catalogue import get_capability, get_city
from server.services.views import reserve_view, resource_view

MAX_BULK = 500


def create_resource(
    tx: Tx,
    *,
    city: str | None,
    capability: str,
    callsign: str,
    lat: float | None = None,
    lon: float | None = None,
    readiness_hours: float | None = None,
    exercise: bool = False,
) -> dict[str, Any]:
    assert tx.actor is not None
    city = resolve_city(tx.actor, city, "registering a resource")
    rows = _insert_units(tx, city, capability, [callsign], lat, lon, readiness_hours, exercise)
    return resource_view(rows[0])


def create_resources_bulk(
    tx: Tx,
    *,
    city: str | None,
    capability: str,
    quantity: int,
    callsign_prefix: str,
    lat: float | None = None,
    lon: float | None = None,
    readiness_hours: float | None = None,
    exercise: bool = False,
) -> list[dict[str, Any]]:
    assert tx.actor is not None
    city = resolve_city(tx.actor, city, "registering resources")
    if not 1 <= quantity <= MAX_BULK:
        raise InvalidInput(f"quantity must be between 1 and {MAX_BULK}", field="quantity")
    taken = set(
        tx.session.scalars(
            select(ResourceRow.callsign).where(ResourceRow.callsign.like(f"{callsign_prefix}-%"))
        )
    )
    callsigns: list[str] = []
    number = 1
    while len(callsigns) < quantity:
        candidate = f"{callsign_prefix}-{number:02d}"
        if candidate not in taken:
            callsigns.append(candidate)
        number += 1
    rows = _insert_units(tx, city, capability, callsigns, lat, lon, readiness_hours, exercise)
    return [resource_view(r) for r in rows]


def _insert_units(
    tx: Tx,
    city: str,
    capability: str,
    callsigns: list[str],
    lat: float | None,
    lon: float | None,
    readiness_hours: float | None,
    exercise: bool,
) -> list[ResourceRow]:
    city_row = get_city(tx.session, city)
    capability_row = get_capability(tx.session, capability)
    if (lat is None) != (lon is None):
        raise InvalidInput(
            "give both lat and lon, or neither", field="lat" if lat is None else "lon"
        )
    clash = tx.session.scalars(
        select(ResourceRow.callsign).where(ResourceRow.callsign.in_(callsigns))
    ).first()
    if clash is not None:
        raise Conflict(f"callsign {clash!r} is already registered", field="callsign")
    home_lat = city_row.lat if lat is None else lat
    home_lon = city_row.lon if lon is None else lon
    readiness = capability_row.readiness_hours if readiness_hours is None else readiness_hours
    rows = [
        ResourceRow(
            city=city,
            capability=capability,
            callsign=callsign,
            home_lat=home_lat,
            home_lon=home_lon,
            lat=home_lat,
            lon=home_lon,
            readiness_hours=readiness,
            status=UnitStatus.AVAILABLE.value,
            status_since=tx.now,
            exercise=exercise,
            created_at=tx.now,
            version=1,
        )
        for callsign in callsigns
    ]
    tx.session.add_all(rows)
    tx.session.flush()
    for row in rows:
        tx.record(
            "resource.created",
            "resource",
            row.id,
            city=city,
            payload=resource_view(row),
            exercise=exercise,
        )
    return rows


def get_resource(session: Session, resource_id: int) -> dict[str, Any]:
    return resource_view(load_resource(session, resource_id))


def load_resource(
    session: Session, resource_id: int, *, lock: bool = False, field: str = "id"
) -> ResourceRow:
    row = session.get(ResourceRow, resource_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"no resource {resource_id}", field=field)
    return row


def list_resources(
    session: Session,
    *,
    city: str | None = None,
    capability: str | None = None,
    status: str | None = None,
    exercise: bool | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    query = select(ResourceRow)
    if city is not None:
        query = query.where(ResourceRow.city == city)
    if capability is not None:
        query = query.where(ResourceRow.capability == capability)
    if status is not None:
        query = query.where(ResourceRow.status == status)
    if exercise is not None:
        query = query.where(ResourceRow.exercise == exercise)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ResourceRow.id).limit(limit).offset(offset))
    return [resource_view(r) for r in rows], int(total)


def move_unit(
    tx: Tx, row: ResourceRow, new: UnitStatus, *, expect: UnitStatus | None = None
) -> None:
    """The one place a unit's status changes: checks the table, updates only if unchanged.

    The UPDATE re-checks the status it read (compare-and-set), so two transactions racing
    for the same unit cannot both win even where row locks are not available.
    """
    current = UnitStatus(row.status) if expect is None else expect
    check_transition("resource", UNIT_NEXT, current, new)
    changed = rows_changed(
        tx.session.execute(
            update(ResourceRow)
            .where(ResourceRow.id == row.id, ResourceRow.status == current.value)
            .values(status=new.value, status_since=tx.now, version=ResourceRow.version + 1)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        tx.session.refresh(row)
        raise Conflict(
            f"resource {row.id} is {row.status} now, not {current.value}",
            field="resource_id",
            current=row.status,
        )
    tx.session.refresh(row)
    tx.record(
        "resource.status_changed",
        "resource",
        row.id,
        city=row.city,
        payload={**resource_view(row), "previous_status": current.value},
        exercise=row.exercise,
    )


def set_status_by_hand(tx: Tx, resource_id: int, status: UnitStatus) -> dict[str, Any]:
    """The transitions an operator makes directly (out of service and back)."""
    assert tx.actor is not None
    row = load_resource(tx.session, resource_id, lock=True)
    require_city(tx.actor, row.city, "changing a resource's status")
    current = UnitStatus(row.status)
    check_transition("resource (by hand)", UNIT_MANUAL, current, status)
    move_unit(tx, row, status)
    return resource_view(row)


def set_reserve(tx: Tx, city: str, capability: str, minimum: int) -> dict[str, Any]:
    assert tx.actor is not None
    require_city(tx.actor, city, "setting a reserve")
    get_city(tx.session, city, field="slug")
    get_capability(tx.session, capability)
    if minimum < 0:
        raise InvalidInput("minimum must be zero or more", field="minimum")
    row = tx.session.get(ReserveRow, (city, capability), with_for_update=True)
    if row is None:
        row = ReserveRow(city=city, capability=capability, minimum=minimum, updated_at=tx.now)
        tx.session.add(row)
    else:
        row.minimum = minimum
        row.updated_at = tx.now
    tx.session.flush()
    view = reserve_view(row)
    tx.record("city.reserve_set", "reserve", f"{city}:{capability}", city=city, payload=view)
    return view


def list_reserves(session: Session, city: str) -> list[dict[str, Any]]:
    get_city(session, city, field="slug")
    rows = session.scalars(
        select(ReserveRow).where(ReserveRow.city == city).order_by(ReserveRow.capability)
    )
    return [reserve_view(r) for r in rows]


def available_count(session: Session, city: str, capability: str, exercise: bool) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                ResourceRow.city == city,
                ResourceRow.capability == capability,
                ResourceRow.status == UnitStatus.AVAILABLE.value,
                ResourceRow.exercise == exercise,
            )
        )
        or 0
    )
