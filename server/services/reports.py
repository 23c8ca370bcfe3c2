"""After-action report of one incident: who came from where, the timeline of requests, offers,
arrivals and releases (from the event log), fill rate and time to fill per line, and the
lender-cover flags that allocation plans raised for it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.db.tables import (
    CityRow,
    DeploymentRow,
    EventRow,
    OfferRow,
    RequestItemRow,
    RequestRow,
    ResourceRow,
)
from server.domain.errors import Forbidden
from server.domain.model import Actor, Role
from server.services.events import event_view
from server.services.incidents import load_incident
from server.services.report_figures import Place, map_figure, timeline_figure
from server.services.views import incident_view, item_view

READERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.OBSERVER})


def incident_report(
    session: Session, incident_id: int, actor: Actor, now: datetime
) -> dict[str, Any]:
    """Everything the printable report shows, as plain data (also served as JSON)."""
    incident = load_incident(session, incident_id)
    requests = list(
        session.scalars(
            select(RequestRow).where(RequestRow.incident_id == incident.id).order_by(RequestRow.id)
        )
    )
    request_ids = [r.id for r in requests]
    items = (
        list(
            session.scalars(
                select(RequestItemRow)
                .where(RequestItemRow.request_id.in_(request_ids))
                .order_by(RequestItemRow.request_id, RequestItemRow.position)
            )
        )
        if request_ids
        else []
    )
    item_ids = [i.id for i in items]
    offers = (
        list(
            session.scalars(
                select(OfferRow).where(OfferRow.request_item_id.in_(item_ids)).order_by(OfferRow.id)
            )
        )
        if item_ids
        else []
    )
    deployments = (
        list(
            session.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.request_item_id.in_(item_ids))
                .order_by(DeploymentRow.id)
            )
        )
        if item_ids
        else []
    )
    involved = {incident.city, *(r.city for r in requests), *(o.donor_city for o in offers)}
    _authorise(actor, involved)
    cities = {c.slug: c for c in session.scalars(select(CityRow))}
    events = _events(session, incident.id, request_ids, offers, deployments)
    plans = _plan_events(session, incident.id, incident.exercise)

    requests_by_id = {r.id: r for r in requests}
    offers_by_item: dict[int, list[OfferRow]] = defaultdict(list)
    for offer in offers:
        offers_by_item[offer.request_item_id].append(offer)
    lines = []
    for item in items:
        request = requests_by_id[item.request_id]
        view = item_view(item, cancelled=request.cancelled_at is not None, now=now)
        lines.append(_line(request, item, view, offers_by_item[item.id]))

    donors: Counter[str] = Counter(d.donor_city for d in deployments)
    donor_capabilities: dict[str, Counter[str]] = defaultdict(Counter)
    units = (
        {
            u.id: u.capability
            for u in session.scalars(
                select(ResourceRow).where(ResourceRow.id.in_([d.resource_id for d in deployments]))
            )
        }
        if deployments
        else {}
    )
    for d in deployments:
        donor_capabilities[d.donor_city][units.get(d.resource_id, "?")] += 1
    places = [
        (Place(cities[city].name, cities[city].lat, cities[city].lon), count)
        for city, count in sorted(donors.items())
        if city in cities
    ]
    requester = cities.get(requests[0].city) if requests else cities.get(incident.city)
    figure = map_figure(
        Place(incident.title, incident.lat, incident.lon),
        places,
        Place(requester.name, requester.lat, requester.lon) if requester else None,
    )
    series: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        lane = _lane(event)
        if lane is not None:
            series[lane].append(_aware(event.created_at))
    asked = sum(line["asked"] for line in lines)
    filled = sum(min(line["accepted"], line["asked"]) for line in lines)
    return {
        "incident": incident_view(incident),
        "generated_at": now.isoformat(),
        "requests": [
            {
                "id": r.id,
                "city": r.city,
                "priority": r.priority,
                "created_at": _iso(r.created_at),
                "cancelled_at": _iso(r.cancelled_at),
            }
            for r in requests
        ],
        "lines": lines,
        "totals": {
            "asked": asked,
            "accepted": filled,
            "fill_rate": round(filled / asked, 4) if asked else None,
            "offers": len(offers),
            "deployments": len(deployments),
        },
        "donors": [
            {
                "city": city,
                "name": cities[city].name if city in cities else city,
                "units": count,
                "capabilities": dict(donor_capabilities[city]),
            }
            for city, count in sorted(donors.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "map": figure,
        "timeline": {**timeline_figure(series), "counts": {k: len(v) for k, v in series.items()}},
        "flags": [
            {**flag, "plan_id": plan["payload"].get("id"), "at": plan["created_at"]}
            for plan in plans
            for flag in plan["payload"].get("flags", [])
        ],
        "plans": len(plans),
        "events": len(events),
    }


def _authorise(actor: Actor, involved: set[str]) -> None:
    """Network-wide roles and observers read every report; others those of their cities."""
    if actor.role in READERS or actor.city in involved:
        return
    raise Forbidden(
        "this report is for the cities involved "
        f"({', '.join(sorted(involved))}), coordinators and observers"
    )


def _line(
    request: RequestRow, item: RequestItemRow, view: dict[str, Any], offers: list[OfferRow]
) -> dict[str, Any]:
    posted = _aware(request.created_at)
    first = min((_aware(o.created_at) for o in offers), default=None)
    decisions = sorted(
        _aware(o.decided_at) for o in offers if o.status == "accepted" and o.decided_at is not None
    )
    filled = decisions[item.quantity - 1] if len(decisions) >= item.quantity else None
    accepted = [o for o in offers if o.status == "accepted"]
    return {
        "item_id": item.id,
        "request_id": request.id,
        "requesting_city": request.city,
        "priority": request.priority,
        "capability": item.capability,
        "asked": item.quantity,
        "offered": len(offers),
        "accepted": item.accepted,
        "arrived": item.arrived,
        "released": item.released,
        "status": view["status"],
        "fill_rate": round(min(item.accepted, item.quantity) / item.quantity, 4),
        "seconds_to_first_offer": _seconds(posted, first),
        "seconds_to_fill": _seconds(posted, filled),
        "distance_km": round(sum(o.distance_km for o in accepted), 3),
        "eta_hours": round(sum(o.eta_hours for o in accepted), 4),
        "donors": dict(Counter(o.donor_city for o in accepted)),
    }


def _events(
    session: Session,
    incident_id: int,
    request_ids: list[int],
    offers: list[OfferRow],
    deployments: list[DeploymentRow],
) -> list[EventRow]:
    wanted = [("incident", [str(incident_id)])]
    wanted += [("request", [str(i) for i in request_ids])]
    wanted += [("offer", [str(o.id) for o in offers])]
    wanted += [("deployment", [str(d.id) for d in deployments])]
    conditions = [
        (EventRow.entity == entity) & EventRow.entity_id.in_(ids) for entity, ids in wanted if ids
    ]
    return list(session.scalars(select(EventRow).where(or_(*conditions)).order_by(EventRow.seq)))


def _plan_events(session: Session, incident_id: int, exercise: bool) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EventRow)
        .where(EventRow.type == "allocation.planned", EventRow.exercise == exercise)
        .order_by(EventRow.seq)
    )
    return [event_view(r) for r in rows if incident_id in (r.payload or {}).get("incident_ids", [])]


def _lane(event: EventRow) -> str | None:
    if event.type == "request.created":
        return "requests"
    if event.type == "offer.created":
        return "offers"
    if event.type == "deployment.status_changed":
        status = (event.payload or {}).get("status")
        return {"on_scene": "arrivals", "released": "releases"}.get(str(status))
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _aware(moment).isoformat()


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)
