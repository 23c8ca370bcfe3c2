"""Rank the units of other cities for a request line by how soon they can be on scene."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from geopy.distance import geodesic

from server.domain.model import Capability, Line, Point, Unit
from server.domain.status import UnitStatus


@dataclass(frozen=True, slots=True)
class Candidate:
    resource_id: int
    city: str
    capability: str
    callsign: str
    distance_km: float
    eta_hours: float


def distance_km(a: Point, b: Point) -> float:
    """WGS-84 geodesic distance (Karney's algorithm, via geopy)."""
    return float(geodesic((a.lat, a.lon), (b.lat, b.lon)).km)


def eta_hours(
    readiness_hours: float,
    distance: float,
    capability: Capability,
    route_factors: Mapping[str, float],
) -> float:
    """Readiness plus travel: road trips are longer than the straight line by the route factor."""
    return (
        readiness_hours + distance * route_factors[capability.travel] / capability.deploy_speed_kmh
    )


def accepted_capabilities(
    line: Line, substitution_rules: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """The line's capability first, then what may fill it.

    The line's own `substitutes` list wins when it names any; otherwise the catalogue's rules.
    """
    subs = (
        line.substitutes if line.substitutes else tuple(substitution_rules.get(line.capability, ()))
    )
    return (line.capability, *[s for s in subs if s != line.capability])


def rank_candidates(
    line: Line,
    *,
    incident: Point,
    requesting_city: str,
    exercise: bool,
    units: Iterable[Unit],
    catalogue: Mapping[str, Capability],
    reserves: Mapping[tuple[str, str], int],
    substitution_rules: Mapping[str, Sequence[str]],
    route_factors: Mapping[str, float],
) -> list[Candidate]:
    """Available units of other cities that may fill `line`, soonest first.

    A city with n available units of a capability and a reserve of m contributes at most
    n - m of them (its soonest), so matching never proposes taking a donor below its reserve.
    Ties break by distance, then unit id, so the order is total and repeatable.
    """
    wanted = set(accepted_capabilities(line, substitution_rules))
    by_city_capability: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    # Units share bases (most sit at their city), and geopy's geodesic is pure Python: measure
    # each distinct position once.
    km_from: dict[Point, float] = {}
    for unit in units:
        if (
            unit.status is not UnitStatus.AVAILABLE
            or unit.city == requesting_city
            or unit.capability not in wanted
            or unit.exercise != exercise
        ):
            continue
        capability = catalogue[unit.capability]
        km = km_from.get(unit.position)
        if km is None:
            km = km_from[unit.position] = distance_km(unit.position, incident)
        by_city_capability[(unit.city, unit.capability)].append(
            Candidate(
                resource_id=unit.id,
                city=unit.city,
                capability=unit.capability,
                callsign=unit.callsign,
                distance_km=km,
                eta_hours=eta_hours(unit.readiness_hours, km, capability, route_factors),
            )
        )
    ranked: list[Candidate] = []
    for key, group in by_city_capability.items():
        spare = len(group) - reserves.get(key, 0)
        if spare > 0:
            ranked.extend(sorted(group, key=_order)[:spare])
    return sorted(ranked, key=_order)


def _order(c: Candidate) -> tuple[float, float, int]:
    return (c.eta_hours, c.distance_km, c.resource_id)


def spare_units(available: int, reserve: int) -> int:
    """How many units a city can lend without going below its reserve."""
    return max(0, available - reserve)
