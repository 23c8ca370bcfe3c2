"""Network-wide allocation: the exact best plan for many request lines and units at once.

Pure: columns of plain data in, a plan out. The model (argued in docs/allocation.md):

* demand is aggregated per (incident, requesting city, priority, accepted capabilities):
  lines of one group share their whole cost column, so they are one node;
* identical units (same city, capability, position, readiness) are one supply node, under a
  node per (city, capability) whose capacity is what the city may lend (available - reserve);
* lexicographic objective: three small max-fill stages (critical, then high, then normal)
  fix how many units of each priority stay unfilled, then one min-cost flow minimises the
  total ETA in integer micro-hours under those counts;
* the cost flow starts from the nearest arcs (a haversine lower bound picks them) and grows by
  pricing: node potentials from the residual graph prove that no left-out arc could improve
  the plan; left-out arcs that might are measured exactly and added, until none remain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.graph.python.min_cost_flow import SimpleMinCostFlow
from pyproj import Geod

from server.domain.model import Capability, Priority

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PRIORITIES: tuple[Priority, ...] = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL)
SCALE = 1_000_000  # integer cost units per hour: micro-hours (3.6 ms)
EARTH_MEAN_KM = 6371.0088
# Haversine on the mean sphere is within 0.56 % of the WGS-84 geodesic; 0.99 keeps a margin,
# so the scaled bound never exceeds an exact cost (tests check it across the region).
LOWER_BOUND_FACTOR = 0.99
PRICE_PER_DEMAND = 2  # arcs per unit of demand that one pricing round may add to a group
PRICE_MIN = 4
HALF_EARTH_KM = 20_004.0  # the longest geodesic: bounds every possible arc cost
# Exact distances are kept per (supply position, incident) pair in a dense matrix up to this
# many pairs (32 MB); beyond it (every unit at its own spot) each round measures afresh.
DISTANCE_CACHE_PAIRS = 4_000_000
WGS84 = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class PlanLine:
    """An open line as the planner sees it; `remaining` = quantity - accepted."""

    id: int
    request_id: int
    incident_id: int
    city: str  # the requesting city: its own units are never lent to it
    lat: float  # the incident's position
    lon: float
    priority: Priority
    capability: str
    accepted: tuple[str, ...]  # the capability first, then its stored substitutes
    remaining: int


@dataclass(frozen=True, slots=True)
class UnitTable:
    """Available units of one kind (live or exercise) as columns, one row per unit."""

    ids: IntArray
    city: npt.NDArray[np.str_]
    capability: npt.NDArray[np.str_]
    lat: FloatArray
    lon: FloatArray
    readiness: FloatArray

    @classmethod
    def of(
        cls,
        ids: Sequence[int],
        city: Sequence[str],
        capability: Sequence[str],
        lat: Sequence[float],
        lon: Sequence[float],
        readiness: Sequence[float],
    ) -> UnitTable:
        return cls(
            ids=np.asarray(ids, dtype=np.int64),
            city=np.asarray(city, dtype=np.str_),
            capability=np.asarray(capability, dtype=np.str_),
            lat=np.asarray(lat, dtype=np.float64),
            lon=np.asarray(lon, dtype=np.float64),
            readiness=np.asarray(readiness, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: IntArray) -> UnitTable:
        return UnitTable(
            self.ids[rows],
            self.city[rows],
            self.capability[rows],
            self.lat[rows],
            self.lon[rows],
            self.readiness[rows],
        )

    def without(self, ids: Sequence[int]) -> UnitTable:
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        return UnitTable(
            self.ids[keep],
            self.city[keep],
            self.capability[keep],
            self.lat[keep],
            self.lon[keep],
            self.readiness[keep],
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    request_item_id: int
    request_id: int
    resource_id: int
    city: str
    capability: str
    eta_hours: float
    distance_km: float


@dataclass(frozen=True, slots=True)
class Unfilled:
    request_item_id: int
    request_id: int
    capability: str
    quantity: int
    reason: str


@dataclass(frozen=True, slots=True)
class Certificate:
    """How optimality was proven, in exact integers (micro-hours).

    `optimal_cost` is the flow's total scaled ETA; `dual_objective` the value of the LP dual
    given by the node potentials over the complete network (every unit-class/group pair,
    also those never added to the flow). By weak duality no feasible flow costs less than any
    dual value, so equality proves the flow optimal; `min_reduced_cost` >= 0 over the pairs
    left out of the flow is what makes those potentials dual feasible for them.
    """

    rounds: int
    arcs: int  # class -> group arcs in the final flow network
    pairs: int  # class -> group pairs priced in the last round (the complete network)
    optimal_cost: int
    dual_objective: int
    min_reduced_cost: int | None  # None: no pair was left out
    components: int = 1  # independent capability components, each solved and certified

    @property
    def proves_optimal(self) -> bool:
        return self.dual_objective == self.optimal_cost and (self.min_reduced_cost or 0) >= 0


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: tuple[Assignment, ...]
    unfilled: tuple[Unfilled, ...]
    filled: Mapping[Priority, int]
    total_eta_hours: float
    certificate: Certificate = field(compare=False)


def hours_per_km(capability: Capability, route_factors: Mapping[str, float]) -> tuple[float, float]:
    """(route factor, speed): eta = readiness + km * factor / speed, as matching.eta_hours."""
    return route_factors[capability.travel], capability.deploy_speed_kmh


def geodesic_km(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    """WGS-84 geodesic (Karney, as geopy's) on arrays, in km."""
    if len(lat1) == 0:
        return np.zeros(0)
    _, _, metres = WGS84.inv(lon1, lat1, lon2, lat2)
    return np.asarray(metres, dtype=np.float64) / 1000.0


def haversine_km(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    km: FloatArray = 2 * EARTH_MEAN_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return km


@dataclass(slots=True)
class _Groups:
    lat: FloatArray
    lon: FloatArray
    city: list[str]
    priority: list[int]
    accepted: list[frozenset[str]]
    demand: IntArray
    lines: list[list[PlanLine]]
    site: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))  # incident position


