"""Alert use cases: plan from the event log, deliver once per channel, acknowledge, escalate.

Each function is one transaction's work. Those that lead to side effects (sending, scheduling
an escalation) return what to enqueue; the caller enqueues only after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.cap import CapAlert, cap_document
from alerts.channels import Outgoing
from alerts.messages import ack_link, ack_link_valid, render, webhook_body
from alerts.rules import (
    ALERT_NEXT,
    OPEN_ALERT,
    ActiveDeployment,
    AlertStatus,
    Context,
    IncidentFacts,
    LogEvent,
    Officer,
    OpenLine,
    PlannedAlert,
    RuleBook,
    ack_deadline,
    escalation_tier,
    plan_alerts,
    plan_timed_alerts,
)
from server.db.alert_tables import AlertCursorRow, AlertRow, DeliveryRow, DutyOfficerRow
from server.db.tables import (
    DeploymentRow,
    EventRow,
    IncidentRow,
    OfferRow,
    RequestItemRow,
    RequestRow,
    ResourceRow,
)
from server.db.unit_of_work import Tx
from server.domain.errors import Forbidden, NotFound
from server.domain.model import Actor, Role
from server.domain.status import DeploymentStatus, check_transition
from server.services import catalogue
from server.services.duty import roster
from server.services.events import last_seq
from server.services.requests import lendable_units
from server.services.views import iso

CURSOR = "planner"
SILENT_TYPES = ("alert.", "duty_officer.")  # the planner's own output is never input


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """What the alert use cases need from the settings (built by a composition root)."""

    book: RuleBook
    base_url: str
    secret: str
    route_factors: Mapping[str, float] = field(default_factory=dict)
    lease_seconds: float = 60.0
    ack_link_hours: float = 72.0
    sender: str = "alerts@b40.local"
    radius_km: float = 10.0


@dataclass(frozen=True, slots=True)
class Send:
    alert_id: int
    channel: str


@dataclass(frozen=True, slots=True)
class Escalate:
    alert_id: int
    at: datetime


class DeliveryBusy(Exception):
    """Another attempt holds the delivery's lease: try again later (never send twice)."""


def alert_view(row: AlertRow, officer: DutyOfficerRow | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "group_key": row.group_key,
        "rule": row.rule,
        "officer_id": row.officer_id,
        "officer": officer.name if officer is not None else None,
        "city": row.city,
        "scope": row.scope,
        "level": row.level,
        "priority": row.priority,
        "status": row.status,
        "facts": row.facts,
        "exercise": row.exercise,
        "source_seq": row.source_seq,
        "parent_id": row.parent_id,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "ack_due_at": iso(row.ack_due_at),
        "acknowledged_at": iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "closed_at": iso(row.closed_at),
    }


def _move(tx: Tx, alert: AlertRow, new: AlertStatus, **extra: Any) -> None:
    """The one place an alert's status changes; every change is an event."""
    check_transition("alert", ALERT_NEXT, AlertStatus(alert.status), new)
    alert.status = new.value
    if new is not AlertStatus.SENT:
        alert.closed_at = alert.closed_at or tx.now
    tx.session.flush()
    _record(tx, f"alert.{new.value}", alert, **extra)


def _record(tx: Tx, type: str, alert: AlertRow, **extra: Any) -> None:
    officer = tx.session.get(DutyOfficerRow, alert.officer_id)
    tx.record(
        type,
        "alert",
        alert.id,
        city=alert.city or alert.facts.get("requesting_city"),
        payload={**alert_view(alert, officer), **extra},
        exercise=alert.exercise,
    )


# ------------------------------------------------------------------------------- planning


