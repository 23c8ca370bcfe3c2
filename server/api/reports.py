"""After-action reports: printable HTML (or the same data as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.api.deps import CurrentActor, Db
from server.api.schemas import Id
from server.services.reports import incident_report

router = APIRouter(tags=["reports"])
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: '45 s', '12 min', '3 h 05 min', '2 d 4 h'."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


TEMPLATES.filters["duration"] = duration


@router.get(
    "/incidents/{incident_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
def get_report(
    incident_id: Id,
    actor: CurrentActor,
    database: Db,
    format: Annotated[Literal["html", "json"], Query()] = "html",
) -> Any:
    """Printable after-action report: map of who came from where, timeline, fill per line,
    lender-cover flags. For the incident's cities, coordinators and observers."""
    now = database.clock()
    report = database.read(lambda s: incident_report(s, incident_id, actor, now))
    if format == "json":
        return JSONResponse(report)
    html = TEMPLATES.get_template("incident_report.html").render(report=report)
    return HTMLResponse(html)