@dataclass(slots=True)
class _Classes:
    cc: IntArray  # (city, capability) node of each class
    cc_city: list[str]
    cc_capability: list[str]
    cc_spare: IntArray
    city: list[str]
    capability: npt.NDArray[np.str_]
    lat: FloatArray
    lon: FloatArray
    readiness: FloatArray
    count: IntArray
    units: list[IntArray]  # unit ids of each class, ascending
    pos: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))  # supply position


@dataclass(slots=True)
class _Block:
    """Classes of one capability (rows) against the groups that accept it (columns)."""

    capability: str
    factor: float
    speed: float
    classes: IntArray
    groups: IntArray
    lower: IntArray  # scaled lower bound of each pair's cost; -1 marks the group's own city
    cost: IntArray = field(init=False)  # exact scaled cost; -1 until measured
    km: FloatArray = field(init=False)
    in_graph: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.cost = np.full(self.lower.shape, -1, np.int64)
        self.km = np.zeros(self.lower.shape)
        self.in_graph = np.zeros(self.lower.shape, bool)

    def eta(self, readiness: FloatArray, km: FloatArray) -> FloatArray:
        # The same expression, in the same order, as matching.eta_hours: the candidates' ETA.
        eta: FloatArray = readiness + km * self.factor / self.speed
        return eta


def plan_allocation(
    lines: Sequence[PlanLine],
    units: UnitTable,
    *,
    catalogue: Mapping[str, Capability],
    route_factors: Mapping[str, float],
    reserves: Mapping[tuple[str, str], int],
) -> Plan:
    """The lexicographically best plan: most critical units, then high, then normal, then the
    least total ETA. `units` must be every available unit of the plan's kind (live or exercise):
    a city's reserve is counted against all of them.

    Substitution rules link few capabilities, so the network falls apart into components (a
    capability and whatever may stand in for it); they share no node, so the lexicographic
    optimum of the whole is the sum of theirs, and each is solved and certified on its own.
    """
    travel = {c: hours_per_km(cap, route_factors) for c, cap in catalogue.items()}
    parts = []
    for capabilities, part in _components([line for line in lines if line.remaining > 0]):
        mine = units.take(np.flatnonzero(np.isin(units.capability, sorted(capabilities))))
        groups = _group_lines(part)
        classes = _classify(mine, reserves)
        blocks = _blocks(groups, classes, travel)
        unfilled_caps = _max_fill(groups, classes, blocks)
        distances = _Distances.between(classes, groups)
        used, certificate = _min_eta(groups, classes, blocks, distances, unfilled_caps, travel)
        parts.append(_disaggregate(groups, classes, blocks, used, certificate))
    return _merge(parts)


