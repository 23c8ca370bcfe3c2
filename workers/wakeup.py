"""Wake a worker's alert planner when any process commits events.

The planner wakes on its own process's commits and on its tick (`alert_tick_seconds`, 15 s).
Run in a worker, as docker-compose.yml runs it, it never sees the API processes' commits, so a
critical request would wait for the tick before its duty officers were alerted. Every
committed event reaches the board's Redis Stream (the API processes' relays publish the log
there), so a worker follows that stream and wakes its planner on each new entry. The planner
reads the database log from its own cursor, not these entries: a missed wake-up costs one
tick at most, never an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from server.board.transport import stream_key

log = logging.getLogger(__name__)
BLOCK_SECONDS = 1.0  # how long one XREAD waits; also how soon stop() is noticed


class StreamWaker:
    def __init__(self, redis_url: str, prefix: str, wake: Callable[[], None]) -> None:
        self.key = stream_key(prefix)
        self.wake = wake
        self._client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow from the stream's end as of now: start this before the planner, whose first
        pass reads whatever was committed before."""
        try:
            newest: Any = self._client.xrevrange(self.key, count=1)
            last = newest[0][0] if newest else "0-0"
        except redis.RedisError:
            last = "$"
        self._thread = threading.Thread(
            target=self._follow, args=(last,), name="b40-planner-waker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=BLOCK_SECONDS * 5)
        self._client.close()

    def _follow(self, last: Any) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                reply: Any = self._client.xread(
                    {self.key: last}, count=1000, block=int(BLOCK_SECONDS * 1000)
                )
                failures = 0
            except redis.RedisError as error:  # Redis away: the planner's tick covers meanwhile
                failures += 1
                if failures == 1:
                    log.warning("planner wake-up: %s; retrying", error)
                self._stop.wait(min(0.5 * failures, 5.0))
                continue
            for _key, items in reply or ():
                if items:
                    last = items[-1][0]
            if reply:
                self.wake()
