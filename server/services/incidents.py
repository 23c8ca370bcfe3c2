"""Incidents: the crisis a request is for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.tables import IncidentRow
from server.db.unit_of_work import Tx
from server.domain.errors import NotFound
from server.domain.model import IncidentKind, Severity
from server.domain.policy import resolve_city
from server.services.catalogue import get_city
from server.services.views import incident_view


def create_incident(
    tx: Tx,
    *,
    city: str | None,
    kind: IncidentKind,
    title: str,
    lat: float,
    lon: float,
    severity: Severity,
    exercise: bool = False,
) -> dict[str, Any]:
    assert tx.actor is not None
    city = resolve_city(tx.actor, city, "opening an incident")
    get_city(tx.session, city)
    row = IncidentRow(
        city=city,
        kind=kind.value,
        title=title,
        lat=lat,
        lon=lon,
        severity=severity.value,
        exercise=exercise,
        created_at=tx.now,
        created_by=tx.actor.user_id,
    )
    tx.session.add(row)
    tx.session.flush()
    view = incident_view(row)
    tx.record("incident.created", "incident", row.id, city=city, payload=view, exercise=exercise)
    return view


def load_incident(session: Session, incident_id: int, *, field: str = "id") -> IncidentRow:
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id}", field=field)
    return row


def list_incidents(
    session: Session, *, city: str | None, exercise: bool | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    query = select(IncidentRow)
    if city is not None:
        query = query.where(IncidentRow.city == city)
    if exercise is not None:
        query = query.where(IncidentRow.exercise == exercise)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(IncidentRow.id.desc()).limit(limit).offset(offset))
    return [incident_view(r) for r in rows], int(total)
