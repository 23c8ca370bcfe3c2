"""Reference data as the domain sees it: cities, capabilities, substitution rules, reserves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.tables import CapabilityRow, CityRow, ReserveRow, SubstitutionRow
from server.domain.errors import InvalidInput, NotFound
from server.domain.model import Capability
from server.services.views import capability_view, city_view


def capabilities(session: Session) -> dict[str, Capability]:
    return {
        r.code: Capability(
            code=r.code,
            name=r.name,
            domain=r.domain,
            unit=r.unit,
            crew=r.crew,
            deploy_speed_kmh=r.deploy_speed_kmh,
            readiness_hours=r.readiness_hours,
            travel=r.travel,
        )
        for r in session.scalars(select(CapabilityRow))
    }


def rules_from(pairs: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """Capability code -> its substitution rules (the codes that may fill a line asked for it),
    from (code, substitute) rows of capabilities outer-joined to their rules."""
    rules: dict[str, list[str]] = {}
    for code, substitute in pairs:
        subs = rules.setdefault(code, [])
        if substitute is not None:
            subs.append(substitute)
    return rules


def substitution_rules(session: Session) -> dict[str, list[str]]:
    """capability -> the capabilities that may fill a line asked for it."""
    rules: dict[str, list[str]] = defaultdict(list)
    for row in session.scalars(select(SubstitutionRow).order_by(SubstitutionRow.substitute)):
        rules[row.for_capability].append(row.substitute)
    return dict(rules)


def reserves(session: Session) -> dict[tuple[str, str], int]:
    return {(r.city, r.capability): r.minimum for r in session.scalars(select(ReserveRow))}


def get_city(session: Session, slug: str, *, field: str = "city") -> CityRow:
    row = session.get(CityRow, slug)
    if row is None:
        raise InvalidInput(f"unknown city {slug!r}", field=field)
    return row


def get_capability(session: Session, code: str, *, field: str = "capability") -> CapabilityRow:
    row = session.get(CapabilityRow, code)
    if row is None:
        raise InvalidInput(f"unknown capability {code!r}", field=field)
    return row


def list_cities(session: Session) -> list[dict[str, Any]]:
    return [city_view(r) for r in session.scalars(select(CityRow).order_by(CityRow.name))]


def city_detail(session: Session, slug: str) -> dict[str, Any]:
    row = session.get(CityRow, slug)
    if row is None:
        raise NotFound(f"no city {slug!r}", field="slug")
    return city_view(row)


def list_capabilities(session: Session) -> list[dict[str, Any]]:
    rules = substitution_rules(session)
    return [
        capability_view(r, rules.get(r.code, ()))
        for r in session.scalars(select(CapabilityRow).order_by(CapabilityRow.code))
    ]


def list_substitutions(session: Session) -> list[dict[str, Any]]:
    return [
        {"substitute": r.substitute, "for": r.for_capability, "reason": r.reason}
        for r in session.scalars(select(SubstitutionRow))
    ]
