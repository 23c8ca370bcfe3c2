"""Who is alerted about what: pure rules over an event, the duty roster and a snapshot of state.

`plan_alerts` answers for one committed event, `plan_timed_alerts` for what time alone makes
alarming (a line still unfilled, a deployment late on its next status), `escalation_tier` for
an alert nobody acknowledged. No I/O: the caller loads the roster and the context and passes
`now`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from server.domain.matching import rank_candidates
from server.domain.model import Capability, Line, Point, Unit

PRIORITIES: Final = ("critical", "high", "normal")
CITY, NETWORK = "city", "network"

# Where an officer's on-duty hours are read when no time zone is given (IANA names).
COUNTRY_ZONES: Final[Mapping[str, str]] = {
    "AL": "Europe/Tirane",
    "BA": "Europe/Sarajevo",
    "BG": "Europe/Sofia",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "MD": "Europe/Chisinau",
    "ME": "Europe/Podgorica",
    "MK": "Europe/Skopje",
    "RO": "Europe/Bucharest",
    "RS": "Europe/Belgrade",
    "SI": "Europe/Ljubljana",
    "TR": "Europe/Istanbul",
    "XK": "Europe/Belgrade",
}
NETWORK_ZONE: Final = "Europe/Belgrade"


# ---------------------------------------------------------------------------------- roster


@dataclass(frozen=True, slots=True)
class DutyWindow:
    """On duty on `days` (0 = Monday) from `start` to `end` local time; end <= start spans
    midnight (a night shift starting on one of `days`)."""

    days: frozenset[int]
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        t, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        return (day in self.days and t >= self.start) or (
            (day - 1) % 7 in self.days and t < self.end
        )


@dataclass(frozen=True, slots=True)
class Officer:
    id: int
    city: str | None  # None: network coordinator
    name: str
    escalation_level: int = 1
    email: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    language: str = "en"
    timezone: str = NETWORK_ZONE
    windows: tuple[DutyWindow, ...] = ()  # empty: always on duty
    active: bool = True

    @property
    def scope(self) -> str:
        return NETWORK if self.city is None else CITY

    @property
    def channels(self) -> dict[str, str]:
        found = {"email": self.email, "sms": self.phone, "webhook": self.webhook_url}
        return {k: v for k, v in found.items() if v}


def on_duty(officer: Officer, at: datetime) -> bool:
    """Time-zone aware: a window of 08:00-20:00 in Athens is 08:00-20:00 Athens time, DST too."""
    if not officer.windows:
        return True
    local = at.astimezone(ZoneInfo(officer.timezone))
    return any(w.covers(local) for w in officer.windows)


def parse_windows(raw: Iterable[Mapping[str, Any]]) -> tuple[DutyWindow, ...]:
    """[{"days": [0, 4], "start": "08:00", "end": "20:00"}] -> windows; ValueError if bad."""
    out = []
    for item in raw:
        days = frozenset(int(d) for d in item.get("days", range(7)))
        if not days or not days <= set(range(7)):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        start, end = time.fromisoformat(str(item["start"])), time.fromisoformat(str(item["end"]))
        if start == end:
            raise ValueError("a window's start and end differ (leave the list empty for 24/7)")
        out.append(DutyWindow(days, start, end))
    return tuple(out)


# ------------------------------------------------------------------------------------ rules


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The effective rules for one city (defaults with that city's overrides applied)."""

    ack_minutes: Mapping[str, float]
    wake_off_duty: frozenset[str]
    request_created: bool = True
    max_eta_hours: float = 12.0
    offer_created: bool = True
    offer_accepted: bool = True
    line_unfilled: bool = True
    unfilled_minutes: Mapping[str, float] = field(default_factory=dict)
    deployment_overdue: bool = True
    overdue_grace_minutes: float = 30.0
    overdue_priority: str = "high"
    unit_out_of_service: bool = True
    out_of_service_priority: str = "high"

    def reaches_off_duty(self, priority: str) -> bool:
        return priority in self.wake_off_duty


