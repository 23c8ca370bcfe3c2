"""Live board benchmark: API POST -> board latency, throughput, reconnect storm, stalled board.

Production shape: `b40 serve` on PostgreSQL + Redis, boards over real websockets on loopback,
measured in the same run against a bare relay (bench/board_baseline.py: Redis Stream ->
websocket, nothing else). Writes its section of BENCHMARKS.md.

Latency is sampled closed-loop: one event, every board receives it, a short pause, the next.
An open loop that posts faster than N boards can be served measures a queue, not latency
(throughput has its own row). Both sides run in the same run with both sets of boards
connected, paired sample by sample (ours, then the bare relay), and each figure is the median
over `--repeats`. The server logs when each commit woke the relay (logger `b40.trace`), so
POST -> board splits into POST -> commit (HTTP, auth, the use case, the commit) and
commit -> board (relay, Redis, hub, socket).

    .venv/bin/python bench/board.py [--samples 40] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
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
PAUSE = 0.02  # between closed-loop samples
IDLE_RECONNECT_SECONDS = 2.0  # the poster's connection, idle longer than this, is renewed
# `b40 serve` with the relay's commit trace on (off in production: one isEnabledFor check).
# Hops traced: "committed" (after-commit hook), "published" (relay XADD done), "received" (hub
# XREAD returned), and "gc" (a collection that took over 5 ms, with its generation).
SERVE = (
    "import gc, logging, sys, time; trace = logging.getLogger('b40.trace'); "
    "trace.setLevel(logging.DEBUG); started = [0.0]\n"
    "def gc_trace(phase, info):\n"
    "    if phase == 'start': started[0] = time.perf_counter(); return\n"
    "    ms = (time.perf_counter() - started[0]) * 1000\n"
    "    if ms > 5: trace.debug('gc', extra={'gen': info['generation'], 'ms': ms, 'at': time.time()})\n"
    "gc.callbacks.append(gc_trace)\n"
    "sys.argv = ['b40', 'serve', '--port', sys.argv[1]]\n"
    "from server.cli import main; main()"
)


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


def pct_index(n: int, p: float) -> int:
    return min(n - 1, int(round(p / 100 * (n - 1))))


def pct(values: list[float], p: float) -> float:
    return sorted(values)[pct_index(len(values), p)]


def worst(k: int) -> str:
    """'worst', 'second-worst'...: which sample a percentile picks, counted from the top."""
    return {1: "worst", 2: "second-worst", 3: "third-worst"}.get(k, f"{k}th-worst")


# Marks being waited for: how many boards still miss each, and the event set when none does.
# The sampler waits on it instead of polling the boards every millisecond, which kept the load
# generator awake competing for the 2 cores with the servers it measures.
WAITING: dict[str, tuple[list[int], asyncio.Event]] = {}
# The frame our boards received for each mark (the first board's copy): the bare relay then
# carries the same bytes (`Bench.xadd`).
DELIVERED: dict[str, str] = {}


def arrived(mark: str) -> None:
    waiting = WAITING.get(mark)
    if waiting is not None:
        waiting[0][0] -= 1
        if waiting[0][0] <= 0:
            waiting[1].set()


class Board:
    """One connected board: counts event frames, timestamps marked ones, resumes like the page.

    On `resync` or a dropped connection it reconnects with after=<last seq>, as the page does.
    """

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.seqs: dict[str, int] = {}
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
                        now = time.time()  # wall clock: compared with the server's trace
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
                        if found and found.group(0) not in self.arrivals:
                            self.arrivals[found.group(0)] = now
                            arrived(found.group(0))
                            if self.last_seq is not None and text.startswith('{"seq":'):
                                self.seqs.setdefault(found.group(0), self.last_seq)
                                DELIVERED.setdefault(found.group(0), text)
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


class Poster:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer, nothing more.

    The latency samples time the server, not the measuring client: httpx spent about 0.5 ms of
    its own per POST here (0.6 vs 0.1 ms against a trivial endpoint), inside the load
    generator that also runs the boards. The bare relay's side is an XADD from redis-py.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used_at = 0.0

    async def post(self, path: str, payload: object) -> tuple[int, bytes]:
        if time.monotonic() - self.used_at > IDLE_RECONNECT_SECONDS:
            await self.close()  # before uvicorn's keep-alive timeout (5 s) closes it under us
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = json.dumps(payload).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {self.token}"
            f"\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
        length = next(int(v) for k, v in fields.items() if k.lower() == "content-length")
        answer = await self.reader.readexactly(length)
        self.used_at = time.monotonic()
        return status, answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class Sample:
    """One event: when it was posted, when the POST answered, and when each board got it."""

    def __init__(self, mark: str, sent: float) -> None:
        self.mark = mark
        self.sent = sent
        self.answered = sent
        self.latencies: list[float] = []
        self.seq: int | None = None


async def take_sample(
    boards: list[Board], post: Callable[[str], Awaitable[None]], mark: str
) -> Sample:
    """Post one event and wait until every board has it."""
    everyone = asyncio.Event()
    WAITING[mark] = ([len(boards)], everyone)
    sample = Sample(mark, time.time())
    await post(mark)
    sample.answered = time.time()
    try:
        await asyncio.wait_for(everyone.wait(), 30)
    except TimeoutError:
        progress(f"  WARNING: {mark} missing on some boards after 30 s")
    del WAITING[mark]
    sample.latencies = [
        (b.arrivals[mark] - sample.sent) * 1000 for b in boards if mark in b.arrivals
    ]
    sample.seq = next((b.seqs[mark] for b in boards if mark in b.seqs), None)
    return sample


async def measure(
    boards: list[Board], post: Callable[[str], Awaitable[None]], samples: int, run: int
) -> list[Sample]:
    """Closed loop: post one event, wait until every board has it, pause, post the next."""
    out: list[Sample] = []
    for i in range(samples):
        out.append(await take_sample(boards, post, f"bench-{run}-{i}"))
        await asyncio.sleep(PAUSE)
    return out


def spread(samples: list[Sample]) -> float:
    """Median time from an event's first board to its last: the per-socket work of a fan-out."""
    gaps = [max(s.latencies) - min(s.latencies) for s in samples if s.latencies]
    return statistics.median(gaps) if gaps else 0.0


