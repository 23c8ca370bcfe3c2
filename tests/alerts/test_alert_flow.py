"""Every rule through the API and the planner, on PostgreSQL and SQLite: the right officers
and only them; escalation on a clock we move; acknowledgement stops it; delivery once."""

from __future__ import annotations

from typing import Any

import xmlschema

from tests.alerts.conftest import SECRET, World

CAP = xmlschema.XMLSchema("config/cap/CAP-v1.2.xsd")


def setup_scenario(
    world: World, *, priority: str = "critical", quantity: int = 2
) -> dict[str, Any]:
    api = world.api
    for city, capability, callsign in [
        ("sofia", "FF_HELICOPTER", "SOF-H1"),
        ("belgrade", "FF_HELICOPTER", "BEG-H1"),
        ("skopje", "FF_HELICOPTER", "SKP-H1"),  # in range, but Skopje's rules say 0.1 h
        ("zagreb", "WILDLAND_ENGINE", "ZAG-W1"),  # does not match
    ]:
        api.ok(
            api.post(city, "/api/v1/resources", {"capability": capability, "callsign": callsign}),
            201,
        )
    for name, city, level in [
        ("ath-1", "athens", 1),
        ("sof-1", "sofia", 1),
        ("sof-2", "sofia", 2),
        ("beg-1", "belgrade", 1),
        ("zag-1", "zagreb", 1),
        ("skp-1", "skopje", 1),
        ("net-1", None, 1),
        ("net-2", None, 2),
    ]:
        world.officer(name, city, level, phone="+381600000000", webhook_url="http://hook.test/b40")
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "wildfire",
                "title": "Parnitha fire",
                "lat": 38.17,
                "lon": 23.72,
                "severity": "extreme",
            },
        ),
        201,
    )
    request = api.ok(
        api.post(
            "athens",
            "/api/v1/requests",
            {
                "incident_id": incident["id"],
                "priority": priority,
                "items": [{"capability": "FF_HELICOPTER", "quantity": quantity}],
            },
        ),
        201,
    )
    return request


def test_each_rule_reaches_the_right_officers_and_only_them(world: World) -> None:
    api = world.api
    request = setup_scenario(world)
    world.plan()
    assert world.to() == {"request_created": ["beg-1", "sof-1"]}
    facts = world.alerts()[0]["facts"]
    assert facts["where"]["city"] == "athens"
    assert facts["how_many"] == 2
    assert facts["link"] == f"http://board.test/board#request-{request['id']}"

    units = {u["callsign"]: u for u in api.ok(api.get("admin", "/api/v1/resources"))["items"]}
    line = request["items"][0]["id"]
    offer = api.ok(
        api.post(
            "sofia",
            "/api/v1/offers",
            {"request_item_id": line, "resource_id": units["SOF-H1"]["id"]},
        ),
        201,
    )
    world.plan()
    assert world.to()["offer_created"] == ["ath-1"]
    api.ok(api.post("athens", f"/api/v1/offers/{offer['id']}/accept"))
    world.plan()
    assert world.to()["offer_accepted"] == ["sof-1"]

    # Belgrade's helicopter could fill Athens' open line: Athens hears it went out of service.
    api.ok(
        api.post(
            "belgrade",
            f"/api/v1/resources/{units['BEG-H1']['id']}/status",
            {"status": "out_of_service"},
        )
    )
    world.plan()
    assert world.to()["unit_out_of_service"] == ["ath-1"]

    # 31 minutes on, the critical line is still short by one: the network coordinators.
    world.clock.advance(minutes=31)
    world.plan()
    assert world.to()["line_unfilled"] == ["net-1"]
    # Helicopter readiness is 3 h, grace 30 min: the deployment is late for en_route.
    world.clock.advance(hours=3)
    world.plan()
    assert world.to()["deployment_overdue"] == ["ath-1", "sof-1"]
    world.plan()  # replays change nothing
    assert sum(len(v) for v in world.to().values()) == 8


def test_every_alert_is_a_valid_cap_document(world: World) -> None:
    setup_scenario(world)
    world.plan()
    for alert in world.alerts():
        response = world.api.get("admin", f"/api/v1/alerts/{alert['id']}/cap")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/cap+xml")
        CAP.validate(response.text)
        assert "<status>Actual</status>" in response.text
        assert "<circle>38.17000,23.72000 10</circle>" in response.text


def test_exercise_incidents_give_exercise_cap(world: World) -> None:
    api = world.api
    api.ok(
        api.post(
            "sofia",
            "/api/v1/resources",
            {"capability": "FF_HELICOPTER", "callsign": "X-1", "exercise": True},
        ),
        201,
    )
    world.officer("sof-1", "sofia")
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "flood",
                "title": "Drill",
                "lat": 38.0,
                "lon": 23.7,
                "severity": "moderate",
                "exercise": True,
            },
        ),
        201,
    )
    api.ok(
        api.post(
            "athens",
            "/api/v1/requests",
            {
                "incident_id": incident["id"],
                "priority": "normal",
                "items": [{"capability": "FF_HELICOPTER", "quantity": 1}],
            },
        ),
        201,
    )
    world.plan()
    [alert] = world.alerts()
    document = api.get("admin", f"/api/v1/alerts/{alert['id']}/cap").text
    CAP.validate(document)
    assert "<status>Exercise</status>" in document
    assert "<category>Met</category>" in document


