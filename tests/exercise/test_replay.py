"""A full replay of the 2021 wildfire scenario against a real `b40 serve` on PostgreSQL; the
report's numbers are checked against what the API itself says."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.exercise.replay import PLAN_PATH, ReplayError, run_replay
from server.exercise.report import ReplayReport
from server.exercise.scenario import load_scenario
from tests.conftest import ServerProcess

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "2021_wildfires.json"
ADMIN = "replay-test-admin"
SPEED = 1e9  # the whole month in well under a second of waiting


@pytest.fixture
def server(server_factory: type[ServerProcess], pg_url: str) -> ServerProcess:
    return server_factory({"B40_DATABASE_URL": pg_url, "B40_ADMIN_TOKEN": ADMIN}).start()


def _api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    )


def _all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        body = client.get(path, params={**params, "limit": 1000, "offset": len(items)}).json()
        items += body["items"]
        if len(items) >= body["total"]:
            return items


def check_against_api(report: ReplayReport, client: httpx.Client) -> None:
    scenario = load_scenario(SCENARIO)
    assert [r.request for r in report.requests] == [r.id for r in scenario.requests]
    for summary, planned in zip(report.requests, scenario.requests, strict=True):
        request = client.get(f"/api/v1/requests/{summary.request_id}").json()
        assert request["exercise"] is True
        assert request["incident_id"] == summary.incident_id
        assert client.get(f"/api/v1/incidents/{summary.incident_id}").json()["exercise"] is True
        assert summary.asked == sum(i.quantity for i in planned.items)
        assert summary.asked == sum(i["quantity"] for i in request["items"])
        assert summary.accepted == sum(i["accepted"] for i in request["items"])
        offers = [
            o
            for item in request["items"]
            for o in _all(client, "/api/v1/offers", request_item_id=item["id"])
        ]
        assert summary.offered == len(offers)
        accepted = [o for o in offers if o["status"] == "accepted"]
        assert summary.accepted == len(accepted)
        assert summary.distance_km == pytest.approx(sum(o["distance_km"] for o in accepted))
        assert summary.eta_hours == pytest.approx(sum(o["eta_hours"] for o in accepted))
        for line in summary.lines:
            item = next(i for i in request["items"] if i["id"] == line.item_id)
            donors: dict[str, int] = defaultdict(int)
            for o in accepted:
                if o["request_item_id"] == line.item_id:
                    donors[o["donor_city"]] += 1
            assert line.donors == donors
            assert line.accepted == item["accepted"]
            # Every deployment ran its course: arrived, released, home again.
            assert item["arrived"] == item["released"] == item["returned"] == item["accepted"]
            if line.accepted == line.asked:
                assert line.hours_to_fill is not None
                assert line.hours_to_fill >= 0
        for o in accepted:
            unit = client.get(f"/api/v1/resources/{o['resource_id']}").json()
            assert unit["exercise"] is True
            assert unit["callsign"].startswith(f"X{report.run_id}-")
            assert unit["city"] != request["city"]  # never lent to itself


def test_replay_nearest_twice_on_one_database(server: ServerProcess) -> None:
    scenario = load_scenario(SCENARIO)
    first = run_replay(scenario, api=server.url, token=ADMIN, speed=SPEED, policy="nearest")
    with _api(server) as client:
        check_against_api(first, client)
        # The shipped inventory covers every request of 2021.
        assert first.totals["accepted"] == first.totals["asked"] == 30
        assert all(r.hours_to_fill is not None for r in first.requests)
        # The comparison covers each (request, capability) of the historical offers.
        compared = {(h.request, h.capability) for h in first.historical}
        assert compared == {(o.to_request, o.capability) for o in scenario.historical_offers}
        evia_heli = next(
            h
            for h in first.historical
            if (h.request, h.capability) == ("r21-gr-evia", "FF_HELICOPTER")
        )
        assert evia_heli.historical_deployed == 3
        assert evia_heli.replay_accepted == 3
        # A second run on the same database: fresh callsigns, its own units only.
        second = run_replay(scenario, api=server.url, token=ADMIN, speed=SPEED, policy="nearest")
        assert second.run_id != first.run_id
        check_against_api(second, client)
        assert second.totals == first.totals
        # The runs' units are retired afterwards; their operators' tokens are revoked.
        left = _all(client, "/api/v1/resources", exercise=True, status="available")
        assert left == []


def test_replay_by_plan(server: ServerProcess) -> None:
    scenario = load_scenario(SCENARIO)
    with _api(server) as client:
        has_plan = PLAN_PATH in client.get("/openapi.json").json()["paths"]
        if not has_plan:
            with pytest.raises(ReplayError, match="use --policy nearest"):
                run_replay(scenario, api=server.url, token=ADMIN, speed=SPEED, policy="plan")
            # Refused before anything was created.
            assert _all(client, "/api/v1/resources", exercise=True) == []
            return
        report = run_replay(scenario, api=server.url, token=ADMIN, speed=SPEED, policy="plan")
        check_against_api(report, client)
        assert report.plans, "the plan policy plans at each dispatch moment"
        assert report.totals["accepted"] == report.totals["asked"]
        # The after-action report of each incident agrees with the replay's report, and shows
        # the lender-cover flags of the plans that covered it.
        flagged = 0
        for summary in report.requests:
            after = client.get(
                f"/api/v1/incidents/{summary.incident_id}/report", params={"format": "json"}
            ).json()
            assert after["incident"]["exercise"] is True
            assert after["totals"]["asked"] == summary.asked
            assert after["totals"]["accepted"] == summary.accepted
            assert after["timeline"]["counts"]["arrivals"] == summary.accepted
            assert after["timeline"]["counts"]["releases"] == summary.accepted
            by_line = {line["item_id"]: line for line in after["lines"]}
            for line in summary.lines:
                assert by_line[line.item_id]["donors"] == line.donors
            flagged += len(after["flags"])
        plan_flags = sum(len(p["flags"]) for p in report.plans)
        assert (flagged > 0) == (plan_flags > 0)


def test_replay_needs_an_admin_token(server: ServerProcess) -> None:
    scenario = load_scenario(SCENARIO)
    with _api(server) as client:
        made = client.post("/api/v1/users", json={"name": "coord", "role": "coordinator"}).json()
    with pytest.raises(ReplayError, match="needs an admin token"):
        run_replay(scenario, api=server.url, token=made["token"], speed=SPEED, policy="nearest")
    with pytest.raises(ReplayError, match="401"):
        run_replay(scenario, api=server.url, token="wrong", speed=SPEED, policy="nearest")