def _components(lines: Sequence[PlanLine]) -> list[tuple[frozenset[str], list[PlanLine]]]:
    """Lines by connected set of accepted capabilities, in a fixed order."""
    root: dict[str, str] = {}

    def find(c: str) -> str:
        while root.setdefault(c, c) != c:
            root[c] = root[root[c]]
            c = root[c]
        return c

    for line in lines:
        first = find(line.accepted[0])
        for other in line.accepted[1:]:
            root[find(other)] = first
    members: dict[str, set[str]] = defaultdict(set)
    parts: dict[str, list[PlanLine]] = defaultdict(list)
    for capability in root:
        members[find(capability)].add(capability)
    for line in lines:
        parts[find(line.accepted[0])].append(line)
    return [(frozenset(members[r]), parts[r]) for r in sorted(parts, key=lambda r: min(members[r]))]


def _merge(parts: Sequence[Plan]) -> Plan:
    assignments = sorted(
        (a for p in parts for a in p.assignments),
        key=lambda a: (a.request_item_id, a.eta_hours, a.resource_id),
    )
    unfilled = sorted((u for p in parts for u in p.unfilled), key=lambda u: u.request_item_id)
    filled = {prio: sum(p.filled[prio] for p in parts) for prio in PRIORITIES}
    least = [p.certificate.min_reduced_cost for p in parts]
    certificate = Certificate(
        rounds=max((p.certificate.rounds for p in parts), default=0),
        arcs=sum(p.certificate.arcs for p in parts),
        pairs=sum(p.certificate.pairs for p in parts),
        optimal_cost=sum(p.certificate.optimal_cost for p in parts),
        dual_objective=sum(p.certificate.dual_objective for p in parts),
        min_reduced_cost=min((x for x in least if x is not None), default=None),
        components=len(parts),
    )
    total = float(sum(a.eta_hours for a in assignments))
    return Plan(tuple(assignments), tuple(unfilled), filled, total, certificate)


def _group_lines(lines: Sequence[PlanLine]) -> _Groups:
    index: dict[tuple[int, str, int, frozenset[str]], int] = {}
    g = _Groups(np.zeros(0), np.zeros(0), [], [], [], np.zeros(0, np.int64), [])
    lat: list[float] = []
    lon: list[float] = []
    demand: list[int] = []
    for line in sorted(lines, key=lambda x: x.id):
        prio = PRIORITIES.index(line.priority)
        key = (line.incident_id, line.city, prio, frozenset(line.accepted))
        if key not in index:
            index[key] = len(demand)
            lat.append(line.lat)
            lon.append(line.lon)
            g.city.append(line.city)
            g.priority.append(prio)
            g.accepted.append(key[3])
            demand.append(0)
            g.lines.append([])
        k = index[key]
        demand[k] += line.remaining
        g.lines[k].append(line)
    g.lat, g.lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    g.demand = np.asarray(demand, np.int64)
    g.site = _positions(g.lat, g.lon)
    return g


