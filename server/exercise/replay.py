"""The replay driver: plays a scenario's timeline against a running system, through the public
API only, acting as each city's operator. Everything it creates is flagged `exercise`.

Time: scenario hours since the scenario's start, compressed by `speed` (scenario seconds per
real second: 60 = one scenario hour per real minute). Actions happen in scenario order; each
waits until its real moment. Times in the report are scenario hours, whatever the speed.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import httpx

from server.exercise.report import (
    LineRecord,
    OfferRecord,
    ReplayReport,
    RequestRecord,
    summarise,
)
from server.exercise.scenario import Incident, Request, Scenario

Policy = Literal["plan", "nearest"]
POLICIES: tuple[Policy, ...] = ("plan", "nearest")
PLAN_PATH = "/api/v1/allocations/plan"
BULK_MAX = 500  # the API's largest bulk registration
PRIORITY_ORDER = {"critical": 0, "high": 1, "normal": 2}


class ReplayError(Exception):
    """The replay cannot go on; the message says why and what to do."""


class ApiRefused(ReplayError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> {status}: {body}")


class ApiClient:
    """httpx over the public API, with one bearer token per acting city ("admin" for the rest)."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.tokens: dict[str, str] = {"admin": admin_token}

    def call(
        self,
        who: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        try:
            response = self.http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as error:
            raise ReplayError(f"{method} {path}: the API does not answer ({error})") from error
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text[:500]
            raise ApiRefused(method, path, response.status_code, body)
        return response.json()

    def close(self) -> None:
        self.http.close()


@dataclass(order=True, slots=True)
class Action:
    hours: float
    order: int
    kind: str = field(compare=False)
    args: dict[str, Any] = field(compare=False, default_factory=dict)


Progress = Callable[[float, float, str], None]  # (scenario hours now, hours to go until, note)


class Replay:
    """One run of a scenario. `run()` returns the report; the data stays in the system."""

    def __init__(
        self,
        scenario: Scenario,
        client: ApiClient,
        *,
        speed: float = 60.0,
        policy: Policy = "plan",
        run_id: str | None = None,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        retire_units: bool = True,
    ) -> None:
        if speed <= 0:
            raise ReplayError("speed must be positive")
        if policy not in POLICIES:
            raise ReplayError(f"unknown policy {policy!r} (choose: {', '.join(POLICIES)})")
        self.scenario = scenario
        self.api = client
        self.speed = speed
        self.policy = policy
        self.run_id = run_id or uuid.uuid4().hex[:6]
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.retire_units = retire_units
        self.queue: list[Action] = []
        self.counter = itertools.count()
        self.users: dict[str, int] = {}
        self.units: dict[int, dict[str, Any]] = {}  # resource id -> view, this run's units only
        self.incidents: dict[tuple[str, str], int] = {}  # (scenario incident, city) -> API id
        self.requests: list[RequestRecord] = []
        self.lines: dict[int, LineRecord] = {}
        self.plans: list[dict[str, Any]] = []
        self.real_start = 0.0
        self.last_hours = 0.0

    # -- the run --------------------------------------------------------------------------

    def run(self) -> ReplayReport:
        self.preflight()
        try:
            self.create_operators()
            self.create_units()
            for incident in self.scenario.incidents:
                self.schedule(
                    self.scenario.hours_after_start(incident.started_at),
                    "incident",
                    incident=incident,
                )
            for request in self.scenario.requests:
                self.schedule(
                    self.scenario.hours_after_start(request.at), "request", request=request
                )
            self.real_start = self.clock()
            while self.queue:
                action = heapq.heappop(self.queue)
                self.wait_until(action.hours)
                self.perform(action)
        finally:
            self.tidy_up()
        return summarise(
            self.scenario,
            self.requests,
            run_id=self.run_id,
            policy=self.policy,
            speed=self.speed,
            plans=self.plans,
            incidents={
                key: api_id
                for (key, city), api_id in self.incidents.items()
                if city == self.scenario.incident(key).city
            },
        )

    def schedule(self, hours: float, kind: str, **args: Any) -> None:
        heapq.heappush(self.queue, Action(hours, next(self.counter), kind, args))
        self.last_hours = max(self.last_hours, hours)

    def wait_until(self, hours: float) -> None:
        delay = self.real_start + hours * 3600 / self.speed - self.clock()
        if delay > 0:
            self.sleep(delay)
        if self.progress is not None:
            self.progress(hours, self.last_hours, self.moment(hours))

    def moment(self, hours: float) -> str:
        start = self.scenario.start
        return (start + timedelta(hours=hours)).strftime("%d %b %Y %H:%M")

    def perform(self, action: Action) -> None:
        if action.kind == "incident":
            self.open_incident(action.args["incident"], action.args["incident"].city)
        elif action.kind == "request":
            self.post_request(action.args["request"], action.hours)
            self.schedule(action.hours, "dispatch")
        elif action.kind == "dispatch":
            # Several dispatches at one moment (units home together) need only one round.
            if not any(a.kind == "dispatch" and a.hours == action.hours for a in self.queue):
                self.dispatch(action.hours)
        elif action.kind == "move":
            self.api.call(
                action.args["who"],
                "POST",
                f"/api/v1/deployments/{action.args['deployment']}/status",
                json={"status": action.args["status"]},
            )
            if action.args["status"] == "returned":
                self.schedule(action.hours, "dispatch")

    # -- setup ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse early, before creating anything: wrong token, unknown cities or capabilities."""
        me = self.api.call("admin", "GET", "/api/v1/users/me")
        if me.get("role") != "admin":
            raise ReplayError(
                f"the token is a {me.get('role')}'s; a replay needs an admin token "
                "(it creates one operator per city)"
            )
        cities = {c["slug"] for c in self.api.call("admin", "GET", "/api/v1/cities")["items"]}
        capabilities = {
            c["code"] for c in self.api.call("admin", "GET", "/api/v1/capabilities")["items"]
        }
        problems = [
            f"cities[{n}]: {slug!r} is not a city this system knows"
            for n, slug in enumerate(self.scenario.cities)
            if slug not in cities
        ]
        wanted = [(f"resources[{n}]", r.capability) for n, r in enumerate(self.scenario.resources)]
        for n, request in enumerate(self.scenario.requests):
            for m, item in enumerate(request.items):
                wanted.append((f"requests[{n}].items[{m}]", item.capability))
                wanted.extend(
                    (f"requests[{n}].items[{m}].substitutes", s) for s in item.substitutes or ()
                )
        problems += [
            f"{path}.capability: {code!r} is not in this system's catalogue"
            for path, code in wanted
            if code not in capabilities
        ]
        if problems:
            raise ReplayError(
                "the scenario does not fit this system:\n  - " + "\n  - ".join(problems)
            )
        if self.policy == "plan":
            paths = self.api.http.get("/openapi.json").json().get("paths", {})
            if PLAN_PATH not in paths:
                raise ReplayError(
                    f"this server has no allocation plan ({PLAN_PATH}); "
                    "use --policy nearest, or update the server"
                )

    def create_operators(self) -> None:
        """One city_operator per city, so that each city acts under its own token."""
        for city in self.scenario.cities:
            body = self.api.call(
                "admin",
                "POST",
                "/api/v1/users",
                json={
                    "name": f"replay {self.run_id} {city} operator",
                    "role": "city_operator",
                    "city": city,
                },
            )
            self.api.tokens[city] = body["token"]
            self.users[city] = body["id"]

    def create_units(self) -> None:
        for resource in self.scenario.resources:
            # Callsigns are unique network-wide: the run id keeps repeated replays apart.
            prefix = f"X{self.run_id}-{resource.city[:12].upper()}-{resource.capability}"[:40]
            left = resource.quantity
            while left > 0:
                body: dict[str, Any] = {
                    "capability": resource.capability,
                    "quantity": min(left, BULK_MAX),
                    "callsign_prefix": prefix,
                    "exercise": True,
                }
                if resource.readiness_hours is not None:
                    body["readiness_hours"] = resource.readiness_hours
                made = self.api.call(resource.city, "POST", "/api/v1/resources/bulk", json=body)
                for unit in made["items"]:
                    self.units[unit["id"]] = unit
                left -= made["total"]

    def tidy_up(self) -> None:
        """Take this run's units out of service (a later run must not borrow them) and revoke
        the operators' tokens. Best effort: a failure here must not hide the run's outcome."""
        if self.retire_units and self.units:
            ids = list(self.units)

            def retire(unit_id: int) -> None:
                # A unit still deployed (an aborted run) is refused: leave it as it is.
                with contextlib.suppress(ReplayError):
                    self.api.call(
                        "admin",
                        "POST",
                        f"/api/v1/resources/{unit_id}/status",
                        json={"status": "out_of_service"},
                    )

            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(retire, ids))
        for user_id in self.users.values():
            with contextlib.suppress(ReplayError):
                self.api.call("admin", "POST", f"/api/v1/users/{user_id}/revoke")

    # -- incidents and requests -------------------------------------------------------------

    def open_incident(self, incident: Incident, city: str) -> int:
        key = (incident.id, city)
        if key in self.incidents:
            return self.incidents[key]
        title = incident.title or f"{incident.id}: {incident.location_note or incident.kind.value}"
        if city != incident.city:
            # The platform files a request under an incident of the requesting city; when a
            # national centre asks for a fire elsewhere, it coordinates its own copy of it.
            title = f"{incident.id} (coordinated from {city})"
        body = self.api.call(
            city,
            "POST",
            "/api/v1/incidents",
            json={
                "kind": incident.kind.value,
                "title": f"[exercise {self.run_id}] {title}"[:200],
                "lat": incident.lat,
                "lon": incident.lon,
                "severity": incident.severity.value,
                "exercise": True,
            },
        )
        self.incidents[key] = body["id"]
        return int(body["id"])

    def post_request(self, request: Request, hours: float) -> None:
        incident_id = self.open_incident(self.scenario.incident(request.incident), request.city)
        items = []
        for item in request.items:
            line: dict[str, Any] = {"capability": item.capability, "quantity": item.quantity}
            if item.substitutes is not None:
                line["substitutes"] = item.substitutes
            items.append(line)
        note = f"exercise {self.run_id}: scenario request {request.id}"
        if request.basis:
            note += f" ({request.basis})"
        body = self.api.call(
            request.city,
            "POST",
            "/api/v1/requests",
            json={
                "incident_id": incident_id,
                "priority": request.priority.value,
                "items": items,
                "note": note[:2000],
            },
        )
        record = RequestRecord(
            key=request.id,
            api_id=body["id"],
            incident_api_id=incident_id,
            city=request.city,
            priority=request.priority.value,
            at_hours=hours,
        )
        for made in body["items"]:
            line_record = LineRecord(made["id"], made["capability"], made["quantity"])
            record.lines[made["id"]] = line_record
            self.lines[made["id"]] = line_record
        self.requests.append(record)
        # What the server would have offered from each city at this moment: the yardstick
        # for the historical offers' ETAs.
        for ranked in self.candidates(record):
            for c in ranked["candidates"]:
                if c["resource_id"] in self.units:
                    key = (c["capability"], c["city"])
                    best = record.yardstick.get(key)
                    if best is None or c["eta_hours"] < best[0]:
                        record.yardstick[key] = (c["eta_hours"], c["distance_km"])

    def candidates(self, record: RequestRecord) -> list[dict[str, Any]]:
        body = self.api.call(
            record.city,
            "GET",
            f"/api/v1/requests/{record.api_id}/candidates",
            params={"limit": 1000},
        )
        items: list[dict[str, Any]] = body["items"]
        return items

    def open_requests(self) -> Iterator[RequestRecord]:
        ordered = sorted(self.requests, key=lambda r: (PRIORITY_ORDER[r.priority], r.at_hours))
        return (r for r in ordered if r.open)

    # -- dispatch -------------------------------------------------------------------------

    def dispatch(self, hours: float) -> None:
        if self.policy == "plan":
            self.dispatch_by_plan(hours)
        else:
            self.dispatch_nearest(hours)

    def dispatch_nearest(self, hours: float) -> None:
        """Each requesting city in turn (critical first) takes the soonest units on offer."""
        for record in self.open_requests():
            taken: set[int] = set()
            for item in self.candidates(record):
                line = record.lines[item["item_id"]]
                for candidate in item["candidates"]:
                    if line.remaining <= 0:
                        break
                    unit_id = candidate["resource_id"]
                    if unit_id not in self.units or unit_id in taken:
                        continue
                    taken.add(unit_id)
                    try:
                        offer = self.api.call(
                            candidate["city"],
                            "POST",
                            "/api/v1/offers",
                            json={"request_item_id": line.item_id, "resource_id": unit_id},
                        )
                    except ApiRefused as refused:
                        if refused.status in (409, 422):
                            continue  # the unit or its city's reserve changed meanwhile
                        raise
                    self.accept(record, line, offer, candidate["capability"], hours)

    def dispatch_by_plan(self, hours: float) -> None:
        """The coordinator plans the whole network at once; requesting cities accept."""
        open_ids = [r.api_id for r in self.open_requests()]
        if not open_ids:
            return
        for attempt in range(3):
            plan = self.api.call(
                "admin", "POST", PLAN_PATH, json={"request_ids": open_ids, "exercise": True}
            )
            if not plan.get("assignments"):
                self.note_plan(plan, hours, applied=0)
                return
            try:
                applied = self.api.call(
                    "admin",
                    "POST",
                    f"/api/v1/allocations/{plan['id']}/apply",
                    json={"mode": "offers"},
                )
            except ApiRefused as refused:
                if refused.status == 409 and attempt < 2:
                    continue  # stale plan: something moved since; plan again
                raise
            self.note_plan(plan, hours, applied=len(applied.get("offers", [])))
            by_item_unit = {
                (a["request_item_id"], a["resource_id"]): a for a in plan["assignments"]
            }
            for offer in applied.get("offers", []):
                line = self.lines.get(offer["request_item_id"])
                if line is None:
                    continue
                record = next(r for r in self.requests if line.item_id in r.lines)
                assignment = by_item_unit.get((offer["request_item_id"], offer["resource_id"]), {})
                capability = assignment.get("capability") or self.units.get(
                    offer["resource_id"], {}
                ).get("capability", line.capability)
                self.accept(record, line, {**assignment, **offer}, capability, hours)
            return

    def note_plan(self, plan: dict[str, Any], hours: float, *, applied: int) -> None:
        self.plans.append(
            {
                "id": plan.get("id"),
                "at_hours": round(hours, 4),
                "assignments": len(plan.get("assignments", [])),
                "unfilled": len(plan.get("unfilled", [])),
                "applied": applied,
                "objective": plan.get("objective"),
                "flags": plan.get("flags", []),
            }
        )

    def accept(
        self,
        record: RequestRecord,
        line: LineRecord,
        offer: dict[str, Any],
        capability: str,
        hours: float,
    ) -> None:
        """The requesting city's operator accepts; the deployment then runs its course."""
        made = OfferRecord(
            offer_id=offer["id"],
            resource_id=offer["resource_id"],
            donor_city=offer.get("donor_city") or offer.get("city") or "",
            capability=capability,
            distance_km=float(offer["distance_km"]),
            eta_hours=float(offer["eta_hours"]),
            offered_hours=hours,
        )
        line.offers.append(made)
        try:
            body = self.api.call(record.city, "POST", f"/api/v1/offers/{made.offer_id}/accept")
        except ApiRefused as refused:
            if refused.status != 409:
                raise
            return  # the line filled meanwhile; the offer stays as the API left it
        made.accepted = True
        made.deployment_id = body["deployment"]["id"]
        self.follow_deployment(record, made, hours)

    def follow_deployment(self, record: RequestRecord, offer: OfferRecord, hours: float) -> None:
        unit = self.units.get(offer.resource_id, {})
        readiness = min(float(unit.get("readiness_hours", 0.0)), offer.eta_hours)
        travel = offer.eta_hours - readiness
        arrive = hours + offer.eta_hours
        release = arrive + self.scenario.on_scene_hours
        for at, status, who in (
            (hours + readiness, "en_route", offer.donor_city),
            (arrive, "on_scene", record.city),
            (release, "released", record.city),
            (release + travel, "returned", offer.donor_city),
        ):
            who = who if who in self.api.tokens else "admin"  # a unit from outside this run
            self.schedule(at, "move", deployment=offer.deployment_id, status=status, who=who)


def run_replay(
    scenario: Scenario,
    *,
    api: str,
    token: str,
    speed: float = 60.0,
    policy: Policy = "plan",
    run_id: str | None = None,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ReplayReport:
    """Replay `scenario` against the system at `api` with an admin `token`."""
    client = ApiClient(api, token, transport=transport)
    try:
        return Replay(
            scenario, client, speed=speed, policy=policy, run_id=run_id, progress=progress
        ).run()
    finally:
        client.close()