def test_delivery_is_once_per_channel_even_when_repeated(world: World) -> None:
    setup_scenario(world)
    world.plan()
    sends = list(world.queue.sends)
    assert len(sends) == 2 * 3  # two officers, three channels each
    world.deliver()
    world.queue.sends += sends  # re-enqueued (a sweep, a duplicate job)
    world.deliver()
    for channel in world.channels.values():
        assert len(channel.sent) == 2
        assert len({o.idempotency_key for o in channel.sent}) == 2
    assert {a["status"] for a in world.alerts()} == {"sent"}
    events = world.api.ok(
        world.api.get("admin", "/api/v1/events", params={"after": 0, "limit": 1000})
    )
    types = [e["type"] for e in events["items"]]
    assert types.count("alert.created") == 2
    assert types.count("alert.sent") == 2


def test_a_channel_failing_three_times_then_recovering_delivers_once(world: World) -> None:
    setup_scenario(world)
    world.plan()
    world.channels["sms"].failures = 3
    sms = [s for s in world.queue.sends if s.channel == "sms"][:1]
    world.queue.sends = list(sms)
    for _ in range(5):  # the retries of one job, and one more for good measure
        world.queue.sends = list(sms)
        world.deliver()
    assert len(world.channels["sms"].sent) == 1
    detail = world.api.ok(world.api.get("admin", f"/api/v1/alerts/{sms[0].alert_id}"))
    [delivery] = detail["deliveries"]
    assert delivery["status"] == "sent"
    assert delivery["attempts"] == 4


def test_unacknowledged_alert_escalates_after_t_and_ack_stops_it(world: World) -> None:
    setup_scenario(world, quantity=1)
    world.plan()
    world.deliver()
    by_officer = {a["officer"]: a for a in world.alerts()}
    # Belgrade acknowledges; Sofia does not.
    world.api.user("beg-duty", "duty_officer", "belgrade")
    world.api.ok(world.api.post("beg-duty", f"/api/v1/alerts/{by_officer['beg-1']['id']}/ack"))
    world.clock.advance(minutes=9)
    world.plan()
    assert {a["officer"] for a in world.alerts()} == {"beg-1", "sof-1"}
    world.clock.advance(minutes=2)  # critical: 10 minutes to acknowledge
    world.plan()
    now = {a["officer"]: a["status"] for a in world.alerts()}
    assert now == {"beg-1": "acknowledged", "sof-1": "escalated", "sof-2": "pending"}
    world.deliver()
    world.clock.advance(minutes=11)
    world.plan()  # Sofia's level 2 is silent too: the network coordinators
    assert {a["officer"]: a["status"] for a in world.alerts()}["net-1"] == "pending"
    world.deliver()
    net = next(a for a in world.alerts() if a["officer"] == "net-1")
    # The coordinator acknowledges with the signed link from the message.
    sms = next(o for o in world.channels["sms"].sent if o.alert_id == net["id"])
    link = sms.sms.split("ACK ", 1)[1]
    path = link.removeprefix("http://board.test")
    assert world.api.client.get(path).status_code == 200  # a confirmation page, no change
    assert next(a for a in world.alerts() if a["id"] == net["id"])["status"] == "sent"
    assert world.api.client.post(path).status_code == 200
    world.clock.advance(hours=2)
    world.plan()
    final = {a["officer"]: a["status"] for a in world.alerts()}
    assert final == {
        "beg-1": "acknowledged",
        "sof-1": "escalated",
        "sof-2": "escalated",
        "net-1": "acknowledged",
    }
    assert world.api.client.post(path[:-4] + "AAAA").status_code == 403
    assert SECRET not in sms.sms


def test_duty_officers_are_managed_by_admins_and_their_own_city(world: World) -> None:
    api = world.api
    ok = api.post(
        "sofia", "/api/v1/duty-officers", {"city": "sofia", "name": "S", "phone": "+359888000000"}
    )
    assert ok.status_code == 201
    assert ok.json()["timezone"] == "Europe/Sofia"
    assert (
        api.post(
            "sofia", "/api/v1/duty-officers", {"city": "athens", "name": "A", "email": "a@x.org"}
        ).status_code
        == 403
    )
    assert (
        api.post(
            "sofia", "/api/v1/duty-officers", {"city": None, "name": "N", "email": "n@x.org"}
        ).status_code
        == 403
    )
    assert (
        api.post("admin", "/api/v1/duty-officers", {"city": "sofia", "name": "none"}).status_code
        == 422
    )
    listed = api.ok(api.get("admin", "/api/v1/duty-officers", params={"city": "sofia"}))
    assert [o["name"] for o in listed["items"]] == ["S"]
