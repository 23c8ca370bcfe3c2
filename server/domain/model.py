"""Plain data the core works on. Frozen: a change is a new value, made by a domain function."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from server.domain.status import DeploymentStatus, OfferStatus, UnitStatus


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    CITY_OPERATOR = "city_operator"
    DUTY_OFFICER = "duty_officer"
    OBSERVER = "observer"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"


class IncidentKind(StrEnum):
    WILDFIRE = "wildfire"
    EARTHQUAKE = "earthquake"
    FLOOD = "flood"
    INDUSTRIAL = "industrial"
    CBRN = "cbrn"
    OTHER = "other"


class Severity(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    EXTREME = "extreme"


class LineStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    UNABLE_TO_FILL = "unable_to_fill"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Capability:
    code: str
    name: str
    domain: str
    unit: str
    crew: int
    deploy_speed_kmh: float
    readiness_hours: float
    travel: str  # "air" or "road"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: the token's user. Authorisation reads the city from here, never a body."""

    user_id: int
    name: str
    role: Role
    city: str | None

    @property
    def is_network_wide(self) -> bool:
        return self.role in (Role.ADMIN, Role.COORDINATOR)


@dataclass(frozen=True, slots=True)
class Unit:
    id: int
    city: str
    capability: str
    callsign: str
    position: Point
    readiness_hours: float
    status: UnitStatus
    exercise: bool = False


@dataclass(frozen=True, slots=True)
class Offer:
    id: int
    request_item_id: int
    resource_id: int
    donor_city: str
    status: OfferStatus


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    offer_id: int
    resource_id: int
    request_item_id: int
    status: DeploymentStatus


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an aid request, with the counts that its status is derived from."""

    id: int
    capability: str
    quantity: int
    substitutes: tuple[str, ...] = ()
    needed_by: datetime | None = None
    offered: int = 0  # pending offers
    accepted: int = 0  # accepted offers (deployments made)
    arrived: int = 0  # deployments that reached the scene
    released: int = 0  # deployments released from the scene or recalled
    returned: int = 0  # deployments back home
    extra: dict[str, object] = field(default_factory=dict, compare=False)