def plan_from_log(tx: Tx, config: AlertConfig, *, batch: int = 500) -> list[Send]:
    """Read committed events after the cursor, write the alerts they call for, advance the
    cursor: all in this one transaction, so a crash replays the batch and the unique
    (group_key, officer_id) index keeps the replay from doubling anything."""
    cursor = tx.session.get(AlertCursorRow, CURSOR, with_for_update=True)
    if cursor is None:
        cursor = AlertCursorRow(name=CURSOR, seq=0, updated_at=tx.now)
        tx.session.add(cursor)
    rows = list(
        tx.session.scalars(
            select(EventRow).where(EventRow.seq > cursor.seq).order_by(EventRow.seq).limit(batch)
        )
    )
    if not rows:
        return []
    people = roster(tx.session)
    sends: list[Send] = []
    for row in rows:
        if row.type.startswith(SILENT_TYPES):
            continue
        event = LogEvent(row.seq, row.type, row.entity_id, row.city, row.exercise, row.payload)
        context = _context(tx.session, event, config)
        planned = plan_alerts(event, people, context, tx.now, config.book)
        sends += _insert(tx, planned, people, source_seq=row.seq)
    cursor.seq = rows[-1].seq
    cursor.updated_at = tx.now
    return sends


def plan_timed(tx: Tx, config: AlertConfig) -> list[Send]:
    """Lines unfilled too long, deployments late on their next status."""
    people = roster(tx.session)
    if not people:
        return []
    planned = plan_timed_alerts(
        _open_lines(tx.session),
        _moving_deployments(tx.session),
        people,
        tx.now,
        config.book,
        config.base_url,
    )
    return _insert(tx, planned, people, source_seq=None)


def _insert(
    tx: Tx,
    planned: Sequence[PlannedAlert],
    people: Sequence[Officer],
    *,
    source_seq: int | None,
    parent_id: int | None = None,
) -> list[Send]:
    by_id = {o.id: o for o in people}
    sends: list[Send] = []
    for p in planned:
        exists = tx.session.scalar(
            select(AlertRow.id).where(
                AlertRow.group_key == p.group_key, AlertRow.officer_id == p.officer_id
            )
        )
        if exists is not None:
            continue
        row = AlertRow(
            group_key=p.group_key,
            rule=p.rule,
            officer_id=p.officer_id,
            city=p.city,
            scope=p.scope,
            level=p.level,
            priority=p.priority,
            status=AlertStatus.PENDING.value,
            facts=dict(p.facts),
            exercise=p.exercise,
            source_seq=source_seq,
            parent_id=parent_id,
            created_at=tx.now,
        )
        tx.session.add(row)
        tx.session.flush()
        _record(tx, "alert.created", row)
        sends += [Send(row.id, channel) for channel in by_id[p.officer_id].channels]
    return sends


def _incident(session: Session, incident_id: Any) -> IncidentFacts | None:
    row = session.get(IncidentRow, int(incident_id)) if incident_id is not None else None
    return _incident_facts(row) if row is not None else None


def _incident_facts(row: IncidentRow) -> IncidentFacts:
    return IncidentFacts(
        row.id, row.city, row.kind, row.title, row.lat, row.lon, row.severity, row.exercise
    )


def _context(session: Session, event: LogEvent, config: AlertConfig) -> Context:
    """The state one event's rules read: loaded only for the event types that need it."""
    base = Context(base_url=config.base_url, route_factors=config.route_factors)
    payload = event.payload
    if event.type == "request.created":
        # Only units that could fill one of the lines: ranking reads nothing else.
        wanted = {
            code
            for item in payload.get("items", [])
            for code in (item["capability"], *(item.get("substitutes") or ()))
        }
        units = tuple(
            lendable_units(
                session, exercise=event.exercise, outside_city=payload["city"], capabilities=wanted
            )
        )
        return Context(
            base_url=config.base_url,
            incident=_incident(session, payload.get("incident_id")),
            units=units,
            catalogue=catalogue.capabilities(session),
            reserves=catalogue.reserves(session),
            route_factors=config.route_factors,
        )
    if event.type in ("offer.created", "offer.accepted"):
        request = payload.get("request") or {}
        return Context(
            base_url=config.base_url,
            incident=_incident(session, request.get("incident_id")),
            route_factors=config.route_factors,
        )
    if event.type == "resource.status_changed" and payload.get("status") == "out_of_service":
        return Context(
            base_url=config.base_url,
            route_factors=config.route_factors,
            open_lines=tuple(_open_lines(session)),
        )
    return base


