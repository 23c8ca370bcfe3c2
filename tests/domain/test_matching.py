"""Ranking candidates: ETA formula, reserves, substitutes, own city, exercise, ties."""

from __future__ import annotations

import pytest
from pyproj import Geod

from server.domain.matching import accepted_capabilities, distance_km, eta_hours, rank_candidates
from server.domain.model import Capability, Line, Point, Unit
from server.domain.status import UnitStatus

FACTORS = {"air": 1.0, "road": 1.3}
CATALOGUE = {
    "HELI": Capability("HELI", "Helicopter", "firefighting", "aircraft", 4, 200.0, 3.0, "air"),
    "ENGINE": Capability("ENGINE", "Engine", "firefighting", "vehicle", 6, 60.0, 2.0, "road"),
    "BIG_HELI": Capability(
        "BIG_HELI", "Heavy helicopter", "firefighting", "aircraft", 6, 220.0, 3.0, "air"
    ),
}
ATHENS = Point(37.9838, 23.7275)
SOFIA = Point(42.6977, 23.3219)
BELGRADE = Point(44.7866, 20.4489)


def make_unit(id: int, city: str = "sofia", position: Point = SOFIA, **overrides: object) -> Unit:
    values: dict[str, object] = {
        "id": id,
        "city": city,
        "capability": "HELI",
        "callsign": f"U{id}",
        "position": position,
        "readiness_hours": 3.0,
        "status": UnitStatus.AVAILABLE,
    }
    values.update(overrides)
    return Unit(**values)  # type: ignore[arg-type]


def rank(units: list[Unit], line: Line | None = None, **overrides: object) -> list[int]:
    kwargs: dict[str, object] = {
        "incident": ATHENS,
        "requesting_city": "athens",
        "exercise": False,
        "units": units,
        "catalogue": CATALOGUE,
        "reserves": {},
        "substitution_rules": {},
        "route_factors": FACTORS,
    }
    kwargs.update(overrides)
    ranked = rank_candidates(line or Line(id=1, capability="HELI", quantity=1), **kwargs)  # type: ignore[arg-type]
    return [c.resource_id for c in ranked]


def test_distance_is_the_wgs84_geodesic() -> None:
    _, _, metres = Geod(ellps="WGS84").inv(SOFIA.lon, SOFIA.lat, ATHENS.lon, ATHENS.lat)
    assert distance_km(SOFIA, ATHENS) == pytest.approx(metres / 1000, abs=1e-6)


@pytest.mark.parametrize(
    ("code", "readiness", "km", "expected"),
    [("HELI", 3.0, 400.0, 3.0 + 400 / 200), ("ENGINE", 2.0, 300.0, 2.0 + 300 * 1.3 / 60)],
)
def test_eta_formula(code: str, readiness: float, km: float, expected: float) -> None:
    assert eta_hours(readiness, km, CATALOGUE[code], FACTORS) == pytest.approx(expected)


def test_soonest_first_and_readiness_counts() -> None:
    near_but_slow = make_unit(1, readiness_hours=10.0)
    far_but_ready = make_unit(2, city="belgrade", position=BELGRADE, readiness_hours=0.5)
    assert rank([near_but_slow, far_but_ready]) == [2, 1]


def test_ties_break_by_distance_then_id() -> None:
    assert rank([make_unit(9), make_unit(3), make_unit(5)]) == [3, 5, 9]


@pytest.mark.parametrize(
    "unit",
    [
        make_unit(1, city="athens", position=ATHENS),
        make_unit(1, status=UnitStatus.OFFERED),
        make_unit(1, status=UnitStatus.OUT_OF_SERVICE),
        make_unit(1, exercise=True),
        make_unit(1, capability="ENGINE"),
    ],
)
def test_excluded_units(unit: Unit) -> None:
    assert rank([unit]) == []


def test_reserves_keep_the_donors_soonest_beyond_the_reserve() -> None:
    units = [
        make_unit(1, readiness_hours=1.0),
        make_unit(2, readiness_hours=2.0),
        make_unit(3, readiness_hours=4.0),
    ]
    assert rank(units, reserves={("sofia", "HELI"): 1}) == [1, 2]
    assert rank(units, reserves={("sofia", "HELI"): 3}) == []
    assert rank(units, reserves={("belgrade", "HELI"): 3}) == [1, 2, 3]


def test_substitutes_from_rules_or_from_the_line() -> None:
    units = [make_unit(1, capability="BIG_HELI"), make_unit(2)]
    assert rank(units) == [2]
    assert sorted(rank(units, substitution_rules={"HELI": ["BIG_HELI"]})) == [1, 2]
    line = Line(id=1, capability="HELI", quantity=1, substitutes=("BIG_HELI",))
    assert sorted(rank(units, line=line)) == [1, 2]
    assert accepted_capabilities(line, {}) == ("HELI", "BIG_HELI")
