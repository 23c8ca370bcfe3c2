"""The after-action report's two figures as plain SVG geometry: a map of who came from where
(country outlines drawn from the board's own GeoJSON, no tiles, no CDN) and a timeline."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

OUTLINES = Path(__file__).resolve().parents[1] / "board" / "static" / "region_50m.geojson"
MAP_WIDTH = 640.0
MIN_SPAN_DEG = 4.0  # a single-city incident still shows its neighbours
PAD_DEG = 1.0
TIMELINE_WIDTH = 720.0
LANE_HEIGHT = 34.0
LANE_LEFT = 90.0  # room for the lane labels
LANES = ("requests", "offers", "arrivals", "releases")


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lon: float


@lru_cache(maxsize=1)
def _rings() -> tuple[tuple[str, tuple[tuple[float, float], ...]], ...]:
    """(country, ring of (lon, lat)) for every outer ring in the region file."""
    data = json.loads(OUTLINES.read_text(encoding="utf-8"))
    out = []
    for feature in data["features"]:
        geometry = feature["geometry"]
        polygons = (
            geometry["coordinates"]
            if geometry["type"] == "MultiPolygon"
            else [geometry["coordinates"]]
        )
        for polygon in polygons:
            ring = tuple((float(x), float(y)) for x, y in polygon[0])
            out.append((str(feature["properties"].get("name", "")), ring))
    return tuple(out)


def map_figure(
    incident: Place, donors: Sequence[tuple[Place, int]], requester: Place | None
) -> dict[str, Any]:
    """Viewport, outlines and arrows: donors -> incident, arrow width by units sent."""
    points = [incident, *(p for p, _ in donors)] + ([requester] if requester else [])
    west = min(p.lon for p in points)
    east = max(p.lon for p in points)
    south = min(p.lat for p in points)
    north = max(p.lat for p in points)
    west, east = _widen(west, east)
    south, north = _widen(south, north)
    west, east, south, north = west - PAD_DEG, east + PAD_DEG, south - PAD_DEG, north + PAD_DEG
    # Equirectangular, squeezed by cos(latitude) so shapes look right at Balkan latitudes.
    squeeze = math.cos(math.radians((south + north) / 2))
    scale = MAP_WIDTH / ((east - west) * squeeze)
    height = (north - south) * scale

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return round((lon - west) * squeeze * scale, 1), round((north - lat) * scale, 1)

    outlines = []
    for name, ring in _rings():
        if (
            max(x for x, _ in ring) < west
            or min(x for x, _ in ring) > east
            or max(y for _, y in ring) < south
            or min(y for _, y in ring) > north
        ):
            continue
        path = " ".join(f"{x},{y}" for x, y in (xy(lon, lat) for lon, lat in ring))
        outlines.append({"country": name, "points": path})
    target = xy(incident.lon, incident.lat)
    most = max((n for _, n in donors), default=1)
    arrows = []
    for place, units in donors:
        x, y = xy(place.lon, place.lat)
        arrows.append(
            {
                "city": place.name,
                "units": units,
                "x1": x,
                "y1": y,
                "x2": target[0],
                "y2": target[1],
                "width": round(1.5 + 4.5 * units / most, 1),
            }
        )
    return {
        "width": MAP_WIDTH,
        "height": round(height, 1),
        "outlines": outlines,
        "arrows": arrows,
        "incident": {"name": incident.name, "x": target[0], "y": target[1]},
        "requester": (
            {
                "name": requester.name,
                "x": xy(requester.lon, requester.lat)[0],
                "y": xy(requester.lon, requester.lat)[1],
            }
            if requester
            else None
        ),
    }


def _widen(low: float, high: float) -> tuple[float, float]:
    if high - low >= MIN_SPAN_DEG:
        return low, high
    middle = (low + high) / 2
    return middle - MIN_SPAN_DEG / 2, middle + MIN_SPAN_DEG / 2


def timeline_figure(series: dict[str, list[datetime]]) -> dict[str, Any]:
    """One lane per kind of event, a mark per event, an axis with five labelled ticks."""
    moments = [m for lane in LANES for m in series.get(lane, [])]
    start = min(moments, default=None)
    end = max(moments, default=None)
    if start is None or end is None:
        return {
            "width": TIMELINE_WIDTH,
            "height": LANE_HEIGHT * len(LANES) + 30,
            "lanes": [],
            "ticks": [],
            "empty": True,
        }
    span = max((end - start).total_seconds(), 60.0)
    usable = TIMELINE_WIDTH - LANE_LEFT - 20

    def x(moment: datetime) -> float:
        return round(LANE_LEFT + usable * (moment - start).total_seconds() / span, 1)

    lanes = []
    for index, lane in enumerate(LANES):
        y = round(20 + index * LANE_HEIGHT, 1)
        marks = [{"x": x(m), "at": m.isoformat()} for m in sorted(series.get(lane, []))]
        lanes.append({"name": lane, "y": y, "count": len(marks), "marks": marks})
    label = "%H:%M:%S" if span < 86400 else "%d %b %H:%M"
    ticks = [
        {
            "x": round(LANE_LEFT + usable * k / 4, 1),
            "label": (start + timedelta(seconds=span * k / 4)).strftime(label),
        }
        for k in range(5)
    ]
    return {
        "width": TIMELINE_WIDTH,
        "height": round(20 + len(LANES) * LANE_HEIGHT + 20, 1),
        "axis_y": round(20 + len(LANES) * LANE_HEIGHT - LANE_HEIGHT / 2, 1),
        "lanes": lanes,
        "ticks": ticks,
        "empty": False,
    }
