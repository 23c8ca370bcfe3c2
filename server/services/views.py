"""Plain-dict views of rows: the API's response bodies and the events' payloads are the same."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.db.tables import (
    CapabilityRow,
    CityRow,
    DeploymentRow,
    IncidentRow,
    OfferRow,
    RequestItemRow,
    RequestRow,
    ReserveRow,
    ResourceRow,
)
from server.domain.model import Line, LineStatus
from server.domain.requests import line_status, remaining, request_status


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def city_view(row: CityRow) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "name": row.name,
        "country": row.country,
        "lat": row.lat,
        "lon": row.lon,
        "population": row.population,
        "member_source": row.member_source,
    }


def capability_view(row: CapabilityRow, substitutes: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "domain": row.domain,
        "unit": row.unit,
        "crew": row.crew,
        "deploy_speed_kmh": row.deploy_speed_kmh,
        "readiness_hours": row.readiness_hours,
        "travel": row.travel,
        "self_sufficiency_hours": row.self_sufficiency_hours,
        "description": row.description,
        "substitutes": list(substitutes),
    }


def resource_view(row: ResourceRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "city": row.city,
        "capability": row.capability,
        "callsign": row.callsign,
        "home_lat": row.home_lat,
        "home_lon": row.home_lon,
        "lat": row.lat,
        "lon": row.lon,
        "readiness_hours": row.readiness_hours,
        "status": row.status,
        "status_since": iso(row.status_since),
        "exercise": row.exercise,
        "version": row.version,
        "created_at": iso(row.created_at),
    }


def reserve_view(row: ReserveRow) -> dict[str, Any]:
    return {
        "city": row.city,
        "capability": row.capability,
        "minimum": row.minimum,
        "updated_at": iso(row.updated_at),
    }


def incident_view(row: IncidentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "city": row.city,
        "kind": row.kind,
        "title": row.title,
        "lat": row.lat,
        "lon": row.lon,
        "severity": row.severity,
        "exercise": row.exercise,
        "created_at": iso(row.created_at),
    }


def to_line(row: RequestItemRow) -> Line:
    return Line(
        id=row.id,
        capability=row.capability,
        quantity=row.quantity,
        substitutes=tuple(row.substitutes or ()),
        needed_by=row.needed_by,
        offered=row.offered,
        accepted=row.accepted,
        arrived=row.arrived,
        released=row.released,
        returned=row.returned,
    )


def item_view(row: RequestItemRow, *, cancelled: bool, now: datetime) -> dict[str, Any]:
    line = to_line(row)
    return {
        "id": row.id,
        "request_id": row.request_id,
        "capability": row.capability,
        "quantity": row.quantity,
        "substitutes": list(row.substitutes or ()),
        "needed_by": iso(row.needed_by),
        "offered": row.offered,
        "accepted": row.accepted,
        "arrived": row.arrived,
        "released": row.released,
        "returned": row.returned,
        "remaining": remaining(line),
        "status": line_status(line, cancelled=cancelled, now=now).value,
    }


def request_view(row: RequestRow, items: Sequence[RequestItemRow], now: datetime) -> dict[str, Any]:
    cancelled = row.cancelled_at is not None
    item_views = [
        item_view(i, cancelled=cancelled, now=now) for i in sorted(items, key=lambda i: i.position)
    ]
    status = request_status((LineStatus(v["status"]) for v in item_views), cancelled=cancelled)
    return {
        "id": row.id,
        "city": row.city,
        "incident_id": row.incident_id,
        "priority": row.priority,
        "exercise": row.exercise,
        "note": row.note,
        "status": status.value,
        "created_at": iso(row.created_at),
        "cancelled_at": iso(row.cancelled_at),
        "items": item_views,
    }


def offer_view(row: OfferRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "request_item_id": row.request_item_id,
        "resource_id": row.resource_id,
        "donor_city": row.donor_city,
        "requesting_city": row.requesting_city,
        "status": row.status,
        "reserve_override": row.reserve_override,
        "distance_km": row.distance_km,
        "eta_hours": row.eta_hours,
        "created_at": iso(row.created_at),
        "decided_at": iso(row.decided_at),
    }


def deployment_view(row: DeploymentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "offer_id": row.offer_id,
        "resource_id": row.resource_id,
        "request_item_id": row.request_item_id,
        "donor_city": row.donor_city,
        "requesting_city": row.requesting_city,
        "status": row.status,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "timeline": dict(row.timeline or {}),
    }
