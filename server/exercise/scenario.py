"""Scenario files: what a replay creates and when. Validated with errors naming path and reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from server.domain.model import IncidentKind, Priority, Severity

Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_-]*$")
]
Ident = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Text = Annotated[str, StringConstraints(max_length=4000)]
Hours = Annotated[float, Field(ge=0, le=24 * 30)]


class Entry(BaseModel):
    # Unknown keys are ignored on purpose: scenario files carry notes and sources for people
    # (docs/scenario-format.md), and consumers read only what they need.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Incident(Entry):
    id: Ident
    kind: IncidentKind
    city: Slug
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    started_at: AwareDatetime
    severity: Severity = Severity.HIGH
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    time_precision: Text | None = None
    location_note: Text | None = None
    note: Text | None = None


class Resource(Entry):
    city: Slug
    capability: Code
    quantity: Annotated[int, Field(ge=1, le=5000)]
    readiness_hours: Hours | None = None
    estimated: bool = False
    basis: Text | None = None


class Item(Entry):
    capability: Code
    quantity: Annotated[int, Field(ge=1, le=1000)]
    substitutes: Annotated[list[Code], Field(max_length=20)] | None = None


class Request(Entry):
    id: Ident
    at: AwareDatetime
    city: Slug
    incident: Ident
    priority: Priority = Priority.NORMAL
    items: Annotated[list[Item], Field(min_length=1, max_length=50)]
    estimated: bool = False
    basis: Text | None = None


class HistoricalOffer(Entry):
    at: AwareDatetime
    from_city: Slug
    to_request: Ident
    capability: Code
    quantity: Annotated[int, Field(ge=1, le=1000)]
    status: Literal["deployed", "declined", "offered", "announced"]
    confirmed: bool = False
    quantity_estimated: bool = False
    persons: int | None = None
    vehicles: int | None = None
    site: Text | None = None
    note: Text | None = None
    source: Text | None = None


class Scenario(Entry):
    name: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    description: Text = ""
    sources: list[str] = []
    cities: Annotated[list[Slug], Field(min_length=1)]
    incidents: Annotated[list[Incident], Field(min_length=1)]
    resources: list[Resource] = []
    requests: Annotated[list[Request], Field(min_length=1)]
    historical_offers: list[HistoricalOffer] = []
    # How long a unit works on scene before the requesting city releases it (scenario hours).
    on_scene_hours: Annotated[float, Field(gt=0, le=24 * 90)] = 72.0

    @property
    def start(self) -> datetime:
        """Time zero of the replay: the earliest incident or request."""
        return min([i.started_at for i in self.incidents] + [r.at for r in self.requests])

    def hours_after_start(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds() / 3600

    def incident(self, incident_id: str) -> Incident:
        return next(i for i in self.incidents if i.id == incident_id)

    def request(self, request_id: str) -> Request:
        return next(r for r in self.requests if r.id == request_id)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class ScenarioError(Exception):
    """A scenario file that cannot be replayed; `problems` name each path and reason."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid scenario ({len(problems)} problem(s)):\n{lines}")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        problem = Problem("", f"cannot read the file: {error.strerror}")
        raise ScenarioError(source, [problem]) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        problem = Problem("", f"not valid JSON ({where}): {error.msg}")
        raise ScenarioError(source, [problem]) from error
    return parse_scenario(data, source=source)


def parse_scenario(data: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed JSON: field types first, then references between entries."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        problems = [Problem(_path(e["loc"]), _reason(e)) for e in error.errors()]
        raise ScenarioError(source, problems) from None
    problems = check_references(scenario)
    if problems:
        raise ScenarioError(source, problems)
    return scenario


def check_references(scenario: Scenario) -> list[Problem]:
    """Ids unique, every reference resolves, every city listed, requests after their incident."""
    problems: list[Problem] = []
    cities = set(scenario.cities)
    for name, ids in (
        ("incidents", [i.id for i in scenario.incidents]),
        ("requests", [r.id for r in scenario.requests]),
    ):
        for ident, count in Counter(ids).items():
            if count > 1:
                index = ids.index(ident, ids.index(ident) + 1)
                problems.append(Problem(f"{name}[{index}].id", f"duplicate id {ident!r}"))
    for ident, count in Counter(scenario.cities).items():
        if count > 1:
            problems.append(Problem("cities", f"{ident!r} is listed {count} times"))

    def city(path: str, slug: str) -> None:
        if slug not in cities:
            problems.append(Problem(path, f"city {slug!r} is not in the scenario's `cities` list"))

    incidents = {i.id: i for i in scenario.incidents}
    for n, incident in enumerate(scenario.incidents):
        city(f"incidents[{n}].city", incident.city)
    for n, resource in enumerate(scenario.resources):
        city(f"resources[{n}].city", resource.city)
    for n, request in enumerate(scenario.requests):
        city(f"requests[{n}].city", request.city)
        target = incidents.get(request.incident)
        if target is None:
            known = ", ".join(sorted(incidents))
            problems.append(
                Problem(
                    f"requests[{n}].incident",
                    f"unknown incident {request.incident!r} (known: {known})",
                )
            )
        elif request.at < target.started_at:
            problems.append(
                Problem(
                    f"requests[{n}].at",
                    f"{request.at.isoformat()} is before its incident started "
                    f"({target.started_at.isoformat()})",
                )
            )
        lines = [i.capability for i in request.items]
        for capability, count in Counter(lines).items():
            if count > 1:
                reason = f"capability {capability} appears {count} times"
                problems.append(Problem(f"requests[{n}].items", reason))
    requests = {r.id for r in scenario.requests}
    for n, offer in enumerate(scenario.historical_offers):
        city(f"historical_offers[{n}].from_city", offer.from_city)
        if offer.to_request not in requests:
            problems.append(
                Problem(
                    f"historical_offers[{n}].to_request",
                    f"unknown request {offer.to_request!r}",
                )
            )
    return problems


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: Any) -> str:
    reason = str(error["msg"])
    if error["type"] not in ("missing",) and "input" in error:
        shown = repr(error["input"])
        if len(shown) <= 60:
            reason += f" (got {shown})"
    return reason
