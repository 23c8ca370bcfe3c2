"""A Redis restart mid-stream loses no event: the hub fills the gap from the log."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.board.conftest import ServerStarter, Writers, api, board, events_until, last_seq, receive
from tests.conftest import free_port


class OwnRedis:
    """A redis-server of our own (the shared one is never restarted), no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


def test_a_redis_restart_mid_stream_loses_no_event(
    clustered: ServerStarter, own_redis: OwnRedis, redis_prefix: str
) -> None:
    a = clustered(B40_REDIS_URL=own_redis.url)
    b = clustered(B40_REDIS_URL=own_redis.url)
    with api(a) as client, board(b) as ws:
        start = receive(ws)["seq"]
        with Writers(a, threads=4):
            before = events_until(ws, start + 30)
            own_redis.kill()  # the stream is gone with it
            during = events_until(ws, last_seq(client) + 20)  # via the log while Redis is down
            own_redis.start()
            after = events_until(ws, last_seq(client) + 30)
        end = last_seq(client)
        rest = events_until(ws, end) if end > after[-1]["seq"] else []
        # The relay carries on into the new (empty) stream: live again, not only via the log.
        stream = redis.Redis.from_url(own_redis.url).xrange(f"{redis_prefix}:events")
    seqs = [e["seq"] for e in before + during + after + rest]
    assert seqs == list(range(start + 1, end + 1))
    assert stream
    assert int(stream[-1][0].split(b"-")[0]) == end