def _open_lines(session: Session) -> list[OpenLine]:
    query = (
        select(RequestItemRow, RequestRow, IncidentRow)
        .join(RequestRow, RequestItemRow.request_id == RequestRow.id)
        .join(IncidentRow, RequestRow.incident_id == IncidentRow.id)
        .where(RequestRow.cancelled_at.is_(None), RequestItemRow.accepted < RequestItemRow.quantity)
    )
    return [
        OpenLine(
            item_id=item.id,
            request_id=request.id,
            city=request.city,
            priority=request.priority,
            capability=item.capability,
            accepts=(item.capability, *(item.substitutes or ())),
            quantity=item.quantity,
            accepted=item.accepted,
            created_at=request.created_at,
            incident=_incident_facts(incident),
            exercise=request.exercise,
        )
        for item, request, incident in session.execute(query)
    ]


def _moving_deployments(session: Session) -> list[ActiveDeployment]:
    waiting = (DeploymentStatus.MOBILISING.value, DeploymentStatus.EN_ROUTE.value)
    query = (
        select(DeploymentRow, OfferRow, ResourceRow, RequestRow, IncidentRow)
        .join(OfferRow, DeploymentRow.offer_id == OfferRow.id)
        .join(ResourceRow, DeploymentRow.resource_id == ResourceRow.id)
        .join(RequestItemRow, DeploymentRow.request_item_id == RequestItemRow.id)
        .join(RequestRow, RequestItemRow.request_id == RequestRow.id)
        .join(IncidentRow, RequestRow.incident_id == IncidentRow.id)
        .where(DeploymentRow.status.in_(waiting))
    )
    return [
        ActiveDeployment(
            id=d.id,
            donor_city=d.donor_city,
            requesting_city=d.requesting_city,
            status=d.status,
            since=d.updated_at,
            callsign=unit.callsign,
            capability=unit.capability,
            readiness_hours=unit.readiness_hours,
            eta_hours=offer.eta_hours,
            request_id=request.id,
            incident=_incident_facts(incident),
            exercise=request.exercise,
        )
        for d, offer, unit, request, incident in session.execute(query)
    ]


# ------------------------------------------------------------------------------- delivery


def claim_delivery(tx: Tx, alert_id: int, channel: str, config: AlertConfig) -> Outgoing | None:
    """Take the lease on (alert, channel) and render the message; None when there is nothing
    to send (already sent, acknowledged meanwhile, channel gone). The lease outlives the job
    timeout, so a second attempt starts only when the first is surely dead."""
    alert = tx.session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    officer = tx.session.get(DutyOfficerRow, alert.officer_id)
    address = (
        {"email": officer.email, "sms": officer.phone, "webhook": officer.webhook_url}.get(channel)
        if officer is not None
        else None
    )
    if officer is None or not address:
        return None
    delivery = _delivery(tx.session, alert_id, channel)
    if delivery is not None and delivery.status in ("sent", "failed"):
        return None
    if alert.status == AlertStatus.ACKNOWLEDGED.value:
        return None  # answered already; escalated or expired alerts still reach their person
    lease = tx.now + timedelta(seconds=config.lease_seconds)
    if delivery is None:
        delivery = DeliveryRow(
            alert_id=alert_id,
            channel=channel,
            address=address,
            status="sending",
            attempts=1,
            lease_until=lease,
            created_at=tx.now,
        )
        tx.session.add(delivery)
    else:
        if delivery.lease_until is not None and delivery.lease_until > tx.now:
            raise DeliveryBusy(f"alert {alert_id} via {channel} is being sent by another attempt")
        delivery.attempts += 1
        delivery.lease_until = lease
    tx.session.flush()
    link = ack_link(
        config.base_url,
        config.secret,
        alert.id,
        tx.now + timedelta(hours=config.ack_link_hours),
    )
    message = render(alert.id, alert.facts, alert.priority, alert.exercise, officer.language, link)
    return Outgoing(
        alert_id=alert.id,
        channel=channel,
        address=address,
        idempotency_key=f"alert-{alert.id}-{channel}",
        subject=message.subject,
        text=message.text,
        sms=message.sms,
        body=webhook_body(alert_view(alert, officer), link),
    )