@dataclass(frozen=True, slots=True)
class RuleBook:
    defaults: Mapping[str, Any]
    cities: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RuleBook:
        book = cls(defaults=data.get("defaults", {}), cities=data.get("cities", {}))
        book.for_city(None)  # validate the defaults now, not at the first alert
        for city in book.cities:
            book.for_city(city)
        return book

    def for_city(self, city: str | None) -> RuleSet:
        merged = _merge(self.defaults, self.cities.get(city, {}) if city else {})
        section = _section(merged)
        ack = _per_priority(merged.get("ack_minutes", {}), "ack_minutes")
        return RuleSet(
            ack_minutes=ack,
            wake_off_duty=frozenset(_priorities(merged.get("wake_off_duty", ["critical"]))),
            request_created=bool(section("request_created").get("enabled", True)),
            max_eta_hours=float(section("request_created").get("max_eta_hours", 12.0)),
            offer_created=bool(section("offer_created").get("enabled", True)),
            offer_accepted=bool(section("offer_accepted").get("enabled", True)),
            line_unfilled=bool(section("line_unfilled").get("enabled", True)),
            unfilled_minutes=_per_priority(
                section("line_unfilled").get("minutes", {}), "line_unfilled.minutes"
            ),
            deployment_overdue=bool(section("deployment_overdue").get("enabled", True)),
            overdue_grace_minutes=float(section("deployment_overdue").get("grace_minutes", 30)),
            overdue_priority=_priority(section("deployment_overdue").get("priority", "high")),
            unit_out_of_service=bool(section("unit_out_of_service").get("enabled", True)),
            out_of_service_priority=_priority(
                section("unit_out_of_service").get("priority", "high")
            ),
        )


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _section(merged: Mapping[str, Any]) -> Any:
    def get(name: str) -> Mapping[str, Any]:
        value = merged.get(name, {})
        if not isinstance(value, Mapping):
            raise ValueError(f"[{name}] must be a table")
        return value

    return get


def _priority(value: Any) -> str:
    if value not in PRIORITIES:
        raise ValueError(f"unknown priority {value!r} (one of {', '.join(PRIORITIES)})")
    return str(value)


def _priorities(values: Iterable[Any]) -> list[str]:
    return [_priority(v) for v in values]


def _per_priority(raw: Mapping[str, Any], name: str) -> dict[str, float]:
    out = {}
    for priority in PRIORITIES:
        if priority not in raw:
            raise ValueError(f"{name} needs a value for {priority}")
        value = float(raw[priority])
        if value <= 0:
            raise ValueError(f"{name}.{priority} must be positive")
        out[priority] = value
    return out


# ------------------------------------------------------------------------ what rules read


@dataclass(frozen=True, slots=True)
class LogEvent:
    seq: int
    type: str
    entity_id: str
    city: str | None
    exercise: bool
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    id: int
    city: str
    kind: str
    title: str
    lat: float
    lon: float
    severity: str
    exercise: bool = False


@dataclass(frozen=True, slots=True)
class OpenLine:
    """A line of a live request that still wants units."""

    item_id: int
    request_id: int
    city: str
    priority: str
    capability: str
    accepts: tuple[str, ...]
    quantity: int
    accepted: int
    created_at: datetime
    incident: IncidentFacts
    exercise: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.accepted)


