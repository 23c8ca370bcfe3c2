"""Duty rosters and alerts: list, acknowledge (by token or signed link), CAP 1.2 export."""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import AnyHttpUrl, Field, StringConstraints

from alerts.channels.targets import UnsafeTarget, check_webhook_target
from server.api.deps import AppSettings, CurrentActor, Db
from server.api.responses import Limit, Offset, page
from server.api.schemas import Id, Name, Slug, Strict
from server.domain.errors import DomainError, InvalidInput
from server.services import alerts, duty
from server.services.alerts import AlertConfig

router = APIRouter(tags=["alerts"])

Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]  # E.164
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
Zone = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DutyWindowIn(Strict):
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(default=[0, 1, 2, 3, 4, 5, 6])
    start: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d$")]
    end: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d$")]


class DutyOfficerIn(Strict):
    city: Slug | None = None
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    webhook_url: AnyHttpUrl | None = None
    escalation_level: Annotated[int, Field(ge=1, le=9)] = 1
    language: Language = "en"
    timezone: Zone | None = None
    on_duty: list[DutyWindowIn] = Field(default_factory=list, max_length=20)
    user_id: Id | None = None


async def get_alert_config(request: Request) -> AlertConfig:
    config: AlertConfig = request.app.state.alert_config
    return config


Config = Annotated[AlertConfig, Depends(get_alert_config)]


@router.post("/duty-officers", status_code=201)
def create_duty_officer(
    body: DutyOfficerIn, actor: CurrentActor, database: Db, settings: AppSettings
) -> dict[str, Any]:
    """A city of null adds a network coordinator (reached after the cities' own levels).

    A webhook URL must point to a public address (no loopback, private or metadata hosts)."""
    fields = body.model_dump(mode="json")
    if fields.get("webhook_url"):
        try:
            check_webhook_target(
                fields["webhook_url"],
                allow_private=settings.webhook_allow_private,
                require_resolution=False,
            )
        except UnsafeTarget as error:
            raise InvalidInput(str(error), field="webhook_url") from error
    return database.run(lambda tx: duty.create_officer(tx, **fields), actor=actor)


@router.get("/duty-officers")
def list_duty_officers(
    actor: CurrentActor,
    database: Db,
    city: Slug | None = None,
    network: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    duty.require_roster_reader(actor.role)
    items, total = database.read(
        lambda s: duty.list_officers(s, city=city, network=network, limit=limit, offset=offset)
    )
    return page(items, total, limit, offset)


@router.post("/duty-officers/{officer_id}/active")
def set_duty_officer_active(
    officer_id: Id, actor: CurrentActor, database: Db, active: bool = True
) -> dict[str, Any]:
    return database.run(lambda tx: duty.set_active(tx, officer_id, active), actor=actor)


@router.get("/alerts")
def list_alerts(
    actor: CurrentActor,
    database: Db,
    city: Slug | None = None,
    status: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = database.read(
        lambda s: alerts.list_alerts(
            s, actor=actor, city=city, status=status, limit=limit, offset=offset
        )
    )
    return page(items, total, limit, offset)


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.read(lambda s: alerts.alert_detail(s, alert_id))


@router.post("/alerts/{alert_id}/ack")
def acknowledge(alert_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: alerts.acknowledge(tx, alert_id), actor=actor)


SignedExpiry = Annotated[int, Query(alias="e", ge=0)]
Signature = Annotated[str, Query(alias="s", pattern=r"^[A-Za-z0-9_-]{22}$")]  # base64url


@router.get("/alerts/{alert_id}/ack-link", response_class=HTMLResponse)
def ack_link_page(alert_id: Id, e: SignedExpiry, s: Signature) -> HTMLResponse:
    """The link in a message opens a confirmation page; only its button (a POST) acknowledges,
    so mail scanners that follow links cannot acknowledge for a person."""
    action = f"/api/v1/alerts/{alert_id}/ack-link?e={e}&s={escape(s)}"
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>B40 alert</title>"
        f"<h1>B40 alert #{alert_id}</h1><form method=post action='{action}'>"
        "<button type=submit>Acknowledge</button></form>"
    )


@router.post("/alerts/{alert_id}/ack-link", response_class=HTMLResponse)
def ack_by_link(
    alert_id: Id, e: SignedExpiry, s: Signature, database: Db, config: Config
) -> HTMLResponse:
    try:
        view = database.run(lambda tx: alerts.acknowledge_signed(tx, alert_id, e, s, config))
    except DomainError as error:
        return HTMLResponse(f"<p>{escape(error.message)}</p>", status_code=403)
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><p>Alert #{alert_id} acknowledged "
        f"({escape(str(view['acknowledged_by']))}).</p>"
    )


@router.get(
    "/alerts/{alert_id}/cap",
    response_class=Response,
    responses={200: {"content": {"application/cap+xml": {}}}},
)
def alert_cap(alert_id: Id, actor: CurrentActor, database: Db, config: Config) -> Response:
    """The alert as an OASIS CAP 1.2 document."""
    body = database.read(lambda s: alerts.alert_cap(s, alert_id, config))
    return Response(body, media_type="application/cap+xml")
