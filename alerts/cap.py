"""An alert as a CAP 1.2 document (OASIS Common Alerting Protocol), built, never parsed here.

Building with ElementTree is safe; anything that parses incoming XML uses defusedxml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"

CATEGORY: Final[Mapping[str, str]] = {
    "wildfire": "Fire",
    "earthquake": "Geo",
    "flood": "Met",  # CAP's "Met" covers flood
    "industrial": "Safety",
    "cbrn": "CBRNE",
    "other": "Other",
}
URGENCY: Final[Mapping[str, str]] = {
    "critical": "Immediate",
    "high": "Expected",
    "normal": "Future",
}
SEVERITY: Final[Mapping[str, str]] = {
    "extreme": "Extreme",
    "high": "Severe",
    "moderate": "Moderate",
    "low": "Minor",
}
# What the officer is asked to do, per rule (CAP responseType).
RESPONSE: Final[Mapping[str, str]] = {
    "request_created": "Prepare",
    "offer_created": "Assess",
    "offer_accepted": "Execute",
    "line_unfilled": "Assess",
    "deployment_overdue": "Monitor",
    "unit_out_of_service": "Assess",
}


@dataclass(frozen=True, slots=True)
class CapAlert:
    alert_id: int
    rule: str
    priority: str
    exercise: bool
    created_at: datetime
    facts: Mapping[str, Any]
    sender: str
    sender_name: str
    language: str = "en"
    radius_km: float = 10.0


def cap_time(value: datetime) -> str:
    """CAP wants an explicit numeric offset: '-00:00' style, never 'Z', no fractions."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def cap_document(alert: CapAlert) -> bytes:
    """The CAP 1.2 XML for one alert (UTF-8 with a declaration)."""
    ET.register_namespace("", NS)
    facts = alert.facts
    incident = facts.get("incident") or {}
    where = facts.get("where") or {}
    root = ET.Element(f"{{{NS}}}alert")
    _sub(root, "identifier", f"b40-alert-{alert.alert_id}")
    _sub(root, "sender", alert.sender)
    _sub(root, "sent", cap_time(alert.created_at))
    _sub(root, "status", "Exercise" if alert.exercise else "Actual")
    _sub(root, "msgType", "Alert")
    _sub(root, "scope", "Restricted")
    _sub(root, "restriction", "B40 Mutual Aid duty officers")
    if incident:
        _sub(root, "incidents", f"b40-incident-{incident['id']}")
    info = ET.SubElement(root, f"{{{NS}}}info")
    _sub(info, "language", alert.language)
    _sub(info, "category", CATEGORY.get(str(incident.get("kind", "other")), "Other"))
    _sub(info, "event", f"{incident.get('kind', 'mutual aid')} mutual-aid {alert.rule}")
    _sub(info, "responseType", RESPONSE.get(alert.rule, "Assess"))
    _sub(info, "urgency", URGENCY.get(alert.priority, "Unknown"))
    _sub(info, "severity", SEVERITY.get(str(incident.get("severity", "")), "Unknown"))
    _sub(info, "certainty", "Observed")
    _sub(info, "senderName", alert.sender_name)
    _sub(info, "headline", str(facts.get("title", ""))[:160])
    _sub(
        info,
        "description",
        f"What: {facts.get('what', '-')}. How many: {facts.get('how_many', '-')}. "
        f"How soon: {facts.get('how_soon', '-')}.",
    )
    if facts.get("link"):
        _sub(info, "web", str(facts["link"]))
    for name, value in (("b40:rule", alert.rule), ("b40:priority", alert.priority)):
        parameter = ET.SubElement(info, f"{{{NS}}}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    if where:
        area = ET.SubElement(info, f"{{{NS}}}area")
        _sub(area, "areaDesc", f"{incident.get('title') or where.get('city', '')}")
        _sub(area, "circle", f"{where['lat']:.5f},{where['lon']:.5f} {alert.radius_km:g}")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}")
    element.text = text
    return element