@dataclass(frozen=True, slots=True)
class ActiveDeployment:
    id: int
    donor_city: str
    requesting_city: str
    status: str  # mobilising or en_route: the ones with a next status to wait for
    since: datetime
    callsign: str
    capability: str
    readiness_hours: float
    eta_hours: float
    request_id: int
    incident: IncidentFacts
    exercise: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """The state the rules may read, loaded by the caller for the event at hand."""

    base_url: str
    incident: IncidentFacts | None = None
    units: tuple[Unit, ...] = ()
    catalogue: Mapping[str, Capability] = field(default_factory=dict)
    reserves: Mapping[tuple[str, str], int] = field(default_factory=dict)
    route_factors: Mapping[str, float] = field(default_factory=dict)
    open_lines: tuple[OpenLine, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedAlert:
    rule: str
    group_key: str
    officer_id: int
    city: str | None
    scope: str
    level: int
    priority: str
    facts: Mapping[str, Any]
    exercise: bool


# -------------------------------------------------------------------------- who is reached


def reachable(
    roster: Sequence[Officer],
    city: str | None,
    priority: str,
    now: datetime,
    rules: RuleSet,
    *,
    above: int = 0,
) -> tuple[int, list[Officer]]:
    """The first escalation level of `city` (None: the network) above `above` with somebody
    to reach: on duty, or off duty when the priority wakes people. (0, []) when none."""
    by_level: dict[int, list[Officer]] = defaultdict(list)
    for officer in roster:
        if officer.active and officer.city == city and officer.escalation_level > above:
            by_level[officer.escalation_level].append(officer)
    for level in sorted(by_level):
        found = [
            o
            for o in sorted(by_level[level], key=lambda o: o.id)
            if o.channels and (on_duty(o, now) or rules.reaches_off_duty(priority))
        ]
        if found:
            return level, found
    return 0, []


def escalation_tier(
    roster: Sequence[Officer],
    *,
    city: str | None,
    scope: str,
    level: int,
    priority: str,
    now: datetime,
    rules: RuleSet,
) -> tuple[str, int, list[Officer]]:
    """Who is next after (scope, level) went unanswered: the city's next level, then the
    network coordinators level by level. ("", 0, []) when nobody is left."""
    if scope == CITY:
        next_level, officers = reachable(roster, city, priority, now, rules, above=level)
        if officers:
            return CITY, next_level, officers
        level = 0
    next_level, officers = reachable(roster, None, priority, now, rules, above=level)
    if officers:
        return NETWORK, next_level, officers
    return "", 0, []


def ack_deadline(sent_at: datetime, priority: str, rules: RuleSet) -> datetime:
    return sent_at + timedelta(minutes=rules.ack_minutes[priority])


# --------------------------------------------------------------------------- event rules


def plan_alerts(
    event: LogEvent,
    roster: Sequence[Officer],
    context: Context,
    now: datetime,
    book: RuleBook,
) -> list[PlannedAlert]:
    """The alerts one committed event calls for."""
    if event.type == "request.created":
        return _request_created(event, roster, context, now, book)
    if event.type in ("offer.created", "offer.accepted"):
        return _offer(event, roster, context, now, book)
    if event.type == "resource.status_changed":
        return _out_of_service(event, roster, context, now, book)
    return []


def _addressed(
    rule: str,
    group_key: str,
    roster: Sequence[Officer],
    city: str | None,
    priority: str,
    facts: Mapping[str, Any],
    exercise: bool,
    now: datetime,
    rules: RuleSet,
) -> list[PlannedAlert]:
    level, officers = reachable(roster, city, priority, now, rules)
    return [
        PlannedAlert(
            rule=rule,
            group_key=group_key,
            officer_id=o.id,
            city=city,
            scope=o.scope,
            level=level,
            priority=priority,
            facts=facts,
            exercise=exercise,
        )
        for o in officers
    ]


def _where(incident: IncidentFacts | None) -> dict[str, Any]:
    if incident is None:
        return {}
    return {
        "incident": {
            "id": incident.id,
            "kind": incident.kind,
            "title": incident.title,
            "severity": incident.severity,
        },
        "where": {"city": incident.city, "lat": incident.lat, "lon": incident.lon},
    }


def _request_link(base_url: str, request_id: Any) -> str:
    return f"{base_url.rstrip('/')}/board#request-{request_id}"


def _request_created(
    event: LogEvent, roster: Sequence[Officer], context: Context, now: datetime, book: RuleBook
) -> list[PlannedAlert]:
    request = event.payload
    incident = context.incident
    if incident is None:
        return []
    requesting = str(request["city"])
    priority = str(request["priority"])
    # Donor cities with a matching available unit; each city's own max ETA decides.
    offers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in request.get("items", []):
        line = Line(
            id=int(item["id"]),
            capability=str(item["capability"]),
            quantity=int(item["quantity"]),
            substitutes=tuple(item.get("substitutes") or ()),
        )
        ranked = rank_candidates(
            line,
            incident=Point(incident.lat, incident.lon),
            requesting_city=requesting,
            exercise=bool(request.get("exercise", False)),
            units=context.units,
            catalogue=context.catalogue,
            reserves=context.reserves,
            substitution_rules={},
            route_factors=context.route_factors,
        )
        for c in ranked:
            if c.eta_hours <= book.for_city(c.city).max_eta_hours:
                offers[c.city].append(
                    {
                        "item_id": line.id,
                        "wanted": line.capability,
                        "quantity": line.quantity,
                        "callsign": c.callsign,
                        "capability": c.capability,
                        "eta_hours": round(c.eta_hours, 2),
                        "distance_km": round(c.distance_km, 1),
                    }
                )
    out: list[PlannedAlert] = []
    for city in sorted(offers):
        rules = book.for_city(city)
        if not rules.request_created:
            continue
        units = offers[city]
        facts = {
            "title": f"{requesting} asks for help: you hold {len(units)} matching unit(s)",
            "what": _wanted(request),
            "how_many": sum(int(i["quantity"]) for i in request.get("items", [])),
            "how_soon": f"soonest ETA {min(u['eta_hours'] for u in units):.1f} h",
            "requesting_city": requesting,
            "request_id": request["id"],
            "priority": priority,
            "your_units": units[:10],
            "link": _request_link(context.base_url, request["id"]),
            **_where(incident),
        }
        out += _addressed(
            "request_created",
            f"request:{request['id']}:city:{city}",
            roster,
            city,
            priority,
            facts,
            event.exercise,
            now,
            rules,
        )
    return out


def _wanted(request: Mapping[str, Any]) -> str:
    return ", ".join(f"{i['quantity']} x {i['capability']}" for i in request.get("items", []))


def _offer(
    event: LogEvent, roster: Sequence[Officer], context: Context, now: datetime, book: RuleBook
) -> list[PlannedAlert]:
    offer = event.payload
    request = offer.get("request", {})
    priority = str(request.get("priority", "normal"))
    accepted = event.type == "offer.accepted"
    city = str(offer["donor_city"] if accepted else offer["requesting_city"])
    rules = book.for_city(city)
    if not (rules.offer_accepted if accepted else rules.offer_created):
        return []
    item: Mapping[str, Any] = next(
        (i for i in request.get("items", []) if i.get("id") == offer.get("request_item_id")), {}
    )
    if accepted:
        title = (
            f"{offer['requesting_city']} accepted your offer: mobilise unit {offer['resource_id']}"
        )
    else:
        title = f"{offer['donor_city']} offers unit {offer['resource_id']} for your request"
    facts = {
        "title": title,
        "what": f"{item.get('capability', '?')} (unit {offer['resource_id']})",
        "how_many": 1,
        "how_soon": f"ETA {float(offer['eta_hours']):.1f} h, {float(offer['distance_km']):.0f} km",
        "requesting_city": offer["requesting_city"],
        "donor_city": offer["donor_city"],
        "offer_id": offer["id"],
        "request_id": request.get("id"),
        "priority": priority,
        "link": _request_link(context.base_url, request.get("id")),
        **_where(context.incident),
    }
    kind = "accepted" if accepted else "created"
    return _addressed(
        f"offer_{kind}",
        f"offer:{offer['id']}:{kind}",
        roster,
        city,
        priority,
        facts,
        event.exercise,
        now,
        rules,
    )


def _out_of_service(
    event: LogEvent, roster: Sequence[Officer], context: Context, now: datetime, book: RuleBook
) -> list[PlannedAlert]:
    unit = event.payload
    if unit.get("status") != "out_of_service":
        return []
    exercise = bool(unit.get("exercise", False))
    # Active incidents this unit mattered to: its own city's, and those whose open lines it
    # could have filled.
    affected: dict[str, list[OpenLine]] = defaultdict(list)
    for line in context.open_lines:
        if line.exercise != exercise or line.remaining == 0:
            continue
        if line.city == unit["city"] or unit["capability"] in line.accepts:
            affected[line.city].append(line)
    out: list[PlannedAlert] = []
    for city in sorted(affected):
        rules = book.for_city(city)
        if not rules.unit_out_of_service:
            continue
        lines = affected[city]
        incident = lines[0].incident
        facts = {
            "title": f"unit {unit['callsign']} of {unit['city']} went out of service "
            f"during the {incident.kind} in {city}",
            "what": f"{unit['capability']} {unit['callsign']} ({unit['city']})",
            "how_many": sum(line.remaining for line in lines),
            "how_soon": "now",
            "resource_id": unit["id"],
            "request_id": lines[0].request_id,
            "open_lines": [line.item_id for line in lines],
            "priority": rules.out_of_service_priority,
            "link": _request_link(context.base_url, lines[0].request_id),
            **_where(incident),
        }
        out += _addressed(
            "unit_out_of_service",
            f"unit:{unit['id']}:out_of_service:{event.seq}:{city}",
            roster,
            city,
            rules.out_of_service_priority,
            facts,
            exercise,
            now,
            rules,
        )
    return out


# ---------------------------------------------------------------------------- timed rules


def plan_timed_alerts(
    lines: Iterable[OpenLine],
    deployments: Iterable[ActiveDeployment],
    roster: Sequence[Officer],
    now: datetime,
    book: RuleBook,
    base_url: str,
) -> list[PlannedAlert]:
    """Alerts that time alone calls for. Group keys make them once-only for the caller."""
    out: list[PlannedAlert] = []
    for line in lines:
        rules = book.for_city(line.city)
        due = line.created_at + timedelta(minutes=rules.unfilled_minutes[line.priority])
        if not rules.line_unfilled or line.remaining == 0 or now < due:
            continue
        waited = int((now - line.created_at).total_seconds() // 60)
        facts = {
            "title": f"{line.city}: {line.remaining} x {line.capability} still unfilled "
            f"after {waited} min",
            "what": f"{line.remaining} of {line.quantity} x {line.capability}",
            "how_many": line.remaining,
            "how_soon": f"waiting {waited} min ({line.priority})",
            "requesting_city": line.city,
            "request_id": line.request_id,
            "item_id": line.item_id,
            "priority": line.priority,
            "link": _request_link(base_url, line.request_id),
            **_where(line.incident),
        }
        level, officers = reachable(roster, None, line.priority, now, rules)
        out += [
            PlannedAlert(
                "line_unfilled",
                f"line:{line.item_id}:unfilled",
                o.id,
                None,
                NETWORK,
                level,
                line.priority,
                facts,
                line.exercise,
            )
            for o in officers
        ]
    for d in deployments:
        expected = overdue_at(d, book.for_city(d.requesting_city))
        if expected is None or now < expected:
            continue
        late = int((now - expected).total_seconds() // 60)
        following = "en_route" if d.status == "mobilising" else "on_scene"
        for city in (d.requesting_city, d.donor_city):
            rules = book.for_city(city)
            if not rules.deployment_overdue:
                continue
            facts = {
                "title": f"deployment {d.id} ({d.callsign}) is {late} min late for {following}",
                "what": f"{d.capability} {d.callsign} from {d.donor_city} to {d.requesting_city}",
                "how_many": 1,
                "how_soon": f"{following} expected {expected.isoformat(timespec='minutes')}",
                "deployment_id": d.id,
                "request_id": d.request_id,
                "status": d.status,
                "priority": rules.overdue_priority,
                "link": _request_link(base_url, d.request_id),
                **_where(d.incident),
            }
            out += _addressed(
                "deployment_overdue",
                f"deployment:{d.id}:overdue:{d.status}:{city}",
                roster,
                city,
                rules.overdue_priority,
                facts,
                d.exercise,
                now,
                rules,
            )
    return out


def overdue_at(d: ActiveDeployment, rules: RuleSet) -> datetime | None:
    """When the next status is late: readiness for leaving, the travel part of the ETA for
    arriving, each plus a grace."""
    grace = timedelta(minutes=rules.overdue_grace_minutes)
    if d.status == "mobilising":
        return d.since + timedelta(hours=d.readiness_hours) + grace
    if d.status == "en_route":
        return d.since + timedelta(hours=max(0.0, d.eta_hours - d.readiness_hours)) + grace
    return None


# ----------------------------------------------------------------------- alert lifecycle


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    EXPIRED = "expired"
    FAILED = "failed"  # every channel gave up; escalates at once


A = AlertStatus
ALERT_NEXT: Final[Mapping[AlertStatus, frozenset[AlertStatus]]] = {
    A.PENDING: frozenset({A.SENT, A.ACKNOWLEDGED, A.FAILED}),
    A.SENT: frozenset({A.ACKNOWLEDGED, A.ESCALATED, A.EXPIRED}),
    A.FAILED: frozenset({A.SENT, A.ACKNOWLEDGED, A.ESCALATED, A.EXPIRED}),
    # Late acknowledgement still counts: it stops anything further up the chain.
    A.ESCALATED: frozenset({A.ACKNOWLEDGED}),
    A.EXPIRED: frozenset({A.ACKNOWLEDGED}),
    A.ACKNOWLEDGED: frozenset(),
}
OPEN_ALERT: Final = frozenset({A.PENDING, A.SENT, A.FAILED})