def _delivery(session: Session, alert_id: int, channel: str) -> DeliveryRow | None:
    return session.scalars(
        select(DeliveryRow)
        .where(DeliveryRow.alert_id == alert_id, DeliveryRow.channel == channel)
        .with_for_update()
    ).one_or_none()


def record_sent(
    tx: Tx, alert_id: int, channel: str, receipt: str, config: AlertConfig
) -> list[Escalate]:
    """The sink accepted: the delivery is done; the first channel to succeed makes the alert
    `sent` and starts its acknowledgement clock."""
    delivery = _delivery(tx.session, alert_id, channel)
    alert = tx.session.get(AlertRow, alert_id, with_for_update=True)
    if delivery is None or alert is None:
        raise NotFound(f"no delivery of alert {alert_id} via {channel}")
    delivery.status = "sent"
    delivery.sent_at = tx.now
    delivery.lease_until = None
    delivery.last_error = None
    if alert.status not in (AlertStatus.PENDING.value, AlertStatus.FAILED.value):
        return []
    alert.sent_at = tx.now
    alert.ack_due_at = ack_deadline(tx.now, alert.priority, config.book.for_city(alert.city))
    _move(tx, alert, AlertStatus.SENT, channel=channel, receipt=receipt)
    alert.closed_at = None
    return [Escalate(alert.id, alert.ack_due_at)]


def record_attempt_failed(tx: Tx, alert_id: int, channel: str, error: str) -> None:
    """A failed attempt that will be retried: free the lease at once for the retry."""
    delivery = _delivery(tx.session, alert_id, channel)
    if delivery is not None and delivery.status == "sending":
        delivery.lease_until = None  # free for the retry, which RQ now holds as `scheduled`
        delivery.last_error = error[:2000]


def record_failed(tx: Tx, alert_id: int, channel: str, error: str) -> list[Escalate]:
    """The channel gave up after its retries: an `alert.failed` event for the board; when no
    channel got through, the alert escalates now instead of waiting for an ack that cannot
    come."""
    delivery = _delivery(tx.session, alert_id, channel)
    alert = tx.session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        return []
    if delivery is not None:
        if delivery.status == "sent":
            return []
        delivery.status = "failed"
        delivery.lease_until = None
        delivery.last_error = error[:2000]
    tx.session.flush()
    outcome = {
        d.channel: d.status
        for d in tx.session.scalars(select(DeliveryRow).where(DeliveryRow.alert_id == alert_id))
    }
    channels = _channels(tx.session.get(DutyOfficerRow, alert.officer_id))
    all_failed = all(outcome.get(c) == "failed" for c in channels)
    if alert.status == AlertStatus.PENDING.value and all_failed:
        _move(tx, alert, AlertStatus.FAILED, channel=channel, error=error[:500])
        return [Escalate(alert.id, tx.now)]
    _record(tx, "alert.failed", alert, channel=channel, error=error[:500])
    return []


def _channels(officer: DutyOfficerRow | None) -> list[str]:
    if officer is None:
        return []
    found = {"email": officer.email, "sms": officer.phone, "webhook": officer.webhook_url}
    return [k for k, v in found.items() if v]


