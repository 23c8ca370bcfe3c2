"""The end-of-run report of a replay: per request what was asked, offered and accepted, and
how the replayed policy compares with what really happened (`historical_offers`).

All times are scenario hours (the replay's clock, independent of --speed); distances and ETAs
are the server's own figures from the offers it made.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from server.exercise.scenario import Scenario


@dataclass(slots=True)
class OfferRecord:
    """One offer the replay made (or applied from a plan), as the API answered it."""

    offer_id: int
    resource_id: int
    donor_city: str
    capability: str
    distance_km: float
    eta_hours: float
    offered_hours: float
    accepted: bool = False
    deployment_id: int | None = None


@dataclass(slots=True)
class LineRecord:
    item_id: int
    capability: str
    quantity: int
    offers: list[OfferRecord] = field(default_factory=list)

    @property
    def accepted(self) -> list[OfferRecord]:
        return [o for o in self.offers if o.accepted]

    @property
    def remaining(self) -> int:
        return self.quantity - len(self.accepted)

    @property
    def first_offer_hours(self) -> float | None:
        return min((o.offered_hours for o in self.offers), default=None)

    @property
    def filled_hours(self) -> float | None:
        """When the last unit the line needed was accepted."""
        accepted = sorted(o.offered_hours for o in self.accepted)
        return accepted[self.quantity - 1] if len(accepted) >= self.quantity else None


@dataclass(slots=True)
class RequestRecord:
    key: str  # the scenario's id
    api_id: int
    incident_api_id: int
    city: str
    priority: str
    at_hours: float
    lines: dict[int, LineRecord] = field(default_factory=dict)
    # Best (eta_hours, distance_km) per (capability, donor city) among the candidates the
    # server listed when the request was posted: the yardstick for historical offers.
    yardstick: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return any(line.remaining > 0 for line in self.lines.values())


@dataclass(slots=True)
class LineSummary:
    item_id: int
    capability: str
    asked: int
    offered: int
    accepted: int
    hours_to_first_offer: float | None
    hours_to_fill: float | None
    donors: dict[str, int]


@dataclass(slots=True)
class RequestSummary:
    request: str
    request_id: int
    incident_id: int
    city: str
    priority: str
    asked: int
    offered: int
    accepted: int
    hours_to_first_offer: float | None
    hours_to_fill: float | None
    distance_km: float
    eta_hours: float
    lines: list[LineSummary]


@dataclass(slots=True)
class HistoricalComparison:
    request: str
    capability: str
    historical: list[dict[str, Any]]  # {from_city, quantity, status, hours_after_request, ...}
    historical_deployed: int
    replay_accepted: int
    replay_donors: dict[str, int]
    replay_hours_to_first_offer: float | None
    replay_mean_eta_hours: float | None
    historical_mean_eta_hours: float | None  # the server's ETA for the historical donor city


@dataclass(slots=True)
class ReplayReport:
    scenario: str
    run_id: str
    policy: str
    speed: float
    requests: list[RequestSummary]
    historical: list[HistoricalComparison]
    plans: list[dict[str, Any]]
    incidents: dict[str, int]  # scenario incident id -> API id (first one opened)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def totals(self) -> dict[str, float]:
        return {
            "asked": sum(r.asked for r in self.requests),
            "offered": sum(r.offered for r in self.requests),
            "accepted": sum(r.accepted for r in self.requests),
            "distance_km": round(sum(r.distance_km for r in self.requests), 3),
            "eta_hours": round(sum(r.eta_hours for r in self.requests), 4),
        }

    def render(self, console: Console) -> None:
        console.print(
            f"[bold]{self.scenario}[/bold]: run {self.run_id}, policy {self.policy}, "
            f"speed x{self.speed:g} (all data flagged exercise)"
        )
        table = Table(title="Requests (times in scenario hours after the request)")
        for column in ("request", "city", "priority", "asked", "offered", "accepted"):
            table.add_column(column, justify="right" if column in _NUMERIC else "left")
        for column in ("1st offer h", "fill h", "distance km", "ETA h (sum)"):
            table.add_column(column, justify="right")
        for r in self.requests:
            table.add_row(
                r.request,
                r.city,
                r.priority,
                str(r.asked),
                str(r.offered),
                str(r.accepted),
                _hours(r.hours_to_first_offer),
                _hours(r.hours_to_fill),
                f"{r.distance_km:,.0f}",
                f"{r.eta_hours:.1f}",
            )
        t = self.totals
        table.add_row(
            "total",
            "",
            "",
            str(t["asked"]),
            str(t["offered"]),
            str(t["accepted"]),
            "",
            "",
            f"{t['distance_km']:,.0f}",
            f"{t['eta_hours']:.1f}",
            style="bold",
        )
        console.print(table)
        if self.historical:
            history = Table(title="Replay vs what really happened (historical_offers)")
            for column in ("request", "capability", "historically", "replay", "ETA h hist/replay"):
                history.add_column(column)
            for h in self.historical:
                then = ", ".join(
                    f"{o['from_city']} x{o['quantity']} {o['status']} "
                    f"(+{o['hours_after_request']:.0f} h)"
                    for o in h.historical
                )
                now = ", ".join(f"{c} x{n}" for c, n in sorted(h.replay_donors.items())) or "none"
                if h.replay_hours_to_first_offer is not None:
                    now += f" (+{h.replay_hours_to_first_offer:.0f} h)"
                history.add_row(
                    h.request,
                    h.capability,
                    then,
                    now,
                    f"{_hours(h.historical_mean_eta_hours)} / {_hours(h.replay_mean_eta_hours)}",
                )
            console.print(history)
        flags = [f for p in self.plans for f in p.get("flags", [])]
        if flags:
            console.print(f"Lender-cover flags raised by the plans: {len(flags)}")
            for flag in flags:
                console.print(
                    f"  - {flag.get('city')} {flag.get('capability')}: {flag.get('reason')}"
                )


_NUMERIC = {"asked", "offered", "accepted"}


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summarise(
    scenario: Scenario,
    records: list[RequestRecord],
    *,
    run_id: str,
    policy: str,
    speed: float,
    plans: list[dict[str, Any]],
    incidents: dict[str, int],
) -> ReplayReport:
    """Build the report from what the replay did (the test checks it against the API)."""
    summaries = [_summarise_request(r) for r in records]
    return ReplayReport(
        scenario=scenario.name,
        run_id=run_id,
        policy=policy,
        speed=speed,
        requests=summaries,
        historical=compare_with_history(scenario, records),
        plans=plans,
        incidents=incidents,
    )


def _summarise_request(record: RequestRecord) -> RequestSummary:
    lines = []
    for line in record.lines.values():
        first, filled = line.first_offer_hours, line.filled_hours
        donors: dict[str, int] = defaultdict(int)
        for offer in line.accepted:
            donors[offer.donor_city] += 1
        lines.append(
            LineSummary(
                item_id=line.item_id,
                capability=line.capability,
                asked=line.quantity,
                offered=len(line.offers),
                accepted=len(line.accepted),
                hours_to_first_offer=_since(first, record.at_hours),
                hours_to_fill=_since(filled, record.at_hours),
                donors=dict(donors),
            )
        )
    firsts = [x.hours_to_first_offer for x in lines if x.hours_to_first_offer is not None]
    fills = [x.hours_to_fill for x in lines]
    accepted = [o for line in record.lines.values() for o in line.accepted]
    return RequestSummary(
        request=record.key,
        request_id=record.api_id,
        incident_id=record.incident_api_id,
        city=record.city,
        priority=record.priority,
        asked=sum(x.asked for x in lines),
        offered=sum(x.offered for x in lines),
        accepted=sum(x.accepted for x in lines),
        hours_to_first_offer=min(firsts, default=None),
        hours_to_fill=None if any(f is None for f in fills) else max(f or 0.0 for f in fills),
        distance_km=round(sum(o.distance_km for o in accepted), 3),
        eta_hours=round(sum(o.eta_hours for o in accepted), 4),
        lines=lines,
    )


def _since(moment: float | None, start: float) -> float | None:
    return None if moment is None else round(moment - start, 4)


def compare_with_history(
    scenario: Scenario, records: list[RequestRecord]
) -> list[HistoricalComparison]:
    """Per (request, capability) named in `historical_offers`: then versus this replay."""
    by_key = {r.key: r for r in records}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    etas: dict[tuple[str, str], list[float]] = defaultdict(list)
    for offer in scenario.historical_offers:
        record = by_key.get(offer.to_request)
        if record is None:
            continue
        key = (offer.to_request, offer.capability)
        yard = record.yardstick.get((offer.capability, offer.from_city))
        groups[key].append(
            {
                "from_city": offer.from_city,
                "quantity": offer.quantity,
                "status": offer.status,
                "confirmed": offer.confirmed,
                "hours_after_request": round(
                    scenario.hours_after_start(offer.at) - record.at_hours, 2
                ),
                "eta_hours": None if yard is None else yard[0],
                "distance_km": None if yard is None else yard[1],
            }
        )
        if yard is not None and offer.status == "deployed":
            etas[key].extend([yard[0]] * offer.quantity)
    out = []
    for (request_key, capability), offers in groups.items():
        record = by_key[request_key]
        accepted = [
            o
            for line in record.lines.values()
            for o in line.accepted
            if o.capability == capability or line.capability == capability
        ]
        donors: dict[str, int] = defaultdict(int)
        for o in accepted:
            donors[o.donor_city] += 1
        firsts = [o.offered_hours for o in accepted]
        history_etas = etas.get((request_key, capability), [])
        out.append(
            HistoricalComparison(
                request=request_key,
                capability=capability,
                historical=offers,
                historical_deployed=sum(o["quantity"] for o in offers if o["status"] == "deployed"),
                replay_accepted=len(accepted),
                replay_donors=dict(donors),
                replay_hours_to_first_offer=_since(min(firsts), record.at_hours)
                if firsts
                else None,
                replay_mean_eta_hours=round(sum(o.eta_hours for o in accepted) / len(accepted), 4)
                if accepted
                else None,
                historical_mean_eta_hours=round(sum(history_etas) / len(history_etas), 4)
                if history_etas
                else None,
            )
        )
    return out
