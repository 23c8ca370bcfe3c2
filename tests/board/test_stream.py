"""The /ws/board protocol against real `b40 serve` processes."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.board.conftest import (
    ServerStarter,
    Writers,
    add_unit,
    all_events,
    api,
    board,
    events_until,
    last_seq,
    receive,
    ws_url,
)
from tests.conftest import ADMIN_TOKEN


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
def test_refuses_a_missing_or_bad_token_before_any_data(
    embedded: ServerStarter, token: str | None
) -> None:
    server = embedded()
    with pytest.raises(InvalidStatus) as refused:
        board(server, token=token)
    assert refused.value.response.status_code == 403
    assert b"seq" not in (refused.value.response.body or b"")


def test_accepts_the_token_in_an_authorization_header(embedded: ServerStarter) -> None:
    from websockets.sync.client import connect

    server = embedded()
    url = ws_url(server, token=None)
    with connect(url, additional_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as ws:
        assert receive(ws)["type"] == "snapshot"
    with pytest.raises(InvalidStatus):
        connect(url, additional_headers={"Authorization": "Bearer wrong"})


def test_snapshot_is_tagged_with_its_seq_then_live_events_follow(embedded: ServerStarter) -> None:
    server = embedded()
    with api(server) as client, board(server) as ws:
        snapshot = receive(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["seq"] == last_seq(client)
        for key in ("incidents", "requests", "units", "deployments", "offers", "alerts"):
            assert isinstance(snapshot[key], list)
        unit = add_unit(client, "LIVE-1")
        event = receive(ws)
        assert event["seq"] == snapshot["seq"] + 1
        assert event["type"] == "resource.created"
        assert event["payload"] == unit  # the entity view: no extra HTTP call needed


def test_after_replays_the_log_then_goes_live_with_no_gap_or_duplicate(
    embedded: ServerStarter,
) -> None:
    server = embedded()
    with api(server) as client:
        for i in range(30):
            add_unit(client, f"OLD-{i}")
        middle = last_seq(client) - 20
        with Writers(server, threads=3), board(server, after=middle) as ws:
            first = events_until(ws, last_seq(client) + 5)  # crosses the replay/live seam
        end = last_seq(client)
        with board(server, after=first[-1]["seq"]) as ws:
            rest = events_until(ws, end) if end > first[-1]["seq"] else []
        by_seq = {e["seq"]: e for e in all_events(client)}
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(middle + 1, max(end, first[-1]["seq"]) + 1))
    for event in first + rest:
        assert event["type"] == by_seq[event["seq"]]["type"]
        assert event["payload"] == by_seq[event["seq"]]["payload"]


def test_concurrent_writers_never_make_a_reader_miss_an_event(clustered: ServerStarter) -> None:
    """Seq order is commit order: a live reader sees every seq once, in order, over Redis."""
    server = clustered()
    with api(server) as client, board(server) as live:
        start = receive(live)["seq"]
        with Writers(server, threads=8) as writers:
            seen = events_until(live, start + 200)
        end = last_seq(client)
        seen += events_until(live, end) if end > seen[-1]["seq"] else []
        with board(server, after=0) as replay:
            replayed = events_until(replay, end)
        log = [e["seq"] for e in all_events(client)]
    assert len(writers.posted) >= 200
    assert [e["seq"] for e in seen] == list(range(start + 1, end + 1))
    assert [e["seq"] for e in replayed] == list(range(1, end + 1))
    assert log == list(range(1, end + 1))


def test_snapshot_is_exactly_the_log_up_to_its_seq(clustered: ServerStarter) -> None:
    """Under concurrent writes, the snapshot equals the fold of the events up to its seq."""
    server = clustered()
    with api(server) as client:
        units = [add_unit(client, f"SNAP-{i}") for i in range(10)]
        with Writers(server, threads=4):
            for unit in units:
                client.post(
                    f"/api/v1/resources/{unit['id']}/status", json={"status": "out_of_service"}
                )
                with board(server) as ws:
                    snapshot = receive(ws)
                    following = receive(ws)
                out = {u["id"] for u in snapshot["units"]}
                events = [e for e in all_events(client) if e["seq"] <= snapshot["seq"]]
                status: dict[int, str] = {}
                for event in events:
                    if event["entity"] == "resource":
                        status[event["payload"]["id"]] = event["payload"]["status"]
                assert out == {i for i, s in status.items() if s != "available"}
                assert following["seq"] == snapshot["seq"] + 1


def test_an_event_posted_to_one_process_reaches_a_board_on_another(
    clustered: ServerStarter,
) -> None:
    a, b = clustered(), clustered()
    with api(a) as client_a, api(b) as client_b, board(a) as on_a, board(b) as on_b:
        start_a, start_b = receive(on_a)["seq"], receive(on_b)["seq"]
        unit = add_unit(client_a, "VIA-A")
        other = add_unit(client_b, "VIA-B")
        end = last_seq(client_a)
        got_a, got_b = events_until(on_a, end), events_until(on_b, end)
    assert [e["seq"] for e in got_a] == list(range(start_a + 1, end + 1))
    assert [e["seq"] for e in got_b] == list(range(start_b + 1, end + 1))
    assert {e["payload"]["callsign"] for e in got_b} == {unit["callsign"], other["callsign"]}


def test_a_board_too_far_behind_gets_resync_and_catches_up_with_after(
    embedded: ServerStarter,
) -> None:
    server = embedded(B40_BOARD_BUFFER_EVENTS="5")
    with api(server) as client, board(server) as ws:
        start = receive(ws)["seq"]
        # One transaction, 40 events, one burst: more than the board's buffer of 5.
        response = client.post(
            "/api/v1/resources/bulk",
            json={
                "city": "sofia",
                "capability": "FIRE_ENGINE",
                "quantity": 40,
                "callsign_prefix": "B",
            },
        )
        assert response.status_code == 201, response.text
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            messages.extend(receive(ws) for _ in iter(int, 1))  # until the server closes
        assert messages[-1]["type"] == "resync"
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        resume = messages[-1]["after"]
        delivered = [m["seq"] for m in messages[:-1]]
        assert delivered == list(range(start + 1, resume + 1))
        end = last_seq(client)
        with board(server, after=resume) as again:
            rest = events_until(again, end)
        assert [e["seq"] for e in rest] == list(range(resume + 1, end + 1))