def redeliveries(session: Session, now: datetime, *, older_than: timedelta) -> list[Send]:
    """Deliveries that should have happened and did not (the job was lost: Redis flushed, a
    worker killed mid-send and its lease run out): send them again. Safe, since delivery
    checks its row before sending."""
    cutoff = now - older_than
    alerts = session.scalars(
        select(AlertRow).where(
            AlertRow.status != AlertStatus.ACKNOWLEDGED.value,
            AlertRow.created_at <= cutoff,
        )
    ).all()
    out: list[Send] = []
    for alert in alerts:
        done = {
            d.channel: d
            for d in session.scalars(select(DeliveryRow).where(DeliveryRow.alert_id == alert.id))
        }
        for channel in _channels(session.get(DutyOfficerRow, alert.officer_id)):
            delivery = done.get(channel)
            # No lease: between retries, RQ holds the job; an expired lease: the attempt died.
            if delivery is None or (
                delivery.status == "sending"
                and delivery.lease_until is not None
                and delivery.lease_until < cutoff
            ):
                out.append(Send(alert.id, channel))
    return out


# -------------------------------------------------------------------- ack and escalation


def acknowledge(tx: Tx, alert_id: int, *, by: str | None = None) -> dict[str, Any]:
    """By API (an actor) or a signed link (`by` names it). Idempotent. Stops the escalation of
    the whole group (the same situation for the same city)."""
    alert = tx.session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    officer = tx.session.get(DutyOfficerRow, alert.officer_id)
    if tx.actor is not None:
        _require_acknowledger(tx.actor, alert, officer)
        by = f"{tx.actor.name} (user {tx.actor.user_id})"
    if alert.status == AlertStatus.ACKNOWLEDGED.value:
        return alert_view(alert, officer)
    alert.acknowledged_at = tx.now
    alert.acknowledged_by = by
    _move(tx, alert, AlertStatus.ACKNOWLEDGED)
    for other in tx.session.scalars(
        select(AlertRow).where(
            AlertRow.group_key == alert.group_key,
            AlertRow.id != alert.id,
            AlertRow.status.in_([s.value for s in OPEN_ALERT]),
        )
    ):
        other.closed_at = tx.now  # answered by a colleague: no escalation from here
    return alert_view(alert, officer)


