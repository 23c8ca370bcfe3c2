"""Live board benchmark: API POST -> board latency, throughput, reconnect storm, stalled board.

Production shape: `b40 serve` on PostgreSQL + Redis, boards over real websockets on loopback,
measured in the same run against a bare relay (bench/board_baseline.py: Redis Stream ->
websocket, nothing else). Writes its section of BENCHMARKS.md.

    .venv/bin/python bench/board.py [--samples 40] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from server.db.migrate import upgrade  # noqa: E402

PG_ADMIN = os.environ.get("B40_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("B40_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "bench-admin-token"
MARK = re.compile(r"bench-\d+-\d+")
COMMAND = "python bench/board.py"


def progress(message: str) -> None:
    print(f"[board bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Board:
    """One connected board: counts event frames, timestamps marked ones, resumes like the page.

    On `resync` or a dropped connection it reconnects with after=<last seq>, as the page does.
    """

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.frames = 0
        self.last_seq: int | None = None
        self.reconnects = 0
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, url: str) -> None:
        while True:
            target = url if self.last_seq is None else f"{url}&after={self.last_seq}"
            try:
                async with connect(
                    target, max_size=None, ping_interval=None, open_timeout=60
                ) as ws:
                    async for raw in ws:
                        now = time.perf_counter()
                        text = raw if isinstance(raw, str) else raw.decode()
                        if text.startswith('{"seq":'):
                            self.last_seq = int(text[7 : text.index(",")])
                        elif text.startswith('{"type":"snapshot"'):
                            self.last_seq = int(json.loads(text)["seq"])
                            self.ready.set()
                            continue
                        elif text.startswith('{"type":'):
                            continue  # heartbeat or resync (then the server closes)
                        else:
                            self.ready.set()  # the bare relay sends no snapshot
                        self.frames += 1
                        found = MARK.search(text)
                        if found:
                            self.arrivals.setdefault(found.group(0), now)
                    if "/ws/board" not in url:
                        return
            except OSError:
                if "/ws/board" not in url:
                    return
            except Exception:  # closed (resync, 1013): resume below
                if "/ws/board" not in url:
                    return
            self.reconnects += 1
            await asyncio.sleep(0.2)


async def open_boards(url: str, n: int, batch: int = 100) -> list[Board]:
    boards: list[Board] = []
    for start in range(0, n, batch):
        group = [Board() for _ in range(min(batch, n - start))]
        for board in group:
            board.task = asyncio.create_task(board.run(url))
            if "/ws/board" not in url:
                board.ready.set()  # no snapshot to wait for
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in group)), 120)
        boards.extend(group)
    await asyncio.sleep(0.5)  # the bare relay's sockets are registered
    return boards


async def close_boards(boards: list[Board]) -> None:
    for board in boards:
        if board.task:
            board.task.cancel()
    await asyncio.gather(*(b.task for b in boards if b.task), return_exceptions=True)


async def measure(
    boards: list[Board], post: Callable[[str], Awaitable[None]], samples: int, run: int
) -> list[float]:
    """Latency (ms) from just before the send to receipt, every board x every sample."""
    sent: dict[str, float] = {}
    for i in range(samples):
        mark = f"bench-{run}-{i}"
        sent[mark] = time.perf_counter()
        await post(mark)
        await asyncio.sleep(0.03)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
        all(m in b.arrivals for m in sent) for b in boards
    ):
        await asyncio.sleep(0.05)
    out = [(b.arrivals[m] - t0) * 1000 for m, t0 in sent.items() for b in boards if m in b.arrivals]
    missing = samples * len(boards) - len(out)
    if missing:
        progress(f"  WARNING: {missing} deliveries missing")
    return out


class Bench:
    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.run_id = 0
        self.results: dict[str, object] = {}

    async def setup(self) -> None:
        self.db = f"b40_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.pg_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db
        upgrade(Settings(database_url=self.pg_url).database_url)
        self.prefix = f"b40bench:{uuid.uuid4().hex[:8]}"
        self.redis = aioredis.Redis.from_url(REDIS_URL)
        env = {
            **os.environ,
            "B40_DATABASE_URL": self.pg_url,
            "B40_REDIS_URL": REDIS_URL,
            "B40_REDIS_PREFIX": self.prefix,
            "B40_ADMIN_TOKEN": TOKEN,
            "B40_DEMO": "0",
        }
        self.port = free_port()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base_port = free_port()
        self.baseline_key = f"{self.prefix}:baseline"
        self.baseline = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.board_baseline:app",
                "--port",
                str(self.base_port),
                "--log-level",
                "warning",
            ],
            env={**env, "BASELINE_REDIS_URL": REDIS_URL, "BASELINE_KEY": self.baseline_key},
            cwd=ROOT,
        )
        wait_port(self.port, self.server)
        wait_port(self.base_port, self.baseline)
        self.api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        incident = await self.api.post(
            "/api/v1/incidents",
            json={
                "city": "athens",
                "kind": "wildfire",
                "title": "Bench fire",
                "lat": 38.1,
                "lon": 23.7,
                "severity": "high",
            },
        )
        incident.raise_for_status()
        self.incident = incident.json()["id"]
        self.board_url = f"ws://127.0.0.1:{self.port}/ws/board?token={TOKEN}"
        self.base_url = f"ws://127.0.0.1:{self.base_port}/ws"
        # The baseline carries frames of the size ours do.
        self.frame_pad = "x" * 900

    async def teardown(self) -> None:
        await self.api.aclose()
        for process in (self.server, self.baseline):
            process.terminate()
            process.wait(15)
        async for key in self.redis.scan_iter(f"{self.prefix}:*"):
            await self.redis.delete(key)
        await self.redis.aclose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')

    async def post_request(self, mark: str) -> None:
        response = await self.api.post(
            "/api/v1/requests",
            json={
                "city": "athens",
                "incident_id": self.incident,
                "priority": "high",
                "items": [{"capability": "FIRE_ENGINE", "quantity": 1}],
                "note": mark,
            },
        )
        response.raise_for_status()

    async def xadd(self, mark: str) -> None:
        frame = json.dumps({"event": "request.created", "note": mark, "pad": self.frame_pad})
        await self.redis.xadd(self.baseline_key, {"f": frame})

    async def latency(self, n: int) -> None:
        self.run_id += 1
        progress(f"latency with {n} boards: ours (POST -> board)")
        boards = await open_boards(self.board_url, n)
        ours = await measure(boards, self.post_request, self.samples, self.run_id)
        await close_boards(boards)
        self.run_id += 1
        progress(f"latency with {n} boards: bare relay (XADD -> websocket)")
        boards = await open_boards(self.base_url, n)
        bare = await measure(boards, self.xadd, self.samples, self.run_id)
        await close_boards(boards)
        self.results[f"latency_{n}"] = (ours, bare)
        progress(
            f"  ours p50/p99 {pct(ours, 50):.1f}/{pct(ours, 99):.1f} ms, "
            f"bare {pct(bare, 50):.1f}/{pct(bare, 99):.1f} ms"
        )

    async def sustained(self, n: int = 100, posts: int = 20, per_post: int = 250) -> None:
        progress(f"sustained: {posts * per_post} events to {n} boards (ours)")
        boards = await open_boards(self.board_url, n)
        before = [b.frames for b in boards]
        total = posts * per_post
        started = time.perf_counter()

        async def poster(k: int) -> None:
            for i in range(k, posts, 4):
                r = await self.api.post(
                    "/api/v1/resources/bulk",
                    json={
                        "city": "sofia",
                        "capability": "FIRE_ENGINE",
                        "quantity": per_post,
                        "callsign_prefix": f"S{self.run_id}-{i}",
                    },
                )
                r.raise_for_status()

        await asyncio.gather(*(poster(k) for k in range(4)))
        posted = time.perf_counter() - started
        await drained(boards, before, total)
        elapsed = time.perf_counter() - started
        resumed = sum(b.reconnects for b in boards)
        await close_boards(boards)
        progress(f"sustained: {total} events to {n} boards (bare relay)")
        boards = await open_boards(self.base_url, n)
        before = [b.frames for b in boards]
        started = time.perf_counter()
        pipe = self.redis.pipeline(transaction=False)
        frame = json.dumps({"event": "resource.created", "pad": self.frame_pad})
        for i in range(total):
            pipe.xadd(self.baseline_key, {"f": frame})
            if i % 500 == 499:
                await pipe.execute()
        await pipe.execute()
        await drained(boards, before, total)
        bare_elapsed = time.perf_counter() - started
        await close_boards(boards)
        self.results["sustained"] = (n, total, elapsed, posted, bare_elapsed, resumed)
        progress(
            f"  ours {total / elapsed:.0f} events/s per board ({posted:.1f} s posting), "
            f"bare {total / bare_elapsed:.0f}"
        )

    async def storm(self, n: int = 120) -> None:
        self.run_id += 1
        progress(f"reconnect storm: {n} boards at once, then one event")
        boards = [Board() for _ in range(n)]
        started = time.perf_counter()
        for board in boards:
            board.task = asyncio.create_task(board.run(self.board_url))
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in boards)), 120)
        connected = time.perf_counter() - started
        await asyncio.sleep(0.5)
        latencies = await measure(boards, self.post_request, 1, self.run_id)
        await close_boards(boards)
        self.results["storm"] = (n, connected, len(latencies), latencies)
        progress(f"  {len(latencies)}/{n} boards got it; all connected in {connected:.2f} s")

    async def stalled(self, n: int = 100, pump: int = 15_000) -> None:
        self.run_id += 1
        progress(f"stalled board among {n}: pumping {pump} events past it")
        boards = await open_boards(self.board_url, n - 1)
        stalled = stalled_socket(self.port)
        rss_before = rss_kib(self.server.pid)
        for i in range(0, pump, 500):
            r = await self.api.post(
                "/api/v1/resources/bulk",
                json={
                    "city": "zagreb",
                    "capability": "FIRE_ENGINE",
                    "quantity": 500,
                    "callsign_prefix": f"T{self.run_id}-{i}",
                },
            )
            r.raise_for_status()
        rss_after_pump = rss_kib(self.server.pid)
        progress("  waiting for the other boards to drain the push")
        end = (await self.api.get("/api/v1/events", params={"limit": 1})).json()["last_seq"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and any((b.last_seq or 0) < end for b in boards):
            await asyncio.sleep(0.1)
        progress("  latency of the other boards while one is stalled")
        others = await measure(boards, self.post_request, self.samples, self.run_id)
        rss_after = rss_kib(self.server.pid)
        await close_boards(boards)
        received, resync, closed = drain(stalled)
        self.results["stalled"] = (
            n,
            pump,
            others,
            rss_before,
            rss_after_pump,
            rss_after,
            received,
            resync,
            closed,
        )
        progress(
            f"  others p50/p99 {pct(others, 50):.1f}/{pct(others, 99):.1f} ms; "
            f"server RSS {rss_before // 1024} -> {rss_after // 1024} MiB; "
            f"stalled board: resync={resync} closed={closed}"
        )


async def drained(boards: list[Board], before: list[int], total: int) -> None:
    deadline = time.monotonic() + 120
    while any(b.frames - f < total for b, f in zip(boards, before, strict=True)):
        if time.monotonic() > deadline:
            short = sum(1 for b, f in zip(boards, before, strict=True) if b.frames - f < total)
            progress(f"  WARNING: {short} boards short of {total} frames after 120 s")
            return
        await asyncio.sleep(0.02)


def stalled_socket(port: int) -> socket.socket:
    """A board that completes the handshake and then never reads again."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws/board?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head, head
    return s


