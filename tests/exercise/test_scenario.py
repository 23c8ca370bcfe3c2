"""Scenario files: the shipped one validates; broken ones fail naming the path and the reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.exercise.scenario import ScenarioError, load_scenario, parse_scenario

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "2021_wildfires.json"
BASE: dict[str, Any] = json.loads(SHIPPED.read_text(encoding="utf-8"))


def test_the_shipped_2021_scenario_is_valid() -> None:
    scenario = load_scenario(SHIPPED)
    assert len(scenario.incidents) == 7
    assert len(scenario.requests) == 7
    assert len(scenario.historical_offers) == 10
    assert scenario.start.isoformat() == "2021-07-28T12:00:00+03:00"
    assert scenario.hours_after_start(scenario.requests[0].at) == pytest.approx(4 * 24)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "value", "path", "reason"),
    [
        ("incidents/1/lat", _DELETE, "incidents[1].lat", "Field required"),
        ("incidents/0/lat", 123.0, "incidents[0].lat", "less than or equal to 90"),
        ("incidents/0/kind", "volcano", "incidents[0].kind", "Input should be"),
        ("incidents/0/started_at", "2021-07-28T12:00:00", "incidents[0].started_at", "timezone"),
        ("requests/0/items/1/quantity", 0, "requests[0].items[1].quantity", "greater than"),
        ("requests/0/items", [], "requests[0].items", "at least 1 item"),
        ("requests/0/priority", "urgent", "requests[0].priority", "'critical', 'high'"),
        ("requests/2/incident", "wf-nowhere", "requests[2].incident", "unknown incident"),
        ("requests/1/id", "r21-tr-antalya", "requests[1].id", "duplicate id 'r21-tr-antalya'"),
        ("requests/0/at", "2021-07-01T00:00:00+03:00", "requests[0].at", "before its incident"),
        ("requests/0/city", "paris", "requests[0].city", "not in the scenario's `cities`"),
        ("resources/3/capability", "heli copter", "resources[3].capability", "pattern"),
        ("resources/0/city", "Zadar", "resources[0].city", "pattern"),
        ("historical_offers/0/to_request", "r21-x", "historical_offers[0].to_request", "unknown"),
        ("historical_offers/0/status", "maybe", "historical_offers[0].status", "'deployed'"),
        ("cities", [], "cities", "at least 1 item"),
        ("name", _DELETE, "name", "Field required"),
    ],
)
def test_an_invalid_scenario_names_the_path_and_the_reason(
    change: str, value: Any, path: str, reason: str
) -> None:
    data = copy.deepcopy(BASE)
    _set(data, change, value)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data, source="broken.json")
    found = {p.path: p.reason for p in caught.value.problems}
    assert path in found, caught.value
    assert reason in found[path]
    assert str(caught.value).startswith("broken.json: invalid scenario")


def test_all_problems_are_reported_at_once() -> None:
    data = copy.deepcopy(BASE)
    data["requests"][2]["incident"] = "wf-nowhere"
    data["resources"][0]["city"] = "paris"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert [p.path for p in caught.value.problems] == ["resources[0].city", "requests[2].incident"]


def test_unknown_keys_are_notes_and_are_ignored() -> None:
    data = copy.deepcopy(BASE)
    data["incidents"][0]["weather"] = "hot and windy"
    assert parse_scenario(data).incidents[0].id == "wf-manavgat"


def test_a_file_that_is_not_json_names_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "s.json"
    broken.write_text('{"name": "x",\n  "cities": [,]}', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"not valid JSON \(line 2, column 14\)"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.json")
