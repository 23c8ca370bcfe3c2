"""An idle board gets heartbeats (proxies keep the socket open), carrying the last seq."""

from __future__ import annotations

import json

from tests.board.conftest import WAIT, ServerStarter, add_unit, api, board, last_seq


def test_idle_boards_get_heartbeats_with_the_last_seq(embedded: ServerStarter) -> None:
    server = embedded(B40_BOARD_HEARTBEAT_SECONDS="0.3")
    with api(server) as client:
        add_unit(client, "HB-1")
        seq = last_seq(client)
    with board(server) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["type"] == "snapshot"
        beats = []
        while len(beats) < 2:
            message = json.loads(ws.recv(timeout=WAIT))
            assert message["type"] == "heartbeat", message  # nothing else happens meanwhile
            beats.append(message)
        assert all(b["last_seq"] == seq for b in beats)