def latencies(samples: list[Sample]) -> list[float]:
    return [x for s in samples for x in s.latencies]


def hops(trace: Path, message: str = "committed") -> list[tuple[int, float]]:
    """(seq, wall time) of every traced hop of one kind, in seq order."""
    out = []
    for line in trace.read_text().splitlines():
        if '"b40.trace"' in line and f'"message": "{message}"' in line:
            record = json.loads(line)
            out.append((int(record["seq"]), float(record["at"])))
    return sorted(out)


def commits(trace: Path) -> list[tuple[int, float]]:
    """(last seq, wall time) of every commit the server traced, in seq order."""
    return hops(trace, "committed")


def gc_pauses(trace: Path) -> list[tuple[float, int, float]]:
    """(wall time at the end, generation, ms) of every traced collection over 5 ms."""
    out = []
    for line in trace.read_text().splitlines():
        if '"b40.trace"' in line and '"message": "gc"' in line:
            record = json.loads(line)
            out.append((float(record["at"]), int(record["gen"]), float(record["ms"])))
    return out


def explain(samples: list[Sample], trace: Path, worst: int = 3) -> None:
    """Print the slowest samples hop by hop, with any collection that ended meanwhile."""
    kinds = {k: hops(trace, k) for k in ("committed", "published", "received")}
    pauses = gc_pauses(trace)

    def at(kind: str, seq: int) -> float | None:
        rows = kinds[kind]
        k = bisect.bisect_left(rows, (seq, 0.0))
        return rows[k][1] if k < len(rows) else None

    slow = sorted((s for s in samples if s.seq and s.latencies), key=lambda s: -max(s.latencies))
    for s in slow[:worst]:
        assert s.seq is not None
        marks = [("POST answered", s.answered)]
        marks += [(k, t) for k in kinds if (t := at(k, s.seq)) is not None]
        marks += [("first board", s.sent + min(s.latencies) / 1000)]
        marks += [("last board", s.sent + max(s.latencies) / 1000)]
        text = ", ".join(f"{name} +{(t - s.sent) * 1000:.0f}" for name, t in marks)
        end = s.sent + max(s.latencies) / 1000
        during = [f"gen{g} {ms:.0f} ms" for t, g, ms in pauses if s.sent - 0.01 <= t <= end]
        progress(f"    slow {s.mark} seq {s.seq}: {text} ms; gc: {', '.join(during) or 'none'}")


