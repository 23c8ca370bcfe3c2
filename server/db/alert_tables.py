"""ORM rows of the alerting side: duty rosters, alerts, their deliveries, the planner's cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.tables import Base, Id, JsonType


class DutyOfficerRow(Base):
    __tablename__ = "duty_officers"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # NULL: a network coordinator, reached when a city's own levels do not answer.
    city: Mapped[str | None] = mapped_column(ForeignKey("cities.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    escalation_level: Mapped[int] = mapped_column(Integer, default=1)
    language: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(64))
    # [{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}, ...]; empty: always on duty.
    on_duty: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    # The token holder who acknowledges by API as this officer (optional).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AlertRow(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # One situation for one city's chain of officers: acknowledging any alert of the group
    # stops its escalation; (group_key, officer_id) is unique, so replays never duplicate.
    group_key: Mapped[str] = mapped_column(String(200), index=True)
    rule: Mapped[str] = mapped_column(String(40))
    officer_id: Mapped[int] = mapped_column(ForeignKey("duty_officers.id"), index=True)
    city: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(8))  # "city" or "network"
    level: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    facts: Mapped[dict[str, Any]] = mapped_column(JsonType)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    source_seq: Mapped[int | None] = mapped_column(Id)
    parent_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    ack_due_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("group_key", "officer_id", name="uq_alerts_group_officer"),)


class DeliveryRow(Base):
    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(2000))
    # sending (leased to one attempt until lease_until) -> sent | failed
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_channel"),
        Index("ix_alert_deliveries_status", "status"),
    )


class AlertCursorRow(Base):
    """How far the alert planner has read the event log (one row, name 'planner')."""

    __tablename__ = "alert_cursor"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Id)
    updated_at: Mapped[datetime]
