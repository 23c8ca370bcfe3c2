"""ORM rows. They stay in this layer: services convert them to domain values and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite's INTEGER PRIMARY KEY is its rowid; BigInteger there would lose autoincrement.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both back-ends (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JsonType}


class CityRow(Base):
    __tablename__ = "cities"
    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    country: Mapped[str] = mapped_column(String(2))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    population: Mapped[int | None] = mapped_column(Integer)
    member_source: Mapped[str] = mapped_column(String(32))


class CapabilityRow(Base):
    __tablename__ = "capabilities"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(200))
    crew: Mapped[int] = mapped_column(Integer)
    self_sufficiency_hours: Mapped[float] = mapped_column(Float)
    deploy_speed_kmh: Mapped[float] = mapped_column(Float)
    travel: Mapped[str] = mapped_column(String(8))
    readiness_hours: Mapped[float] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text)


class SubstitutionRow(Base):
    __tablename__ = "capability_substitutions"
    substitute: Mapped[str] = mapped_column(ForeignKey("capabilities.code"), primary_key=True)
    for_capability: Mapped[str] = mapped_column(ForeignKey("capabilities.code"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(ForeignKey("cities.slug"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ReserveRow(Base):
    __tablename__ = "reserves"
    city: Mapped[str] = mapped_column(ForeignKey("cities.slug"), primary_key=True)
    capability: Mapped[str] = mapped_column(ForeignKey("capabilities.code"), primary_key=True)
    minimum: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class ResourceRow(Base):
    __tablename__ = "resources"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(ForeignKey("cities.slug"), index=True)
    capability: Mapped[str] = mapped_column(ForeignKey("capabilities.code"), index=True)
    callsign: Mapped[str] = mapped_column(String(64), unique=True)
    home_lat: Mapped[float] = mapped_column(Float)
    home_lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    readiness_hours: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_since: Mapped[datetime]
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # Bumped by every committed change: plans and human edits compare it to detect staleness.
    version: Mapped[int] = mapped_column(Integer, default=1)


class IncidentRow(Base):
    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(ForeignKey("cities.slug"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class RequestRow(Base):
    __tablename__ = "aid_requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(ForeignKey("cities.slug"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None]


class RequestItemRow(Base):
    __tablename__ = "request_items"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("aid_requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    capability: Mapped[str] = mapped_column(ForeignKey("capabilities.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    substitutes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    needed_by: Mapped[datetime | None]
    # Counters kept in the same transaction as the offer/deployment change that moves them.
    offered: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    arrived: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
    returned: Mapped[int] = mapped_column(Integer, default=0)


class OfferRow(Base):
    __tablename__ = "offers"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    request_item_id: Mapped[int] = mapped_column(ForeignKey("request_items.id"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    donor_city: Mapped[str] = mapped_column(ForeignKey("cities.slug"))
    requesting_city: Mapped[str] = mapped_column(ForeignKey("cities.slug"))
    status: Mapped[str] = mapped_column(String(16))
    reserve_override: Mapped[bool] = mapped_column(Boolean, default=False)
    distance_km: Mapped[float] = mapped_column(Float)
    eta_hours: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        # The database itself refuses a second live offer of one unit, whatever the code does.
        Index(
            "uq_offers_one_pending_per_resource",
            "resource_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    request_item_id: Mapped[int] = mapped_column(ForeignKey("request_items.id"), index=True)
    donor_city: Mapped[str] = mapped_column(ForeignKey("cities.slug"))
    requesting_city: Mapped[str] = mapped_column(ForeignKey("cities.slug"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # One time stamp per status reached: {"mobilising": "...", "en_route": "...", ...}
    timeline: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (
        Index(
            "uq_deployments_one_active_per_resource",
            "resource_id",
            unique=True,
            postgresql_where=text("status <> 'returned'"),
            sqlite_where=text("status <> 'returned'"),
        ),
    )


class EventRow(Base):
    __tablename__ = "events"
    # Not an auto-increment: taken from event_counter inside the writing transaction, so
    # seq order is commit order and a rollback leaves no gap.
    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    city: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_id: Mapped[int | None] = mapped_column(Id)
    actor_name: Mapped[str | None] = mapped_column(String(200))
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime]
    # The audit chain (server/domain/audit.py, migration 0006): sha256 over the canonical event
    # and the previous event's hash. The table is append-only (triggers refuse UPDATE/DELETE).
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class EventCounterRow(Base):
    __tablename__ = "event_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Id)
    # The hash of event `seq`: the chain head, updated under the same row lock as seq.
    head_hash: Mapped[str] = mapped_column(String(64))


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)


class AllocationPlanRow(Base):
    """A network-wide allocation plan, with the unit versions and line counts it was built on."""

    __tablename__ = "allocation_plans"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The plan as returned by POST /allocations/plan.
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # {"units": {"<id>": [version, status]}, "lines": {"<id>": accepted}}: apply compares.
    basis: Mapped[dict[str, Any]] = mapped_column(JsonType)
    applied_at: Mapped[datetime | None]
    applied_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    applied_mode: Mapped[str | None] = mapped_column(String(16))
