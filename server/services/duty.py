"""Duty rosters: who is alerted for a city (or for the network), how, when, and in what order."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.rules import COUNTRY_ZONES, NETWORK_ZONE, Officer, parse_windows
from server.db.alert_tables import DutyOfficerRow
from server.db.tables import UserRow
from server.db.unit_of_work import Tx
from server.domain.errors import Forbidden, InvalidInput, NotFound
from server.domain.model import Role
from server.domain.policy import require_city, require_role
from server.services.catalogue import get_city
from server.services.views import iso

LANGUAGES = frozenset({"en", "sr", "hr", "bs", "me", "sq", "mk", "bg", "el", "ro", "tr", "sl"})


def officer_view(row: DutyOfficerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "city": row.city,
        "name": row.name,
        "email": row.email,
        "phone": row.phone,
        "webhook_url": row.webhook_url,
        "escalation_level": row.escalation_level,
        "language": row.language,
        "timezone": row.timezone,
        "on_duty": list(row.on_duty or []),
        "user_id": row.user_id,
        "active": row.active,
        "created_at": iso(row.created_at),
    }


def to_officer(row: DutyOfficerRow) -> Officer:
    return Officer(
        id=row.id,
        city=row.city,
        name=row.name,
        escalation_level=row.escalation_level,
        email=row.email,
        phone=row.phone,
        webhook_url=row.webhook_url,
        language=row.language,
        timezone=row.timezone,
        windows=parse_windows(row.on_duty or []),
        active=row.active,
    )


def create_officer(
    tx: Tx,
    *,
    city: str | None,
    name: str,
    email: str | None = None,
    phone: str | None = None,
    webhook_url: str | None = None,
    escalation_level: int = 1,
    language: str = "en",
    timezone: str | None = None,
    on_duty: list[dict[str, Any]] | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Admins (and coordinators) for any city or the network; a city operator for its own."""
    assert tx.actor is not None
    if city is None:
        require_role(tx.actor, {Role.ADMIN, Role.COORDINATOR}, "adding a network duty officer")
        zone = NETWORK_ZONE
    else:
        require_city(tx.actor, city, "adding a duty officer")
        zone = COUNTRY_ZONES.get(get_city(tx.session, city).country, NETWORK_ZONE)
    if not (email or phone or webhook_url):
        raise InvalidInput("give at least one of email, phone, webhook_url", field="email")
    if not 1 <= escalation_level <= 9:
        raise InvalidInput("escalation_level is 1 (first) to 9", field="escalation_level")
    if language not in LANGUAGES:
        raise InvalidInput(f"language is one of {', '.join(sorted(LANGUAGES))}", field="language")
    timezone = timezone or zone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidInput(f"unknown time zone {timezone!r}", field="timezone") from error
    try:
        parse_windows(on_duty or [])
    except (KeyError, ValueError, TypeError) as error:
        raise InvalidInput(f"on_duty: {error}", field="on_duty") from error
    if user_id is not None:
        user = tx.session.get(UserRow, user_id)
        if user is None:
            raise InvalidInput(f"no user {user_id}", field="user_id")
        if user.city is not None and user.city != city:
            raise InvalidInput("the user belongs to another city", field="user_id")
    row = DutyOfficerRow(
        city=city,
        name=name,
        email=email,
        phone=phone,
        webhook_url=webhook_url,
        escalation_level=escalation_level,
        language=language,
        timezone=timezone,
        on_duty=list(on_duty or []),
        user_id=user_id,
        active=True,
        created_at=tx.now,
    )
    tx.session.add(row)
    tx.session.flush()
    view = officer_view(row)
    tx.record("duty_officer.created", "duty_officer", row.id, city=city, payload=view)
    return view


def set_active(tx: Tx, officer_id: int, active: bool) -> dict[str, Any]:
    assert tx.actor is not None
    row = tx.session.get(DutyOfficerRow, officer_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no duty officer {officer_id}", field="id")
    if row.city is None:
        require_role(tx.actor, {Role.ADMIN, Role.COORDINATOR}, "changing a network duty officer")
    else:
        require_city(tx.actor, row.city, "changing a duty officer")
    row.active = active
    tx.session.flush()
    view = officer_view(row)
    tx.record("duty_officer.changed", "duty_officer", row.id, city=row.city, payload=view)
    return view


def list_officers(
    session: Session, *, city: str | None, network: bool, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    query = select(DutyOfficerRow)
    if network:
        query = query.where(DutyOfficerRow.city.is_(None))
    elif city is not None:
        query = query.where(DutyOfficerRow.city == city)
    rows = list(session.scalars(query.order_by(DutyOfficerRow.escalation_level, DutyOfficerRow.id)))
    return [officer_view(r) for r in rows[offset : offset + limit]], len(rows)


def roster(session: Session) -> tuple[Officer, ...]:
    rows = session.scalars(select(DutyOfficerRow).where(DutyOfficerRow.active.is_(True)))
    return tuple(to_officer(r) for r in rows)


def require_roster_reader(role: Role) -> None:
    if role is Role.OBSERVER:
        raise Forbidden("duty rosters hold contact details; observers may not read them")