def _classify(units: UnitTable, reserves: Mapping[tuple[str, str], int]) -> _Classes:
    n = len(units)
    if n == 0:
        empty_f, empty_i = np.zeros(0), np.zeros(0, np.int64)
        return _Classes(
            empty_i,
            [],
            [],
            empty_i,
            [],
            np.zeros(0, np.str_),
            empty_f,
            empty_f,
            empty_f,
            empty_i,
            [],
        )
    cc_keys = np.char.add(np.char.add(units.city, "\x1f"), units.capability) if n else units.city
    cc_names, cc_of_unit = np.unique(cc_keys, return_inverse=True)
    cc_city = [str(s).split("\x1f")[0] for s in cc_names]
    cc_cap = [str(s).split("\x1f")[1] for s in cc_names]
    available = np.bincount(cc_of_unit, minlength=len(cc_names)).astype(np.int64)
    spare = np.asarray(
        [
            max(0, int(available[i]) - reserves.get((cc_city[i], cc_cap[i]), 0))
            for i in range(len(cc_names))
        ],
        dtype=np.int64,
    )
    keys = np.column_stack([cc_of_unit.astype(np.float64), units.lat, units.lon, units.readiness])
    rows, first, inverse, count = np.unique(
        keys.reshape(n, 4), axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    order = np.lexsort((units.ids, inverse))
    bounds = np.cumsum(count)[:-1]
    members = [np.asarray(a, np.int64) for a in np.split(units.ids[order], bounds)]
    cc = rows[:, 0].astype(np.int64) if n else np.zeros(0, np.int64)
    return _Classes(
        cc=cc,
        cc_city=cc_city,
        cc_capability=cc_cap,
        cc_spare=spare,
        city=[cc_city[i] for i in cc],
        capability=np.asarray([cc_cap[i] for i in cc], dtype=np.str_),
        lat=rows[:, 1] if n else np.zeros(0),
        lon=rows[:, 2] if n else np.zeros(0),
        readiness=rows[:, 3] if n else np.zeros(0),
        count=count.astype(np.int64),
        units=members,
        pos=_positions(rows[:, 1], rows[:, 2]),
    )


def _positions(lat: FloatArray, lon: FloatArray) -> IntArray:
    """Index of each row's (lat, lon) among the distinct positions, in sorted order."""
    if len(lat) == 0:
        return np.zeros(0, np.int64)
    _, inverse = np.unique(np.column_stack([lat, lon]), axis=0, return_inverse=True)
    return np.asarray(inverse, np.int64).reshape(-1)


@dataclass(slots=True)
class _Distances:
    """Exact geodesic km per (supply position, incident position) pair, measured once.

    ETA depends only on the unit's position, readiness and capability and on the incident, so
    every class at one position and every group at one incident share a distance.
    """

    pos_lat: FloatArray
    pos_lon: FloatArray
    site_lat: FloatArray
    site_lon: FloatArray
    cache: FloatArray | None  # flat (position x site), NaN until measured

    @classmethod
    def between(cls, classes: _Classes, groups: _Groups) -> _Distances:
        n_pos = int(classes.pos.max()) + 1 if len(classes.pos) else 0
        n_site = int(groups.site.max()) + 1 if len(groups.site) else 0
        pos_lat, pos_lon = np.zeros(n_pos), np.zeros(n_pos)
        pos_lat[classes.pos], pos_lon[classes.pos] = classes.lat, classes.lon
        site_lat, site_lon = np.zeros(n_site), np.zeros(n_site)
        site_lat[groups.site], site_lon[groups.site] = groups.lat, groups.lon
        size = n_pos * n_site
        cache = np.full(size, np.nan) if size <= DISTANCE_CACHE_PAIRS else None
        return cls(pos_lat, pos_lon, site_lat, site_lon, cache)

    def km(self, pos: IntArray, site: IntArray) -> FloatArray:
        n_site = len(self.site_lat)
        keys = pos * n_site + site
        if self.cache is None:
            todo, inverse = np.unique(keys, return_inverse=True)
            fresh: FloatArray = self._measure(todo)[inverse.reshape(-1)]
            return fresh
        todo = np.unique(keys[np.isnan(self.cache[keys])])
        if len(todo):
            self.cache[todo] = self._measure(todo)
        kept: FloatArray = self.cache[keys]
        return kept

    def _measure(self, keys: IntArray) -> FloatArray:
        n_site = len(self.site_lat)
        p, q = keys // n_site, keys % n_site
        return geodesic_km(self.pos_lat[p], self.pos_lon[p], self.site_lat[q], self.site_lon[q])


def _blocks(
    groups: _Groups, classes: _Classes, travel: Mapping[str, tuple[float, float]]
) -> list[_Block]:
    wanting: dict[str, list[int]] = defaultdict(list)
    for g, accepted in enumerate(groups.accepted):
        for capability in accepted:
            wanting[capability].append(g)
    blocks = []
    for capability in sorted(wanting):
        cls = np.flatnonzero(classes.capability == capability).astype(np.int64)
        cls = cls[classes.cc_spare[classes.cc[cls]] > 0]
        if len(cls) == 0:
            continue
        grp = np.asarray(wanting[capability], np.int64)
        factor, speed = travel[capability]
        km = haversine_km(
            classes.lat[cls][:, None],
            classes.lon[cls][:, None],
            groups.lat[grp][None, :],
            groups.lon[grp][None, :],
        )
        eta = classes.readiness[cls][:, None] + km * LOWER_BOUND_FACTOR * factor / speed
        lower = np.floor(eta * SCALE).astype(np.int64)
        own = (
            np.asarray(classes.city, dtype=np.str_)[cls][:, None]
            == np.asarray(groups.city, dtype=np.str_)[grp][None, :]
        )
        lower[own] = -1
        blocks.append(_Block(capability, factor, speed, cls, grp, lower))
    return blocks


def _max_fill(groups: _Groups, classes: _Classes, blocks: list[_Block]) -> list[int]:
    """Least units left unfilled per priority, lexicographically (critical first).

    Costs do not matter here, only who may lend to whom, so groups of one requesting city,
    priority and accepted set merge, and (city, capability) nodes feed them directly.
    """
    kinds: dict[tuple[str, int, frozenset[str]], int] = {}
    kind_of_group = np.zeros(len(groups.demand), np.int64)
    for g in range(len(groups.demand)):
        key = (groups.city[g], groups.priority[g], groups.accepted[g])
        kind_of_group[g] = kinds.setdefault(key, len(kinds))
    kind_demand = np.bincount(kind_of_group, weights=groups.demand, minlength=len(kinds)).astype(
        np.int64
    )
    kind_priority = np.zeros(len(kinds), np.int64)
    for (_, prio, _), k in kinds.items():
        kind_priority[k] = prio
    found = [np.zeros(0, np.int64)]
    for block in blocks:
        rows, cols = np.nonzero(block.lower >= 0)
        cc_kind = classes.cc[block.classes[rows]] * len(kinds) + kind_of_group[block.groups[cols]]
        found.append(np.unique(cc_kind))
    keys = np.unique(np.concatenate(found))
    total = int(kind_demand.sum())
    n_cc = len(classes.cc_spare)
    link_cc = (keys // max(len(kinds), 1)).astype(np.int64)
    link_kind = (keys % max(len(kinds), 1)).astype(np.int64)
    lending = np.unique(link_cc)
    first_cc, first_kind = 4, 4 + n_cc
    kind_nodes = first_kind + np.arange(len(kinds), dtype=np.int64)
    # Nodes: 0 source, 1..3 unfilled per priority, then cc nodes, then kinds.
    tails = np.concatenate(
        [
            np.zeros(3, np.int64),
            1 + kind_priority,
            np.zeros(len(lending), np.int64),
            first_cc + link_cc,
        ]
    )
    heads = np.concatenate(
        [1 + np.arange(3, dtype=np.int64), kind_nodes, first_cc + lending, first_kind + link_kind]
    )
    fixed_caps = np.concatenate([kind_demand, classes.cc_spare[lending], kind_demand[link_kind]])
    caps: list[int] = []
    for stage in range(len(PRIORITIES)):
        unfilled = [caps[p] if p < stage else total for p in range(len(PRIORITIES))]
        cost = np.zeros(len(tails), np.int64)
        cost[stage] = 1
        flow = SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(
            tails, heads, np.concatenate([np.asarray(unfilled, np.int64), fixed_caps]), cost
        )
        supplies = np.zeros(first_kind + len(kinds), np.int64)
        supplies[0] = total
        supplies[first_kind:] = -kind_demand
        flow.set_nodes_supplies(np.arange(len(supplies)), supplies)
        _solve(flow)
        caps.append(int(flow.optimal_cost()))
    return caps


def _solve(flow: SimpleMinCostFlow) -> None:
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed: status {status}")


def _measure(
    block: _Block,
    groups: _Groups,
    classes: _Classes,
    distances: _Distances,
    rows: IntArray,
    cols: IntArray,
) -> None:
    """Exact geodesic ETAs for the given pairs of the block, kept for later rounds."""
    cls, grp = block.classes[rows], block.groups[cols]
    km = distances.km(classes.pos[cls], groups.site[grp])
    block.km[rows, cols] = km
    block.cost[rows, cols] = np.rint(block.eta(classes.readiness[cls], km) * SCALE).astype(np.int64)


def _initial_pairs(block: _Block, classes: _Classes, groups: _Groups) -> tuple[IntArray, IntArray]:
    """Per group, the nearest classes (by the bound) holding twice its demand, and one more."""
    lower = np.where(block.lower < 0, np.iinfo(np.int64).max, block.lower)
    order = np.argsort(lower, axis=0, kind="stable")
    held = np.minimum(classes.count[block.classes], classes.cc_spare[classes.cc[block.classes]])
    cumulative = np.cumsum(held[order], axis=0)
    want = 2 * groups.demand[block.groups][None, :] + 1
    keep = (cumulative - held[order]) < want
    keep &= np.take_along_axis(block.lower, order, axis=0) >= 0
    rows, cols = np.nonzero(keep)
    return order[rows, cols].astype(np.int64), cols.astype(np.int64)


def _min_eta(
    groups: _Groups,
    classes: _Classes,
    blocks: list[_Block],
    distances: _Distances,
    unfilled_caps: list[int],
    travel: Mapping[str, tuple[float, float]],
) -> tuple[list[tuple[int, IntArray, IntArray, IntArray]], Certificate]:
    total = int(groups.demand.sum())
    n_cc, n_cls, n_grp = len(classes.cc_spare), len(classes.count), len(groups.demand)
    first_cc, first_cls, first_grp = 4, 4 + n_cc, 4 + n_cc + n_cls
    max_ready = float(classes.readiness.max()) if n_cls else 0.0
    max_rate = max((f / s for f, s in travel.values()), default=0.0)
    worst_arc = int((max_ready + HALF_EARTH_KM * max_rate) * SCALE) + 1
    # Guard arcs keep every pricing round feasible; at the optimum they carry nothing, as any
    # flow through one costs more than every plan without (proof in docs/allocation.md).
    guard = (total + 1) * worst_arc
    for block in blocks:
        rows, cols = _initial_pairs(block, classes, groups)
        _measure(block, groups, classes, distances, rows, cols)
        block.in_graph[rows, cols] = True
    g = np.arange(n_grp, dtype=np.int64)
    k = np.arange(n_cls, dtype=np.int64)
    cc = np.arange(n_cc, dtype=np.int64)
    prio = np.asarray(groups.priority, np.int64)
    # Fixed arcs, in this order: source -> unfilled[p]; per group unfilled[p] -> g and the
    # guard source -> g (interleaved); source -> cc; cc -> class.
    fixed_t = np.concatenate(
        [
            np.zeros(3, np.int64),
            np.column_stack([1 + prio, np.zeros(n_grp, np.int64)]).ravel(),
            np.zeros(n_cc, np.int64),
            first_cc + classes.cc,
        ]
    )
    fixed_h = np.concatenate(
        [
            1 + np.arange(3, dtype=np.int64),
            np.repeat(first_grp + g, 2),
            first_cc + cc,
            first_cls + k,
        ]
    )
    fixed_u = np.concatenate(
        [
            np.asarray(unfilled_caps, np.int64),
            np.repeat(groups.demand, 2),
            classes.cc_spare,
            classes.count,
        ]
    )
    fixed_c = np.concatenate(
        [
            np.zeros(3, np.int64),
            np.column_stack([np.zeros(n_grp, np.int64), np.full(n_grp, guard, np.int64)]).ravel(),
            np.zeros(n_cc + n_cls, np.int64),
        ]
    )
    supplies = np.zeros(first_grp + n_grp, np.int64)
    supplies[0] = total
    supplies[first_grp:] = -groups.demand
    rounds = 0
    while True:
        rounds += 1
        parts: list[tuple[int, IntArray, IntArray]] = []
        for b, block in enumerate(blocks):
            rows, cols = np.nonzero(block.in_graph)
            parts.append((b, rows.astype(np.int64), cols.astype(np.int64)))
        tails, heads, caps, costs = [fixed_t], [fixed_h], [fixed_u], [fixed_c]
        for b, rows, cols in parts:
            block = blocks[b]
            kk, gg = block.classes[rows], block.groups[cols]
            tails.append(first_cls + kk)
            heads.append(first_grp + gg)
            caps.append(np.minimum(classes.count[kk], groups.demand[gg]))
            costs.append(block.cost[rows, cols])
        t_arr, h_arr = np.concatenate(tails), np.concatenate(heads)
        u_arr, c_arr = np.concatenate(caps), np.concatenate(costs)
        flow = SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(t_arr, h_arr, u_arr, c_arr)
        flow.set_nodes_supplies(np.arange(len(supplies)), supplies)
        _solve(flow)
        f_arr = np.asarray(flow.flows(np.arange(len(t_arr))), np.int64)
        potential = _potentials(len(supplies), t_arr, h_arr, u_arr, c_arr, f_arr)
        added = 0
        priced = 0
        for block in blocks:
            pc = potential[first_cls + block.classes][:, None]
            pg = potential[first_grp + block.groups][None, :]
            priced += block.lower.size
            suspect = (block.lower >= 0) & ~block.in_graph & (block.lower + pc - pg < 0)
            if not suspect.any():
                continue
            limit = np.maximum(PRICE_PER_DEMAND * groups.demand[block.groups], PRICE_MIN)
            # Measure exactly the most promising suspects first (by their bound); all of them
            # only when those hold no violation, so a round that adds nothing has priced all.
            bound = np.where(suspect, block.lower + pc - pg, 0)
            promising = suspect & (_rank(bound) < 2 * limit[None, :])
            rows, cols = np.nonzero(promising & (block.cost < 0))
            _measure(block, groups, classes, distances, rows, cols)
            reduced = np.where(promising, block.cost + pc - pg, 0)
            if not (reduced < 0).any():
                rows, cols = np.nonzero(suspect & (block.cost < 0))
                _measure(block, groups, classes, distances, rows, cols)
                reduced = np.where(suspect, block.cost + pc - pg, 0)
            violated = reduced < 0
            # Partial pricing: per group, only its most negative arcs (a few times its
            # demand) join; the next round prices the rest against better potentials.
            violated &= _rank(reduced) < limit[None, :]
            block.in_graph |= violated
            added += int(violated.sum())
        if added == 0:
            break
    guard_flow = int(f_arr[4 + 2 * g].sum()) if n_grp else 0
    if guard_flow:
        raise RuntimeError("allocation: guard arcs carry flow at the optimum (bug)")
    used: list[tuple[int, IntArray, IntArray, IntArray]] = []
    offset = len(fixed_t)
    for b, rows, cols in parts:
        f = f_arr[offset : offset + len(rows)]
        offset += len(rows)
        positive = f > 0
        used.append((b, rows[positive], cols[positive], f[positive]))
    certificate = _certificate(
        blocks,
        classes,
        groups,
        potential,
        supplies,
        (t_arr, h_arr, u_arr, c_arr, f_arr),
        guards=4 + 2 * g,
        rounds=rounds,
        first=(first_cls, first_grp),
    )
    if not certificate.proves_optimal:
        raise RuntimeError(f"allocation: the certificate does not prove optimality {certificate}")
    return used, certificate


def _certificate(
    blocks: list[_Block],
    classes: _Classes,
    groups: _Groups,
    d: IntArray,
    supplies: IntArray,
    network: tuple[IntArray, IntArray, IntArray, IntArray, IntArray],
    *,
    guards: IntArray,
    rounds: int,
    first: tuple[int, int],
) -> Certificate:
    """Primal cost and the dual value of the potentials `d` on the complete network.

    The LP dual of min sum(c x) (conservation with supplies b, 0 <= x <= u) is
    max sum(b p) - sum(u z) with p[tail] - p[head] - z <= c, z >= 0. With p = -d and
    z = max(0, -(c + d[tail] - d[head])) it is feasible for every arc in the flow network;
    for a pair left out z = 0 is feasible exactly when its reduced cost is >= 0. Guard arcs
    are not part of the allocation network, so they are left out of the dual (they carry no
    flow). Python integers: no overflow.
    """
    tails, heads, capacity, cost, flow = network
    keep = np.ones(len(tails), bool)
    keep[guards] = False
    t, h, u, c, f = tails[keep], heads[keep], capacity[keep], cost[keep], flow[keep]
    reduced = c + d[t] - d[h]
    primal = int(np.dot(f.astype(object), c.astype(object)))
    dual = -int(np.dot(supplies.astype(object), d.astype(object))) - int(
        np.dot(u.astype(object), np.maximum(0, -reduced).astype(object))
    )
    first_cls, first_grp = first
    least: int | None = None
    pairs = 0
    for block in blocks:
        out = (block.lower >= 0) & ~block.in_graph
        pairs += int(np.count_nonzero(block.lower >= 0))
        if not out.any():
            continue
        # Unmeasured pairs: the bound is below the exact cost, so it bounds the reduced cost.
        value = np.where(block.cost >= 0, block.cost, block.lower)
        pc = d[first_cls + block.classes][:, None]
        pg = d[first_grp + block.groups][None, :]
        low = int((value + pc - pg)[out].min())
        least = low if least is None else min(least, low)
    return Certificate(
        rounds=rounds,
        arcs=int(np.count_nonzero((t >= first_cls) & (t < first_grp))),
        pairs=pairs,
        optimal_cost=primal,
        dual_objective=dual,
        min_reduced_cost=least,
    )


def _rank(values: IntArray) -> IntArray:
    """Each entry's rank within its column (0 = smallest)."""
    ranks: IntArray = np.argsort(np.argsort(values, axis=0, kind="stable"), axis=0)
    return ranks


def _potentials(
    n: int, tails: IntArray, heads: IntArray, capacity: IntArray, cost: IntArray, flow: IntArray
) -> IntArray:
    """Shortest distances in the residual graph from a virtual root: feasible node potentials.

    The flow is optimal iff its residual graph has no negative cycle (Bellman-Ford converges);
    then every residual arc has cost + d[tail] - d[head] >= 0, the optimality certificate.
    """
    fwd = flow < capacity
    back = flow > 0
    t = np.concatenate([tails[fwd], heads[back]])
    h = np.concatenate([heads[fwd], tails[back]])
    c = np.concatenate([cost[fwd], -cost[back]])
    dist = np.zeros(n, np.int64)
    for _ in range(n + 1):
        relaxed = dist.copy()
        np.minimum.at(relaxed, h, dist[t] + c)
        if np.array_equal(relaxed, dist):
            return dist
        dist = relaxed
    raise RuntimeError("allocation: negative cycle in the residual graph; the flow is not optimal")


def _disaggregate(
    groups: _Groups,
    classes: _Classes,
    blocks: list[_Block],
    used: list[tuple[int, IntArray, IntArray, IntArray]],
    certificate: Certificate,
) -> Plan:
    taken = np.zeros(len(classes.count), np.int64)
    per_group: dict[int, list[tuple[float, float, int, int]]] = defaultdict(list)
    for b, rows, cols, units in used:
        block = blocks[b]
        for r, c, n in zip(rows.tolist(), cols.tolist(), units.tolist(), strict=True):
            k, g = int(block.classes[r]), int(block.groups[c])
            km = block.km[r, c]
            eta = float(block.eta(classes.readiness[k : k + 1], block.km[r : r + 1, c])[0])
            for unit in classes.units[k][taken[k] : taken[k] + n].tolist():
                per_group[g].append((eta, float(km), int(unit), k))
            taken[k] += n
    assignments: list[Assignment] = []
    unfilled: list[Unfilled] = []
    filled = dict.fromkeys(PRIORITIES, 0)
    total = 0.0
    for g, lines in enumerate(groups.lines):
        supply = sorted(per_group.get(g, []))
        filled[PRIORITIES[groups.priority[g]]] += len(supply)
        for line in lines:
            give, supply = supply[: line.remaining], supply[line.remaining :]
            for eta, km, unit, k in give:
                total += eta
                assignments.append(
                    Assignment(
                        line.id,
                        line.request_id,
                        unit,
                        classes.city[k],
                        str(classes.capability[k]),
                        eta,
                        km,
                    )
                )
            if len(give) < line.remaining:
                unfilled.append(
                    Unfilled(
                        line.id,
                        line.request_id,
                        line.capability,
                        line.remaining - len(give),
                        _reason(line, classes),
                    )
                )
    assignments.sort(key=lambda a: (a.request_item_id, a.eta_hours, a.resource_id))
    unfilled.sort(key=lambda u: u.request_item_id)
    return Plan(tuple(assignments), tuple(unfilled), filled, total, certificate)


def _reason(line: PlanLine, classes: _Classes) -> str:
    names = " or ".join(line.accepted)
    elsewhere = [
        cc
        for cc in range(len(classes.cc_spare))
        if classes.cc_capability[cc] in line.accepted and classes.cc_city[cc] != line.city
    ]
    if not elsewhere:
        return f"no available unit of {names} outside {line.city}"
    if all(classes.cc_spare[cc] == 0 for cc in elsewhere):
        return f"every available unit of {names} outside {line.city} is held by a reserve"
    return f"the spare units of {names} went to higher-priority or nearer lines"
