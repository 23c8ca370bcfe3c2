"""The allocation plan against an independent LP (HiGHS via scipy) on larger random instances.

The LP has one variable per (unit, line) pair, no aggregation and no pruning; its constraint
matrix is totally unimodular, so its optimum is the integer optimum. The lexicographic
objective is solved in stages, as the plan's definition states it.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from server.domain.allocation import PRIORITIES, SCALE, PlanLine, UnitTable, plan_allocation
from tests.domain.test_allocation import (
    CATALOGUE,
    CITIES,
    ROUTE,
    Unit,
    check_certificate,
    check_feasible,
    eta,
)


def instance(rng: random.Random, n_units: int, n_lines: int, packed: bool) -> tuple:
    names = list(CITIES)
    units = [
        Unit(
            i + 1,
            (city := rng.choice(names)),
            rng.choice(list(CATALOGUE)),
            CITIES[city][0] + rng.uniform(-0.3, 0.3),
            CITIES[city][1] + rng.uniform(-0.3, 0.3),
            rng.choice([2.0, 3.0, 4.0]),
        )
        for i in range(n_units)
    ]
    zones = ["athens", "skopje"] if packed else names
    lines = []
    for i in range(n_lines):
        city = rng.choice(zones)
        incident = rng.randint(0, 3 if packed else 20)
        capability = rng.choice(list(CATALOGUE))
        subs = ("HELI",) if capability == "PLANE" else ()
        lines.append(
            PlanLine(
                id=1000 + i,
                request_id=i // 3,
                incident_id=incident,
                city=city,
                lat=CITIES[city][0] + incident * 0.05,
                lon=CITIES[city][1] - incident * 0.05,
                priority=rng.choice(PRIORITIES),
                capability=capability,
                accepted=(capability, *subs),
                remaining=rng.randint(1, 4),
            )
        )
    reserves = {(c, k): rng.randint(0, 3) for c in names for k in CATALOGUE if rng.random() < 0.3}
    return lines, units, reserves


def lp_optimum(lines: list[PlanLine], units: list[Unit], reserves: dict) -> tuple:
    pairs = [
        (u, line_index)
        for u, unit in enumerate(units)
        for line_index, line in enumerate(lines)
        if unit.capability in line.accepted and unit.city != line.city
    ]
    if not pairs:
        return (0, 0, 0, 0.0)
    n = len(pairs)
    keys = sorted({(u.city, u.capability) for u in units})
    rows = len(units) + len(lines) + len(keys)
    a = lil_matrix((rows, n))
    b = np.zeros(rows)
    for j, (u, li) in enumerate(pairs):
        a[u, j] = 1
        a[len(units) + li, j] = 1
        a[len(units) + len(lines) + keys.index((units[u].city, units[u].capability)), j] = 1
    b[: len(units)] = 1
    b[len(units) : len(units) + len(lines)] = [line.remaining for line in lines]
    for k, key in enumerate(keys):
        available = sum(1 for u in units if (u.city, u.capability) == key)
        b[len(units) + len(lines) + k] = max(0, available - reserves.get(key, 0))
    a_ub, b_ub = a.tocsr(), b
    fixed: list[tuple[np.ndarray, float]] = []
    filled = []
    for p in PRIORITIES:
        weight = np.array([-1.0 if lines[li].priority == p else 0.0 for _, li in pairs])
        result = solve(weight, a_ub, b_ub, fixed)
        best = round(-result.fun)
        filled.append(best)
        fixed.append((weight, -best))  # keep at least `best` of this priority filled
    costs = np.array([eta(units[u], lines[li]) for u, li in pairs])
    result = solve(costs, a_ub, b_ub, fixed)
    return (*filled, float(result.fun))


def solve(c: np.ndarray, a_ub, b_ub, fixed: list) -> object:
    from scipy.sparse import vstack

    if fixed:
        a_ub = vstack([a_ub, *[w.reshape(1, -1) for w, _ in fixed]]).tocsr()
        b_ub = np.concatenate([b_ub, [bound + 1e-9 for _, bound in fixed]])
    result = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs")
    assert result.status == 0, result.message
    return result


@pytest.mark.parametrize(
    ("seed", "n_units", "n_lines", "packed"),
    [
        (1, 60, 20, False),
        (2, 60, 20, True),
        (3, 150, 40, False),
        (4, 150, 60, True),
        (5, 300, 80, True),
        (6, 300, 30, False),
    ],
)
def test_plan_matches_independent_lp(seed: int, n_units: int, n_lines: int, packed: bool) -> None:
    rng = random.Random(seed)
    lines, units, reserves = instance(rng, n_units, n_lines, packed)
    table = UnitTable.of(
        [u.id for u in units],
        [u.city for u in units],
        [u.capability for u in units],
        [u.lat for u in units],
        [u.lon for u in units],
        [u.readiness for u in units],
    )
    plan = plan_allocation(
        lines, table, catalogue=CATALOGUE, route_factors=ROUTE, reserves=reserves
    )
    check_feasible(plan, lines, units, reserves)
    check_certificate(plan)
    *filled, cost = lp_optimum(lines, units, reserves)
    assert [plan.filled[p] for p in PRIORITIES] == filled
    assert plan.total_eta_hours == pytest.approx(cost, abs=len(plan.assignments) / SCALE + 1e-6)


def test_the_same_plan_without_the_distance_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond DISTANCE_CACHE_PAIRS (units each at their own spot) distances are measured
    afresh per round; the plan and its certificate do not change."""
    from server.domain import allocation

    lines, units, reserves = instance(random.Random(7), 200, 50, True)
    table = UnitTable.of(
        [u.id for u in units],
        [u.city for u in units],
        [u.capability for u in units],
        [u.lat for u in units],
        [u.lon for u in units],
        [u.readiness for u in units],
    )
    args = {"catalogue": CATALOGUE, "route_factors": ROUTE, "reserves": reserves}
    cached = plan_allocation(lines, table, **args)
    monkeypatch.setattr(allocation, "DISTANCE_CACHE_PAIRS", 0)
    fresh = plan_allocation(lines, table, **args)
    assert fresh == cached
    assert fresh.certificate.optimal_cost == cached.certificate.optimal_cost
    check_certificate(fresh)
