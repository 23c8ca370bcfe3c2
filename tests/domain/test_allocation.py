"""The allocation plan against brute force on small random instances."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from server.domain.allocation import (
    PRIORITIES,
    SCALE,
    PlanLine,
    UnitTable,
    plan_allocation,
)
from server.domain.matching import distance_km, eta_hours
from server.domain.model import Capability, Point, Priority

ROUTE = {"air": 1.0, "road": 1.3}
CATALOGUE = {
    "HELI": Capability("HELI", "helicopter", "fire", "aircraft", 4, 200, 3, "air"),
    "PLANE": Capability("PLANE", "plane", "fire", "aircraft", 3, 250, 3, "air"),
    "ENGINE": Capability("ENGINE", "engine", "fire", "vehicle", 4, 60, 2, "road"),
}
CITIES = {
    "athens": (37.98, 23.73),
    "sofia": (42.70, 23.32),
    "belgrade": (44.79, 20.45),
    "zagreb": (45.81, 15.98),
    "skopje": (41.99, 21.43),
}


@dataclass(frozen=True)
class Unit:
    id: int
    city: str
    capability: str
    lat: float
    lon: float
    readiness: float


def table(units: list[Unit]) -> UnitTable:
    return UnitTable.of(
        [u.id for u in units],
        [u.city for u in units],
        [u.capability for u in units],
        [u.lat for u in units],
        [u.lon for u in units],
        [u.readiness for u in units],
    )


def eta(unit: Unit, line: PlanLine) -> float:
    km = distance_km(Point(unit.lat, unit.lon), Point(line.lat, line.lon))
    return eta_hours(unit.readiness, km, CATALOGUE[unit.capability], ROUTE)


def random_instance(rng: random.Random) -> tuple[list[PlanLine], list[Unit], dict]:
    names = list(CITIES)
    units = []
    for i in range(rng.randint(0, 7)):
        city = rng.choice(names)
        lat, lon = CITIES[city]
        if rng.random() < 0.5:  # some units away from their base, some with odd readiness
            lat, lon = lat + rng.uniform(-0.5, 0.5), lon + rng.uniform(-0.5, 0.5)
        readiness = rng.choice([2.0, 3.0, 3.0, 0.5])
        units.append(Unit(i + 1, city, rng.choice(list(CATALOGUE)), lat, lon, readiness))
    lines = []
    incidents = [(rng.choice(names), k) for k in range(rng.randint(1, 3))]
    for i in range(rng.randint(1, 4)):
        city, incident = rng.choice(incidents)
        lat, lon = CITIES[city]
        capability = rng.choice(list(CATALOGUE))
        subs = ("HELI",) if capability == "PLANE" and rng.random() < 0.5 else ()
        lines.append(
            PlanLine(
                id=100 + i,
                request_id=10 + incident,
                incident_id=incident,
                city=city,
                lat=lat + incident * 0.1,
                lon=lon,
                priority=rng.choice(PRIORITIES),
                capability=capability,
                accepted=(capability, *subs),
                remaining=rng.randint(0, 2),
            )
        )
    reserves = {
        (rng.choice(names), rng.choice(list(CATALOGUE))): rng.randint(0, 2) for _ in range(2)
    }
    return lines, units, reserves


def brute_force(lines: list[PlanLine], units: list[Unit], reserves: dict) -> tuple:
    """Every way to give each unit to at most one line; the lexicographic best objective."""
    options = [
        [None]
        + [
            line
            for line in lines
            if u.capability in line.accepted and u.city != line.city and line.remaining > 0
        ]
        for u in units
    ]
    available: dict[tuple[str, str], int] = {}
    for u in units:
        available[(u.city, u.capability)] = available.get((u.city, u.capability), 0) + 1
    best = None
    for choice in itertools.product(*options):
        per_line: dict[int, int] = {}
        lent: dict[tuple[str, str], int] = {}
        for unit, line in zip(units, choice, strict=True):
            if line is not None:
                per_line[line.id] = per_line.get(line.id, 0) + 1
                key = (unit.city, unit.capability)
                lent[key] = lent.get(key, 0) + 1
        if any(per_line.get(line.id, 0) > line.remaining for line in lines):
            continue
        if any(n > available[k] - reserves.get(k, 0) for k, n in lent.items()):
            continue
        filled = [0, 0, 0]
        total = 0.0
        for unit, line in zip(units, choice, strict=True):
            if line is not None:
                filled[PRIORITIES.index(line.priority)] += 1
                total += eta(unit, line)
        key = (-filled[0], -filled[1], -filled[2], total)
        if best is None or key < best:
            best = key
    return best


@pytest.mark.parametrize("seed", range(400))
def test_plan_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    lines, units, reserves = random_instance(rng)
    plan = plan_allocation(
        lines, table(units), catalogue=CATALOGUE, route_factors=ROUTE, reserves=reserves
    )
    best = brute_force(lines, units, reserves)
    filled = tuple(-plan.filled[p] for p in PRIORITIES)
    assert filled == best[:3]
    # Costs are integer micro-hours: each of n assignments may be off by half a unit.
    assert plan.total_eta_hours == pytest.approx(best[3], abs=len(units) / SCALE + 1e-9)
    check_feasible(plan, lines, units, reserves)
    check_certificate(plan)


def check_certificate(plan) -> None:
    """The plan carries its own proof: the LP dual value of its potentials equals its cost."""
    c = plan.certificate
    assert c.proves_optimal
    assert c.dual_objective == c.optimal_cost
    assert c.min_reduced_cost is None or c.min_reduced_cost >= 0
    # The certified cost is the plan's: each assignment's ETA in integer micro-hours.
    assert c.optimal_cost == sum(round(a.eta_hours * SCALE) for a in plan.assignments)


def check_feasible(plan, lines: list[PlanLine], units: list[Unit], reserves: dict) -> None:
    by_id = {u.id: u for u in units}
    by_line = {line.id: line for line in lines}
    used = [a.resource_id for a in plan.assignments]
    assert len(used) == len(set(used)), "a unit is given twice"
    lent: dict[tuple[str, str], int] = {}
    for a in plan.assignments:
        unit, line = by_id[a.resource_id], by_line[a.request_item_id]
        assert unit.capability in line.accepted
        assert unit.city != line.city
        assert (a.city, a.capability) == (unit.city, unit.capability)
        # The candidates' ETA: geopy and PROJ both run Karney's algorithm (agree to ~1e-9 km).
        assert a.eta_hours == pytest.approx(eta(unit, line), abs=1e-9)
        lent[(unit.city, unit.capability)] = lent.get((unit.city, unit.capability), 0) + 1
    available: dict[tuple[str, str], int] = {}
    for u in units:
        available[(u.city, u.capability)] = available.get((u.city, u.capability), 0) + 1
    for key, n in lent.items():
        assert n <= available[key] - reserves.get(key, 0)
    for line in lines:
        given = sum(1 for a in plan.assignments if a.request_item_id == line.id)
        short = sum(u.quantity for u in plan.unfilled if u.request_item_id == line.id)
        assert given + short == line.remaining


def test_unfilled_reasons() -> None:
    line = PlanLine(1, 1, 1, "athens", 38.0, 23.7, Priority.CRITICAL, "HELI", ("HELI",), 2)
    nothing = plan_allocation(
        [line], table([]), catalogue=CATALOGUE, route_factors=ROUTE, reserves={}
    )
    assert "no available unit of HELI outside athens" in nothing.unfilled[0].reason
    units = [Unit(1, "sofia", "HELI", 42.7, 23.3, 3.0), Unit(2, "athens", "HELI", 38, 23.7, 3.0)]
    held = plan_allocation(
        [line],
        table(units),
        catalogue=CATALOGUE,
        route_factors=ROUTE,
        reserves={("sofia", "HELI"): 1},
    )
    assert held.assignments == ()
    assert "held by a reserve" in held.unfilled[0].reason


@pytest.mark.parametrize("seed", range(30))
def test_lender_cover_is_the_unit_by_unit_minimum(seed: int) -> None:
    """Cover (units at shared bases collapse into spots) equals a plain loop over units."""
    from server.domain.cover import lender_cover

    rng = random.Random(seed)
    names = list(CITIES)
    units = []
    for i in range(rng.randint(1, 30)):
        city = rng.choice(names)
        lat, lon = CITIES[rng.choice(names)] if rng.random() < 0.3 else CITIES[city]
        units.append(
            Unit(i + 1, city, rng.choice(list(CATALOGUE)), lat, lon, rng.choice([2.0, 3.0]))
        )
    taken = [u.id for u in rng.sample(units, rng.randint(1, len(units)))]
    lent = {(u.city, u.capability) for u in units if u.id in taken}
    cities = {c: Point(*CITIES[c]) for c in names}
    covers, _ = lender_cover(
        lent,
        before=table(units),
        taken=taken,
        cities=cities,
        catalogue=CATALOGUE,
        route_factors=ROUTE,
        threshold_hours=4.0,
    )

    def nearest(pool: list[Unit], city: str, code: str) -> float | None:
        etas = [
            eta_hours(
                u.readiness, distance_km(Point(u.lat, u.lon), cities[city]), CATALOGUE[code], ROUTE
            )
            for u in pool
            if u.capability == code
        ]
        return min(etas) if etas else None

    left = [u for u in units if u.id not in taken]
    assert [(c.city, c.capability) for c in covers] == sorted(lent)
    for c in covers:
        assert c.left_at_home == sum(
            1 for u in left if (u.city, u.capability) == (c.city, c.capability)
        )
        for got, want in (
            (c.nearest_eta_hours, nearest(left, c.city, c.capability)),
            (c.before_eta_hours, nearest(units, c.city, c.capability)),
        ):
            assert (got is None) == (want is None)
            if want is not None:
                assert got == pytest.approx(want, abs=1e-9)