def acknowledge_signed(
    tx: Tx, alert_id: int, expires: int, signature: str, config: AlertConfig
) -> dict[str, Any]:
    if not ack_link_valid(config.secret, alert_id, expires, signature, tx.now):
        raise Forbidden("this acknowledgement link is invalid or has expired", field="s")
    alert = tx.session.get(AlertRow, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    officer = tx.session.get(DutyOfficerRow, alert.officer_id)
    return acknowledge(tx, alert_id, by=f"signed link of {officer.name if officer else '?'}")


def _require_acknowledger(actor: Actor, alert: AlertRow, officer: DutyOfficerRow | None) -> None:
    if actor.is_network_wide:
        return
    if officer is not None and officer.user_id == actor.user_id:
        return
    if (
        actor.role in (Role.DUTY_OFFICER, Role.CITY_OPERATOR)
        and alert.city is not None
        and actor.city == alert.city
    ):
        return
    raise Forbidden("only the alerted city's duty officers and operators, or a coordinator")


def escalate(tx: Tx, alert_id: int, config: AlertConfig) -> list[Send]:
    """Its acknowledgement time ran out (or every channel failed): the alert and its open
    colleagues at the same level escalate, and the next level is alerted. No-op when the
    group was acknowledged, when it is not due yet, or when it was already escalated."""
    alert = tx.session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    status = AlertStatus(alert.status)
    if status not in (AlertStatus.SENT, AlertStatus.FAILED) or alert.closed_at is not None:
        return []
    if status is AlertStatus.SENT and (alert.ack_due_at is None or tx.now < alert.ack_due_at):
        return []
    group = list(
        tx.session.scalars(
            select(AlertRow).where(AlertRow.group_key == alert.group_key).with_for_update()
        )
    )
    if any(a.status == AlertStatus.ACKNOWLEDGED.value for a in group):
        return []
    rules = config.book.for_city(alert.city or alert.facts.get("requesting_city"))
    people = roster(tx.session)
    scope, level, officers = escalation_tier(
        people,
        city=alert.city,
        scope=alert.scope,
        level=alert.level,
        priority=alert.priority,
        now=tx.now,
        rules=rules,
    )
    final = AlertStatus.ESCALATED if officers else AlertStatus.EXPIRED
    peers = [
        a
        for a in group
        if a.scope == alert.scope
        and a.level == alert.level
        and a.closed_at is None
        and AlertStatus(a.status) in (AlertStatus.SENT, AlertStatus.FAILED)
    ]
    for peer in peers:
        _move(tx, peer, final, to_scope=scope or None, to_level=level or None)
    planned = [
        PlannedAlert(
            rule=alert.rule,
            group_key=alert.group_key,
            officer_id=o.id,
            city=o.city,
            scope=scope,
            level=level,
            priority=alert.priority,
            facts={**alert.facts, "escalated_from": {"scope": alert.scope, "level": alert.level}},
            exercise=alert.exercise,
        )
        for o in officers
    ]
    return _insert(tx, planned, people, source_seq=alert.source_seq, parent_id=alert.id)


def escalations_due(session: Session, now: datetime) -> list[int]:
    """Alerts whose acknowledgement time is up (the scheduled job is the fast path; this
    sweep catches a lost one) and alerts whose every channel failed."""
    return list(
        session.scalars(
            select(AlertRow.id).where(
                AlertRow.closed_at.is_(None),
                (
                    (AlertRow.status == AlertStatus.SENT.value) & (AlertRow.ack_due_at <= now)
                    | (AlertRow.status == AlertStatus.FAILED.value)
                ),
            )
        )
    )


# --------------------------------------------------------------------------------- reading


def list_alerts(
    session: Session,
    *,
    actor: Actor,
    city: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(AlertRow, DutyOfficerRow).join(
        DutyOfficerRow, AlertRow.officer_id == DutyOfficerRow.id
    )
    if actor.role in (Role.DUTY_OFFICER, Role.CITY_OPERATOR) and not actor.is_network_wide:
        city = actor.city  # a city's people see their city's alerts
    if city is not None:
        query = query.where(AlertRow.city == city)
    if status is not None:
        query = query.where(AlertRow.status == status)
    rows = list(session.execute(query.order_by(AlertRow.id.desc())))
    return [alert_view(a, o) for a, o in rows[offset : offset + limit]], len(rows)


def alert_detail(session: Session, alert_id: int) -> dict[str, Any]:
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    view = alert_view(alert, session.get(DutyOfficerRow, alert.officer_id))
    view["deliveries"] = [
        {
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "sent_at": iso(d.sent_at),
            "last_error": d.last_error,
        }
        for d in session.scalars(select(DeliveryRow).where(DeliveryRow.alert_id == alert_id))
    ]
    return view


def alert_cap(session: Session, alert_id: int, config: AlertConfig) -> bytes:
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="id")
    officer = session.get(DutyOfficerRow, alert.officer_id)
    return cap_document(
        CapAlert(
            alert_id=alert.id,
            rule=alert.rule,
            priority=alert.priority,
            exercise=alert.exercise,
            created_at=alert.created_at,
            facts=alert.facts,
            sender=config.sender,
            sender_name="B40 Mutual Aid",
            language=officer.language if officer is not None else "en",
            radius_km=config.radius_km,
        )
    )


def planner_lag(session: Session) -> int:
    """Events committed but not yet read by the planner (for /readyz-style checks)."""
    cursor = session.get(AlertCursorRow, CURSOR)
    return last_seq(session) - (cursor.seq if cursor is not None else 0)
