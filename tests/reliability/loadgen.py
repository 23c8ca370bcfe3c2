"""The load generator and history recorder, run in its own process (the API's event loop stalls
must not hide behind ours):

    python -m tests.reliability.loadgen config.json history.json

It connects M boards (websockets, reconnecting with `after=<last seq>`), releases a burst of
simultaneous request posts, then posts at a steady rate; every post carries an Idempotency-Key
and is retried with it on a connection error, a timeout, 409 or 5xx. It writes the history:
each operation's outcome (ok, failed, unknown) with every status seen, and every event each
board received. The phase it is in is written to history.json.phase, for the chaos schedule.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import connect

AMBIGUOUS = {409, 500, 502, 503, 504}  # may or may not have happened: retry with the same key


@dataclass
class Op:
    op: str
    kind: str
    t0: float
    t1: float = 0.0
    outcome: str = "unknown"
    attempts: int = 0
    statuses: list[str] = field(default_factory=list)
    id: int | None = None


@dataclass
class Board:
    board: int
    urls: list[str]
    start_seq: int | None = None
    last: int = 0
    events: list[list[Any]] = field(default_factory=list)
    reconnects: int = 0
    resyncs: int = 0
    down_since: float | None = None
    longest_down: float = 0.0
    connected: bool = False


class Load:
    def __init__(self, config: dict[str, Any], out: Path) -> None:
        self.c = config
        self.out = out
        self.token = config["token"]
        self.ops: list[Op] = []
        self.boards = [
            Board(
                i,
                config["board_urls"][i % len(config["board_urls"]) :]
                + config["board_urls"][: i % len(config["board_urls"])],
            )
            for i in range(config["boards"])
        ]
        self.stop_boards = asyncio.Event()
        self.rnd = random.Random(config.get("seed", 1))
        self.retry_after_missing = 0
        self.phases: dict[str, float] = {}

    def phase(self, name: str) -> None:
        self.phases[name] = time.time()
        Path(str(self.out) + ".phase").write_text(name)

    # ----------------------------------------------------------------------- boards
    async def run_board(self, b: Board) -> None:
        attempt = 0
        while not self.stop_boards.is_set():
            url = b.urls[attempt % len(b.urls)].replace("http://", "ws://") + "/ws/board"
            url += f"?token={self.token}"
            if b.start_seq is not None:
                url += f"&after={b.last}"
            try:
                async with connect(url, max_size=None, open_timeout=10, ping_interval=None) as ws:
                    b.connected = True
                    if b.down_since is not None:
                        b.longest_down = max(b.longest_down, time.time() - b.down_since)
                        b.down_since = None
                    attempt = 0
                    await self.read_board(b, ws)
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            if self.stop_boards.is_set():
                return
            b.connected = False
            if b.down_since is None:
                b.down_since = time.time()
            b.reconnects += 1
            attempt += 1
            await asyncio.sleep(self.rnd.uniform(0.1, 0.6))

    async def read_board(self, b: Board, ws: Any) -> None:
        # One receive loop per board and no task per message: 120 boards x 20 events/s is
        # thousands of frames a second, and the generator must not be the bottleneck it
        # measures (a task and an asyncio.wait per frame made it one on a slow day, and the
        # arrival times it records grew with its own backlog). Stopping closes the socket.
        async def close_on_stop() -> None:
            await self.stop_boards.wait()
            await ws.close()

        closer = asyncio.create_task(close_on_stop())
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "snapshot":
                    if b.start_seq is None:
                        b.start_seq = b.last = int(message["seq"])
                elif kind == "heartbeat":
                    continue
                elif kind == "resync":
                    b.resyncs += 1
                    return
                elif "seq" in message:
                    seq = int(message["seq"])
                    b.events.append([seq, kind, message.get("entity_id"), time.time()])
                    b.last = max(b.last, seq)
        finally:
            closer.cancel()

    # -------------------------------------------------------------------------- posts
    async def post(self, client: httpx.AsyncClient, n: int) -> None:
        cities = list(self.c["incidents"])
        city = cities[n % len(cities)]
        op = Op(op=f"{self.c['tag']}-{n}", kind="request", t0=time.time())
        self.ops.append(op)
        body = {
            "city": city,
            "incident_id": self.c["incidents"][city],
            "priority": "normal",
            "items": [{"capability": self.c.get("capability", "FIRE_ENGINE"), "quantity": 1}],
            "note": op.op,
        }
        urls = self.c["api_urls"]
        deadline = time.monotonic() + self.c.get("op_deadline", 30)
        ambiguous = False
        while True:
            op.attempts += 1
            url = urls[(n + op.attempts - 1) % len(urls)]
            try:
                response = await client.post(
                    url + "/api/v1/requests",
                    json=body,
                    headers={"Idempotency-Key": op.op},
                    timeout=self.c.get("post_timeout", 15),
                )
            except httpx.TimeoutException:
                op.statuses.append("timeout")
                ambiguous = True
            except httpx.TransportError as error:
                # Refused before sending is not ambiguous; a cut mid-request is.
                refused = isinstance(error, httpx.ConnectError)
                op.statuses.append("refused" if refused else "cut")
                ambiguous = ambiguous or not refused
            else:
                op.statuses.append(str(response.status_code))
                if response.status_code == 503 and "retry-after" not in response.headers:
                    self.retry_after_missing += 1
                if response.status_code in (200, 201):
                    op.outcome = "ok"
                    op.id = int(response.json()["id"])
                    break
                if response.status_code == 429:  # refused, nothing written: wait and retry
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code not in AMBIGUOUS:
                    op.outcome = "failed"  # a definite refusal: nothing was written
                    break
                ambiguous = True
            if time.monotonic() > deadline:
                op.outcome = "unknown" if ambiguous else "failed"
                break
            await asyncio.sleep(self.rnd.uniform(0.1, 0.5))
        op.t1 = time.time()

    async def last_seq(self, client: httpx.AsyncClient) -> int:
        while True:
            for url in self.c["api_urls"]:
                try:
                    response = await client.get(url + "/api/v1/events", params={"limit": 1})
                    if response.status_code == 200:
                        return int(response.json()["last_seq"])
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.5)

    async def main(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        limits = httpx.Limits(max_connections=self.c.get("connections", 250))
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
            self.phase("boards")
            tasks = [asyncio.create_task(self.run_board(b)) for b in self.boards]
            deadline = time.monotonic() + 60
            while not all(b.start_seq is not None for b in self.boards):
                if time.monotonic() > deadline:
                    raise SystemExit("boards did not connect in 60 s")
                await asyncio.sleep(0.1)
            n = 0
            self.phase("burst")
            burst = [self.post(client, n + i) for i in range(self.c["burst"])]
            n += self.c["burst"]
            await asyncio.gather(*burst)
            self.burst_seconds = time.time() - self.phases["burst"]
            self.phase("load")
            posts = []
            interval = 1.0 / self.c["rate"] if self.c["rate"] else 0
            end = time.monotonic() + self.c["duration"]
            next_at = time.monotonic()
            while interval and time.monotonic() < end:
                posts.append(asyncio.create_task(self.post(client, n)))
                n += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*posts)
            self.phase("drain")
            final = await self.last_seq(client)
            self.final_seq = final
            limit = time.monotonic() + self.c.get("converge_timeout", 60)
            while time.monotonic() < limit and not all(b.last >= final for b in self.boards):
                await asyncio.sleep(0.1)
            self.converged_after_load = time.time() - self.phases["drain"]
            self.stop_boards.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.phase("done")

    def write(self) -> None:
        statuses = Counter(s for op in self.ops for s in op.statuses)
        data = {
            "phases": self.phases,
            "final_seq": getattr(self, "final_seq", None),
            "burst_seconds": getattr(self, "burst_seconds", None),
            "converged_after_load": getattr(self, "converged_after_load", None),
            "retry_after_missing": self.retry_after_missing,
            "statuses": dict(statuses),
            "ops": [asdict(op) for op in self.ops],
            "boards": [
                {k: v for k, v in asdict(b).items() if k not in ("urls", "down_since")}
                for b in self.boards
            ],
        }
        self.out.write_text(json.dumps(data))


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    load = Load(config, Path(sys.argv[2]))
    try:
        asyncio.run(load.main())
    finally:
        load.write()


if __name__ == "__main__":
    main()
