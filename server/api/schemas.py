"""Request and response bodies. Unknown fields are refused (no mass assignment)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from server.domain.model import IncidentKind, Priority, Role, Severity
from server.domain.status import DeploymentStatus, UnitStatus

Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_-]*$")
]
Callsign = Annotated[
    str, StringConstraints(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Hours = Annotated[float, Field(ge=0, le=24 * 30)]
Id = Annotated[int, Field(ge=1, le=2**53)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(Strict):
    name: Name
    role: Role
    city: Slug | None = None
    expires_at: AwareDatetime | None = None


class ResourceIn(Strict):
    city: Slug | None = None
    capability: Code
    callsign: Callsign
    lat: Lat | None = None
    lon: Lon | None = None
    readiness_hours: Hours | None = None
    exercise: bool = False


class ResourceBulkIn(Strict):
    city: Slug | None = None
    capability: Code
    quantity: Annotated[int, Field(ge=1, le=500)]
    callsign_prefix: Callsign
    lat: Lat | None = None
    lon: Lon | None = None
    readiness_hours: Hours | None = None
    exercise: bool = False


class StatusIn(Strict):
    status: UnitStatus


class ReserveIn(Strict):
    minimum: Annotated[int, Field(ge=0, le=10_000)]


class IncidentIn(Strict):
    city: Slug | None = None
    kind: IncidentKind
    title: Name
    lat: Lat
    lon: Lon
    severity: Severity
    exercise: bool = False


class LineIn(Strict):
    capability: Code
    quantity: Annotated[int, Field(ge=1, le=1000)]
    substitutes: Annotated[list[Code], Field(max_length=20)] | None = None
    needed_by: AwareDatetime | None = None


class RequestIn(Strict):
    city: Slug | None = None
    incident_id: Id
    priority: Priority = Priority.NORMAL
    items: Annotated[list[LineIn], Field(min_length=1, max_length=50)]
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class OfferIn(Strict):
    request_item_id: Id
    resource_id: Id
    override_reserve: bool = False


class DeploymentStatusIn(Strict):
    status: DeploymentStatus


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    after: int
    next_after: int
    last_seq: int


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    city: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    token: str