def drain(s: socket.socket) -> tuple[int, bool, bool]:
    """Read what the server left for the stalled board: bytes, a resync frame, a close/EOF."""
    s.settimeout(10)
    data = bytearray()
    closed = False
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                closed = True
                break
            data += chunk
    except TimeoutError:
        pass
    s.close()
    return len(data), b'"resync"' in data, closed


def render(bench: Bench) -> str:
    r = bench.results
    lines = [
        "<!-- board:start -->",
        "## Live board: POST to board latency, throughput, storm, stalled board",
        "",
        f"Command: `{COMMAND}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, one "
        "`b40 serve` on PostgreSQL + Redis, uvicorn's default websocket implementation; boards "
        "are websocket clients in one Python process on loopback). Ours: `POST /api/v1/requests` "
        "until the `request.created` frame arrives on every board (HTTP, validation, commit, "
        "relay wake, XADD, hub XREAD, fan-out). Bare relay (`bench/board_baseline.py`): XADD "
        "until the frame arrives (Redis Stream -> websocket, nothing else). "
        f"{bench.samples} events per row, every board x every event counted.",
        "",
        "| boards | ours p50 ms | ours p99 ms | bare p50 ms | bare p99 ms | p50 ratio | p99 ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in (1, 100, 1000):
        if f"latency_{n}" not in r:
            continue
        ours, bare = r[f"latency_{n}"]  # type: ignore[misc]
        lines.append(
            f"| {n} | {pct(ours, 50):.1f} | {pct(ours, 99):.1f} | {pct(bare, 50):.1f} | "
            f"{pct(bare, 99):.1f} | {pct(ours, 50) / pct(bare, 50):.2f} | "
            f"{pct(ours, 99) / pct(bare, 99):.2f} |"
        )
    if "sustained" in r:
        n, total, elapsed, posted, bare_elapsed, resumed = r["sustained"]  # type: ignore[misc]
        lines += [
            "",
            f"Sustained, {n} boards, {total} events (bulk unit registrations, 4 concurrent "
            f"posters): ours {total / elapsed:,.0f} events/s delivered to every board "
            f"({total * n / elapsed:,.0f} frames/s; the API took {posted:.1f} s to commit them); "
            f"bare relay {total / bare_elapsed:,.0f} events/s ({total * n / bare_elapsed:,.0f} "
            f"frames/s); ratio {bare_elapsed / elapsed:.2f}. Boards that fell behind and "
            f"resumed with `after` (resync): {resumed}; every board received every event.",
        ]
    if "storm" in r:
        n, connected, got, latencies = r["storm"]  # type: ignore[misc]
        lines += [
            "",
            f"Reconnect storm: {n} boards connected at once (each gets a snapshot) in "
            f"{connected:.2f} s; then one event: {got}/{n} boards received it, "
            f"p50/p99 {pct(latencies, 50):.1f}/{pct(latencies, 99):.1f} ms.",
        ]
    if "stalled" in r:
        n, pump, others, before, after_pump, after, received, resync, closed = r["stalled"]  # type: ignore[misc]
        normal = r.get("latency_100")
        normal_text = ""
        if normal:
            ours = normal[0]  # type: ignore[index]
            normal_text = (
                f" (without a stalled board, above: {pct(ours, 50):.1f}/{pct(ours, 99):.1f} ms)"
            )
        lines += [
            "",
            f"One stalled board among {n} (handshake, then never reads; {pump:,} events pushed "
            f"past it): the other {n - 1} boards' p50/p99 {pct(others, 50):.1f}/"
            f"{pct(others, 99):.1f} ms{normal_text}; server RSS {before / 1024:.0f} MiB before, "
            f"{after_pump / 1024:.0f} MiB after the push, {after / 1024:.0f} MiB at the end; "
            f"the stalled board was {'closed' if closed else 'not closed'} by the server "
            f"{'with' if resync else 'without'} a readable `resync` (its socket held "
            f"{received / 1024:.0f} KiB of unread frames).",
        ]
    lines += ["<!-- board:end -->", ""]
    return "\n".join(lines)


def write(section: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if "<!-- board:start -->" in text:
        head, rest = text.split("<!-- board:start -->", 1)
        tail = rest.split("<!-- board:end -->", 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--boards", default="1,100,1000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    bench = Bench(args.samples)
    await bench.setup()
    try:
        for n in (int(x) for x in args.boards.split(",")):
            await bench.latency(n)
        await bench.sustained()
        await bench.storm()
        await bench.stalled()
    finally:
        await bench.teardown()
    section = render(bench)
    print(section)
    if not args.no_write:
        write(section)
        progress("BENCHMARKS.md updated")


if __name__ == "__main__":
    asyncio.run(main())
