"""Boards that connect together share one snapshot read; one that shares a read begun before it
subscribed gets the events in between from the log."""

from __future__ import annotations

import asyncio
import threading
import time

from server.board.snapshot import SharedSnapshot
from server.db.engine import make_engine
from server.db.unit_of_work import Database, Tx
from tests.factories import ADMIN_TOKEN, make_api

WAIT = 30.0  # a hang guard, not a speed assertion


def probe(tx: Tx) -> None:
    tx.record("probe.made", "probe", 1, city=None, payload={})


async def test_boards_connecting_together_share_one_read_and_later_ones_read_again(
    sqlite_url: str,
) -> None:
    database = Database(make_engine(sqlite_url))
    real = SharedSnapshot.of(database)._read
    reads: list[int] = []

    def slow_read() -> tuple[int, str]:
        reads.append(1)
        time.sleep(0.2)  # long enough for all ten to arrive while it runs
        return real()

    shared = SharedSnapshot(slow_read)
    together = await asyncio.gather(*(shared.get() for _ in range(10)))
    assert len(reads) == 1
    assert all(result == together[0] for result in together)
    database.run(probe)
    seq, frame = await shared.get()  # nothing in flight: a read of its own, with the commit
    assert len(reads) == 2
    assert seq == together[0][0] + 1
    assert f'"seq":{seq}' in frame
    database.engine.dispose()


def test_a_board_sharing_an_older_snapshot_gets_the_events_since_from_the_log(
    sqlite_url: str,
) -> None:
    api, client = make_api(sqlite_url)
    incident = {"city": "athens", "kind": "flood", "title": "t", "lat": 38, "lon": 23.7,
                "severity": "low"}  # fmt: skip
    with client:
        hub = client.app.state.board_hub  # type: ignore[attr-defined]
        real = hub.snapshots._read
        taken, release = threading.Event(), threading.Event()

        def held_read() -> tuple[int, str]:
            picture = real()  # taken now, handed out later: older than what follows
            taken.set()
            assert release.wait(WAIT)
            return picture

        hub.snapshots = SharedSnapshot(held_read)
        url = f"/ws/board?token={ADMIN_TOKEN}"
        with client.websocket_connect(url) as first:
            assert taken.wait(WAIT)
            assert api.post("admin", "/api/v1/incidents", incident).status_code == 201
            event_seq = api.get("admin", "/api/v1/events", params={"limit": 1}).json()["last_seq"]
            deadline = time.monotonic() + WAIT
            while hub.last_seq < event_seq and time.monotonic() < deadline:
                time.sleep(0.01)  # fanned out before the second board subscribes
            with client.websocket_connect(url) as second:
                time.sleep(0.2)  # it has subscribed and joined the read in flight
                release.set()
                for board in (first, second):
                    snapshot = board.receive_json()
                    assert snapshot["type"] == "snapshot"
                    assert snapshot["seq"] == event_seq - 1, "the shared, older picture"
                    event = board.receive_json()
                    assert (event["seq"], event["type"]) == (event_seq, "incident.created")
