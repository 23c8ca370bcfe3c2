"""Lender cover: what each donor city keeps after lending, and whether it is still covered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.domain.allocation import (
    LOWER_BOUND_FACTOR,
    UnitTable,
    geodesic_km,
    haversine_km,
    hours_per_km,
)
from server.domain.model import Capability, Point

EXACT_FIRST = 8  # measure this many nearest-by-bound units exactly before pruning the rest


@dataclass(frozen=True, slots=True)
class Cover:
    city: str
    capability: str
    left_at_home: int
    nearest_eta_hours: float | None  # None: no available unit of it anywhere
    before_eta_hours: float | None


@dataclass(frozen=True, slots=True)
class CoverFlag:
    city: str
    capability: str
    reason: str
    nearest_eta_hours: float | None


def nearest_eta(
    units: UnitTable,
    capability: Capability,
    at: Point,
    route_factors: Mapping[str, float],
) -> float | None:
    """The soonest ETA (the core's formula) of any unit of `capability` in `units` to `at`."""
    mine = np.flatnonzero(units.capability == capability.code)
    if len(mine) == 0:
        return None
    factor, speed = hours_per_km(capability, route_factors)
    lat = np.full(len(mine), at.lat)
    lon = np.full(len(mine), at.lon)
    bound_km = haversine_km(units.lat[mine], units.lon[mine], lat, lon) * LOWER_BOUND_FACTOR
    bound = units.readiness[mine] + bound_km * factor / speed
    order = np.argsort(bound, kind="stable")
    measured = order[:EXACT_FIRST]
    best = _exact_min(units, mine[measured], at, factor, speed)
    # Only units whose lower bound beats the best exact ETA so far can be nearer.
    rest = order[EXACT_FIRST:]
    rest = rest[bound[rest] < best]
    if len(rest):
        best = min(best, _exact_min(units, mine[rest], at, factor, speed))
    return best


def _exact_min(units: UnitTable, rows: np.ndarray, at: Point, factor: float, speed: float) -> float:
    km = geodesic_km(
        units.lat[rows], units.lon[rows], np.full(len(rows), at.lat), np.full(len(rows), at.lon)
    )
    return float((units.readiness[rows] + km * factor / speed).min())


def lender_cover(
    lent: Iterable[tuple[str, str]],
    *,
    before: UnitTable,
    taken: Sequence[int],
    cities: Mapping[str, Point],
    catalogue: Mapping[str, Capability],
    route_factors: Mapping[str, float],
    threshold_hours: float,
) -> tuple[list[Cover], list[CoverFlag]]:
    """Cover of each (donor city, capability) lent, after the units in `taken` leave.

    `before` holds every available unit of the plan's kind. A pair is flagged when lending
    leaves the city with no unit of that capability within `threshold_hours` although it had
    one before, or with none at all anywhere.
    """
    after = before.without(taken)
    pairs = sorted(set(lent))
    codes = sorted({code for _, code in pairs})
    # Rows per capability, found once: comparing 50,000 strings per pair is what costs.
    rows_before = _rows_by(before.capability, codes)
    rows_after = _rows_by(after.capability, codes)
    # The nearest ETA depends only on position and readiness: one row per distinct spot.
    spots_before = {code: _spots(before, rows_before[code]) for code in codes}
    spots_after = {code: _spots(after, rows_after[code]) for code in codes}
    covers: list[Cover] = []
    flags: list[CoverFlag] = []
    for city, code in pairs:
        capability, position = catalogue[code], cities[city]
        home = int(np.count_nonzero(after.city[rows_after[code]] == city))
        was = nearest_eta(spots_before[code], capability, position, route_factors)
        now = nearest_eta(spots_after[code], capability, position, route_factors)
        covers.append(Cover(city, code, home, now, was))
        if now is None:
            reason = f"no available {code} is left anywhere in the network"
        elif now > threshold_hours and (was is None or was <= threshold_hours):
            reason = (
                f"the nearest {code} to {city} is {now:.1f} h away after lending "
                f"(was {was:.1f} h; threshold {threshold_hours:g} h)"
            )
        else:
            continue
        flags.append(CoverFlag(city, code, reason, now))
    return covers, flags


def _rows_by(
    capability: npt.NDArray[np.str_], codes: Sequence[str]
) -> dict[str, npt.NDArray[np.intp]]:
    order = np.argsort(capability, kind="stable")
    ordered = capability[order]
    found = {}
    for code in codes:
        lo, hi = np.searchsorted(ordered, code, "left"), np.searchsorted(ordered, code, "right")
        found[code] = np.sort(order[lo:hi])
    return found


def _spots(units: UnitTable, rows: npt.NDArray[np.intp]) -> UnitTable:
    """The distinct (position, readiness) of the given units, as a table of their own."""
    if len(rows) == 0:
        return units.take(rows)
    keys = np.column_stack([units.lat[rows], units.lon[rows], units.readiness[rows]])
    _, first = np.unique(keys, axis=0, return_index=True)
    return units.take(rows[np.sort(first)])
