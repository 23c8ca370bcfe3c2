"""Demo data for a newcomer's first `make run`: units across the B40 cities and one exercise.

Everything is exercise data (exercise=True, callsigns DEMO-*), so it never mixes with live
units or requests; it loads once (a DEMO-* unit marks it done) and only where the composition
root allows (the embedded default, or B40_DEMO=1).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.db.tables import CityRow, ResourceRow, UserRow
from server.db.unit_of_work import Database, Tx
from server.domain.model import Actor, IncidentKind, Priority, Role, Severity
from server.domain.status import DeploymentStatus
from server.services.incidents import create_incident
from server.services.offers import accept_offer, make_offer, move_deployment
from server.services.requests import LineInput, create_request
from server.services.resources import create_resource
from server.services.users import create_user, to_actor

log = logging.getLogger(__name__)
DEMO_USER = "demo coordinator (B40_DEMO)"
CALLSIGN_PREFIX = "DEMO-"
# Three units per city, rotating through the capabilities a wildfire or quake season calls on.
ROTATION = (
    "WILDLAND_ENGINE",
    "FOREST_CREW",
    "FIRE_ENGINE",
    "WATER_TENDER",
    "USAR_LIGHT",
    "AMBULANCE",
    "FF_HELICOPTER",
    "MEDICAL_TEAM",
    "GENERATOR_MOBILE",
    "SAR_DOG_TEAM",
)
UNITS_PER_CITY = 3
EXERCISE_CITY = "athens"


def load_demo(database: Database, *, route_factors: dict[str, float]) -> bool:
    """Load the demo once; True if it was loaded now."""
    if database.read(_loaded):
        return False
    actor = database.run(_demo_actor)
    try:
        database.run(lambda tx: _populate(tx, route_factors), actor=actor)
    except IntegrityError:  # another process loaded it at the same moment
        log.info("demo data already loaded by another process")
        return False
    return True


def _loaded(session: Any) -> bool:
    found = session.scalars(
        select(ResourceRow.id).where(ResourceRow.callsign.like(f"{CALLSIGN_PREFIX}%")).limit(1)
    ).first()
    return found is not None


def _demo_actor(tx: Tx) -> Actor:
    row = tx.session.scalars(select(UserRow).where(UserRow.name == DEMO_USER)).first()
    if row is None:
        view, _token = create_user(tx, name=DEMO_USER, role=Role.COORDINATOR, city=None)
        row = tx.session.get(UserRow, view["id"])
        assert row is not None
    return to_actor(row)


def _populate(tx: Tx, factors: dict[str, float]) -> None:
    if _loaded(tx.session):
        return
    cities = list(tx.session.scalars(select(CityRow).order_by(CityRow.slug)))
    units: dict[str, list[dict[str, Any]]] = {}
    for index, city in enumerate(cities):
        for n in range(UNITS_PER_CITY):
            capability = ROTATION[(index + n * 3) % len(ROTATION)]
            view = create_resource(
                tx,
                city=city.slug,
                capability=capability,
                callsign=f"{CALLSIGN_PREFIX}{city.slug.upper()}-{n + 1}",
                exercise=True,
            )
            units.setdefault(capability, []).append(view)
    incident = create_incident(
        tx,
        city=EXERCISE_CITY,
        kind=IncidentKind.WILDFIRE,
        title="EXERCISE: wildfire on Mount Parnitha (demo data)",
        lat=38.17,
        lon=23.72,
        severity=Severity.HIGH,
        exercise=True,
    )
    request = create_request(
        tx,
        city=EXERCISE_CITY,
        incident_id=incident["id"],
        priority=Priority.CRITICAL,
        items=[
            LineInput("WILDLAND_ENGINE", 4),
            LineInput("FOREST_CREW", 2),
            LineInput("FF_HELICOPTER", 1),
        ],
        note="Exercise request from the demo data: offer units, accept, move them.",
    )
    lines = {item["capability"]: item["id"] for item in request["items"]}

    home_country = next(c.country for c in cities if c.slug == EXERCISE_CITY)
    abroad = {c.slug for c in cities if c.country != home_country}

    def donor(capability: str) -> int:
        # From another country: the deployment's line on the map is long enough to see.
        return int(next(u for u in units[capability] if u["city"] in abroad)["id"])

    # One unit already on the road (a line on the map), one offer waiting for acceptance.
    first = make_offer(
        tx,
        request_item_id=lines["WILDLAND_ENGINE"],
        resource_id=donor("WILDLAND_ENGINE"),
        route_factors=factors,
    )
    accepted = accept_offer(tx, first["id"])
    move_deployment(tx, accepted["deployment"]["id"], DeploymentStatus.EN_ROUTE)
    make_offer(
        tx,
        request_item_id=lines["FOREST_CREW"],
        resource_id=donor("FOREST_CREW"),
        route_factors=factors,
    )