def split(samples: list[Sample], trace: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
    """POST -> commit (one per event) and commit -> board (every board x every event), ms."""

    seqs = [seq for seq, _ in trace]
    to_commit: list[float] = []
    to_board: list[float] = []
    for s in samples:
        if s.seq is None:
            continue
        k = bisect.bisect_left(seqs, s.seq)  # the commit that made this seq visible
        if k == len(seqs):
            continue
        committed = trace[k][1]
        to_commit.append((committed - s.sent) * 1000)
        to_board += [x - (committed - s.sent) * 1000 for x in s.latencies]
    return to_commit, to_board


def median_of(runs: list[list[float]], p: float) -> float:
    return statistics.median(pct(r, p) for r in runs if r)


class Bench:
    def __init__(self, samples: int, repeats: int = 3) -> None:
        self.samples = samples
        self.repeats = repeats
        self.run_id = 0
        self.diag = False
        self.planner_in_api = False  # True: the placement before docker-compose moved it
        self.load = (0.0, 0.0)  # 1-minute load average at the start and at the end
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
        if not self.planner_in_api:  # as docker-compose.yml runs it: in a worker process
            env["B40_ALERT_PIPELINE"] = "0"
        self.port = free_port()
        self.trace = Path(tempfile.mkstemp(prefix="b40-board-trace-", suffix=".log")[1])
        self.server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.trace.open("wb"),
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
        self.worker = (
            None
            if self.planner_in_api
            else subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker", "--with-scheduler", "--planner"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
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
        self.poster = Poster(self.port, TOKEN)
        self.incident = incident.json()["id"]
        self.board_url = f"ws://127.0.0.1:{self.port}/ws/board?token={TOKEN}"
        self.base_url = f"ws://127.0.0.1:{self.base_port}/ws"
        # Frames for the bare relay where ours has none to lend (the sustained phase):
        # the size of ours.
        self.frame_pad = "x" * 900
        self.carried: tuple[str, str] | None = None  # (our mark, our frame) of this pair

    async def teardown(self) -> None:
        await self.api.aclose()
        await self.poster.close()
        if self.worker is not None and self.worker.poll() is not None:
            progress(f"  WARNING: the planner's worker exited early ({self.worker.returncode})")
        for process in (self.server, self.baseline, self.worker):
            if process is not None:
                process.terminate()
                process.wait(15)
        async for key in self.redis.scan_iter(f"{self.prefix}:*"):
            await self.redis.delete(key)
        await self.redis.aclose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self.trace.unlink(missing_ok=True)

    async def post_request(self, mark: str) -> None:
        status, body = await self.poster.post(
            "/api/v1/requests",
            {
                "city": "athens",
                "incident_id": self.incident,
                "priority": "high",
                "items": [{"capability": "FIRE_ENGINE", "quantity": 1}],
                "note": mark,
            },
        )
        if status != 201:
            raise RuntimeError(f"POST /api/v1/requests answered {status}: {body[:300]!r}")

    async def xadd(self, mark: str) -> None:
        """The bare relay's event: the frame ours delivered for the same pair, its mark
        swapped. Same bytes, so per-message deflate does the same work on both sides (a
        padding of one repeated letter compresses with far less)."""
        ours = self.carried
        if ours is None:
            frame = json.dumps({"event": "request.created", "note": mark, "pad": self.frame_pad})
        else:
            frame = ours[1].replace(ours[0], mark)
        await self.redis.xadd(self.baseline_key, {"f": frame})

    def next_run(self) -> int:
        self.run_id += 1
        return self.run_id

    async def latency(self, n: int) -> None:
        """Both sides connected at once; each repeat pairs ours and the bare relay per sample."""
        progress(f"latency with {n} boards: connecting ours and the bare relay's")
        ours_boards = await open_boards(self.board_url, n)
        bare_boards = await open_boards(self.base_url, n)
        ours: list[list[float]] = []
        bare: list[list[float]] = []
        to_commit: list[list[float]] = []
        to_board: list[list[float]] = []
        for r in range(self.repeats):
            samples, bare_samples = await self.paired(ours_boards, bare_boards)
            bare.append(latencies(bare_samples))
            ours.append(latencies(samples))
            a, b = split(samples, commits(self.trace))
            to_commit.append(a)
            to_board.append(b)
            if self.diag:
                explain(samples, self.trace)
            progress(
                f"  repeat {r + 1}: ours p50/p99 {pct(ours[-1], 50):.1f}/{pct(ours[-1], 99):.1f} "
                f"ms (POST->commit p50 {pct(a, 50) if a else 0:.1f}, commit->board p99 "
                f"{pct(b, 99) if b else 0:.1f}), bare {pct(bare[-1], 50):.1f}/"
                f"{pct(bare[-1], 99):.1f} ms; first -> last board p50 ours {spread(samples):.1f}, "
                f"bare {spread(bare_samples):.1f} ms"
            )
        await close_boards(ours_boards + bare_boards)
        self.results[f"latency_{n}"] = (ours, bare, to_commit, to_board)

    async def paired(
        self, ours_boards: list[Board], bare_boards: list[Board]
    ) -> tuple[list[Sample], list[Sample]]:
        """One repeat, sample by sample: ours, then the bare relay carrying the same frame.

        Paired, not in blocks of a whole repeat each: a burst of load from the machine's other
        tenants then falls on both sides alike instead of on whichever block it hit, so the
        ratio measures the servers rather than the moment."""
        ours_run, bare_run = self.next_run(), self.next_run()
        ours: list[Sample] = []
        bare: list[Sample] = []
        for i in range(self.samples):
            sample = await take_sample(ours_boards, self.post_request, f"bench-{ours_run}-{i}")
            ours.append(sample)
            frame = DELIVERED.pop(sample.mark, None)
            self.carried = None if frame is None else (sample.mark, frame)
            await asyncio.sleep(PAUSE)
            bare.append(await take_sample(bare_boards, self.xadd, f"bench-{bare_run}-{i}"))
            DELIVERED.pop(bare[-1].mark, None)  # the bare relay's copy of ours: nothing to carry
            await asyncio.sleep(PAUSE)
        return ours, bare

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
        progress(f"reconnect storm: {n} boards at once, then one event")
        boards = [Board() for _ in range(n)]
        started = time.perf_counter()
        for board in boards:
            board.task = asyncio.create_task(board.run(self.board_url))
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in boards)), 120)
        connected = time.perf_counter() - started
        await asyncio.sleep(0.5)
        got = latencies(await measure(boards, self.post_request, 1, self.next_run()))
        await close_boards(boards)
        self.results["storm"] = (n, connected, len(got), got)
        progress(f"  {len(got)}/{n} boards got it; all connected in {connected:.2f} s")

    async def pump(self, boards: list[Board], events: int) -> None:
        """Bulk unit registrations (500 events per POST), then wait until every board has them."""
        for i in range(0, events, 500):
            r = await self.api.post(
                "/api/v1/resources/bulk",
                json={
                    "city": "zagreb",
                    "capability": "FIRE_ENGINE",
                    "quantity": 500,
                    "callsign_prefix": f"T{self.next_run()}-{i}",
                },
            )
            r.raise_for_status()
        end = (await self.api.get("/api/v1/events", params={"limit": 1})).json()["last_seq"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any((b.last_seq or 0) < end for b in boards):
            await asyncio.sleep(0.1)

    async def stalled(
        self, stall: bool, n: int = 100, fill: int = 2_000, flood: int = 6_000
    ) -> None:
        """n-1 reading boards, plus one that stops reading (or, as the control, nothing).

        `fill` events clog the stalled board's socket (about 2.8 MB on loopback) without
        overflowing its event buffer, so it is still subscribed while the others are measured;
        `flood` more overflow it; then it reads again, as a frozen tab that wakes up would.
        """
        name = "stalled" if stall else "control"
        progress(f"{name}: {n - 1} boards{' + 1 stalled' if stall else ''}")
        boards = await open_boards(self.board_url, n - 1)
        stalled = stalled_socket(self.port) if stall else None
        before = latencies(await measure(boards, self.post_request, self.samples, self.next_run()))
        rss = [rss_kib(self.server.pid)]
        await self.pump(boards, fill)
        during = latencies(await measure(boards, self.post_request, self.samples, self.next_run()))
        rss.append(rss_kib(self.server.pid))
        await self.pump(boards, flood)
        rss.append(rss_kib(self.server.pid))
        reader = asyncio.create_task(asyncio.to_thread(drain, stalled)) if stalled else None
        after = latencies(await measure(boards, self.post_request, self.samples, self.next_run()))
        rss.append(rss_kib(self.server.pid))
        await close_boards(boards)
        seen = await reader if reader else (0, False, False)
        self.results[name] = (n, fill, flood, before, during, after, rss, seen)
        progress(
            f"  p99 before/during/after {pct(before, 99):.1f}/{pct(during, 99):.1f}/"
            f"{pct(after, 99):.1f} ms; RSS {[r // 1024 for r in rss]} MiB; stalled board {seen}"
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


def fmt(values: list[float], p: float) -> str:
    return f"{pct(values, p):.1f}" if values else "-"


def render(bench: Bench, stalls: dict[str, object]) -> str:
    r = bench.results
    lines = [
        "<!-- board:start -->",
        "## Live board: POST to board latency, throughput, storm, stalled board",
        "",
        f"Command: `{COMMAND} --samples {bench.samples} --repeats {bench.repeats}"
        f"{' --planner-in-api' if bench.planner_in_api else ''}` "
        f"({time.strftime('%Y-%m-%d')}). Machine: {os.cpu_count()} CPU cores SHARED with other "
        f"work (1-minute load average {bench.load[0]:.2f} at the start, {bench.load[1]:.2f} at "
        "the end), so treat single figures as noisy; each figure is the median over the "
        "repeats. Processes as docker-compose.yml runs them: one `b40 serve` (PostgreSQL + "
        "Redis, uvicorn's default websocket implementation with its default per-message "
        "deflate, on both sides), "
        + (
            "the alert planner inside it (`--planner-in-api`), "
            if bench.planner_in_api
            else "the alert planner in a `b40 worker --planner` process, "
        )
        + "the bare relay in its own uvicorn process, and the load generator (the boards, "
        "websocket clients in one Python process, and the poster) in another.",
        "",
        "Ours: `POST /api/v1/requests` until the `request.created` frame arrives on every board "
        "(HTTP, auth, the use case and its commit, the committed rows handed to the relay, "
        "hand-over to this process's hub, per-board queue and socket; the XADD for other "
        "processes' boards goes out right after the hand-over). The POST goes out on one "
        "keep-alive HTTP/1.1 connection written by hand (`Poster`): httpx costs about 0.5 ms of "
        "its own per call, which is the measuring client's time, not the server's. Bare relay (`bench/board_baseline.py`): XADD until the "
        "frame arrives (Redis Stream -> websocket, nothing else: no HTTP request, no database), "
        "carrying the frame ours delivered for the same sample with its mark swapped, so both "
        "sides' per-message deflate compresses the same bytes. "
        "So the ratio charges ours with the POST's own time; the split shows it: POST -> commit "
        "(one per event) and commit -> board (every board x every event), from the server's "
        "commit trace in the same run. Sampling is closed-loop: one event, every board receives "
        f"it, {PAUSE * 1000:.0f} ms pause, the next ({bench.samples} events x {bench.repeats} "
        "repeats per row, both sets of boards connected, the sides paired sample by sample: "
        "ours, then the bare relay, so the machine's noise falls on both alike). A "
        "percentile pools every board's arrival of every event: with one board the p99 of "
        f"{bench.samples} is the {worst(bench.samples - pct_index(bench.samples, 99))} event; "
        "with 100 or 1,000 boards it is set by the fan-outs of the one or two slowest events. "
        "Either way it moves with the machine's noise: compare it within a row only.",
        "",
        "| boards | ours p50 | ours p99 | bare p50 | bare p99 | p99 ratio | POST->commit p50/p99 "
        "| commit->board p50/p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in (1, 100, 1000):
        if f"latency_{n}" not in r:
            continue
        ours, bare, to_commit, to_board = r[f"latency_{n}"]  # type: ignore[misc]
        o50, o99 = median_of(ours, 50), median_of(ours, 99)
        b50, b99 = median_of(bare, 50), median_of(bare, 99)
        c50, c99 = median_of(to_commit, 50), median_of(to_commit, 99)
        d50, d99 = median_of(to_board, 50), median_of(to_board, 99)
        lines.append(
            f"| {n} | {o50:.1f} | {o99:.1f} | {b50:.1f} | {b99:.1f} | {o99 / b99:.2f} | "
            f"{c50:.1f} / {c99:.1f} | {d50:.1f} / {d99:.1f} |"
        )
    lines.append("")
    lines.append("All times in ms.")
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
        n, connected, got, lat = r["storm"]  # type: ignore[misc]
        lines += [
            "",
            f"Reconnect storm: {n} boards connected at once (each gets a snapshot) in "
            f"{connected:.2f} s; then one event: {got}/{n} boards received it, "
            f"p50/p99 {fmt(lat, 50)}/{fmt(lat, 99)} ms.",
        ]
    if "stalled" in stalls and "control" in stalls:
        n, fill, flood, *_ = stalls["stalled"]  # type: ignore[misc]
        lines += [
            "",
            f"One stalled board among {n} (handshake, then it stops reading). Each case on a "
            "fresh server and database; the control is the same run with no stalled board. "
            f"{bench.samples} events per phase: before any load; after {fill:,} events clogged "
            f"the stalled board's socket (it is still subscribed, its buffer not yet full); after "
            f"{flood:,} more overflowed it (it was dropped and the others drained); then it "
            "reads again.",
            "",
            "| case | others p50/p99 before | during the stall | after the overflow | server RSS MiB "
            "(start, clogged, flooded, end) | stalled board on reading again |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name in ("control", "stalled"):
            _n, _f, _fl, before, during, after, rss, seen = stalls[name]  # type: ignore[misc]
            received, resync, closed = seen
            outcome = (
                f"{received / 1024:,.0f} KiB of frames, then "
                f"{'`resync`' if resync else 'no `resync`'}, "
                f"{'closed' if closed else 'not closed'}"
                if name == "stalled"
                else "-"
            )
            lines.append(
                f"| {name} | {fmt(before, 50)}/{fmt(before, 99)} | {fmt(during, 50)}/"
                f"{fmt(during, 99)} | {fmt(after, 50)}/{fmt(after, 99)} | "
                f"{', '.join(str(x // 1024) for x in rss)} | {outcome} |"
            )
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--boards", default="1,100,1000")
    parser.add_argument("--skip", default="", help="comma list of: sustained,storm,stalled")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--diag", action="store_true", help="print the slowest samples' hops")
    parser.add_argument(
        "--planner-in-api",
        action="store_true",
        help="run the alert planner inside b40 serve (the old placement) instead of a worker",
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    bench = Bench(args.samples, args.repeats)
    bench.diag = args.diag
    bench.planner_in_api = args.planner_in_api
    started_load = os.getloadavg()[0]
    await bench.setup()
    try:
        for n in (int(x) for x in args.boards.split(",") if x):
            await bench.latency(n)
        if "sustained" not in skip:
            await bench.sustained()
        if "storm" not in skip:
            await bench.storm()
    finally:
        await bench.teardown()
    stalls: dict[str, object] = {}
    if "stalled" not in skip:
        for stall in (False, True):  # each on a fresh server and database
            case = Bench(args.samples)
            case.planner_in_api = args.planner_in_api
            await case.setup()
            try:
                await case.stalled(stall)
            finally:
                await case.teardown()
            stalls.update(case.results)
    bench.load = (started_load, os.getloadavg()[0])
    section = render(bench, stalls)
    print(section)
    if not args.no_write:
        write(section)
        progress("BENCHMARKS.md updated")


if __name__ == "__main__":
    asyncio.run(main())
