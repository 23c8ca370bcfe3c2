"""The reliability rig: our own PostgreSQL and Redis, `b40 serve` and `b40 worker` processes,
local sinks for e-mail, SMS and webhooks, and the chaos helpers (signals, backend termination,
server restarts). Everything listens on 127.0.0.1 on free ports and is torn down by pid."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from tests.conftest import free_port

PG_BIN = Path(os.environ.get("B40_PG_BIN", "/usr/lib/postgresql/15/bin"))
ADMIN_TOKEN = "reliability-admin-token"
ROOT = Path(__file__).resolve().parents[2]
POISON_PHONE = "+381999999999"  # the SMS sink always fails for this number: a poison job
WAIT = 60.0  # hang guard for starts and convergence, never a speed assertion


def full_length() -> bool:
    """B40_RELIABILITY_FULL=1: the issue's durations instead of CI's shorter ones."""
    return os.environ.get("B40_RELIABILITY_FULL", "") not in ("", "0")


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """A PostgreSQL cluster of our own (initdb into a temp dir), so it can be killed."""

    def __init__(self, *, fsync: bool) -> None:
        self.port = free_port()
        self.fsync = fsync
        self.dir = Path(tempfile.mkdtemp(prefix="b40-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> Postgres:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.start()
        return self

    def _options(self) -> str:
        return " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.dir}",
                "-c max_connections=300",
                f"-c fsync={'on' if self.fsync else 'off'}",
                f"-c synchronous_commit={'on' if self.fsync else 'off'}",
                "-c full_page_writes=" + ("on" if self.fsync else "off"),
                "-c shared_buffers=64MB",
            ]
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._ctl("-o", self._options(), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut; a short outage."""
        self._ctl("-o", self._options(), "-l", str(self.log), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        from config.settings import Settings
        from server.db.migrate import upgrade

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        upgrade(Settings(database_url=url).database_url)
        return url

    def terminate_backends(self, database: str) -> int:
        """Cut every application connection to `database` (pg_terminate_backend)."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        return len(rows)


class RedisServer:
    """redis-server of our own; with `appendonly` its stream survives a kill -9."""

    def __init__(self, *, appendonly: bool) -> None:
        self.port = free_port()
        self.appendonly = appendonly
        self.dir = Path(tempfile.mkdtemp(prefix="b40-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", ""]
        args += ["--appendonly", "yes" if self.appendonly else "no"]
        if self.appendonly:
            args += ["--appendfsync", "always"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                client.ping()
                # An AOF replay after a crash can still be loading: wait until it is done.
                if client.info("persistence").get("loading", 0) == 0:
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proc:
    """A `b40` subprocess with its output in a log file; stopped by pid."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def spawn(self) -> Proc:
        self.starts += 1
        handle = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        handle.write(f"\n==== start {self.starts} at {time.time():.3f}\n".encode())
        handle.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        handle.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.send(sig)
            self.wait(20)

    def children(self) -> list[int]:
        """Direct child pids (an RQ worker's work-horse)."""
        if not self.alive():
            return []
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ApiServer(Proc):
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        super().__init__(name, ["serve", "--port", str(self.port)], env, log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        self.spawn()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz:\n{self.tail()}")


class Worker(Proc):
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, [], env, log_dir)

    @property
    def rq_name(self) -> str:
        # A killed worker stays registered until its heartbeat expires: a restart needs a
        # fresh name.
        return f"{self.name}-{self.starts}"

    def start(self) -> Worker:
        self.args = ["worker", "--name", f"{self.name}-{self.starts + 1}"]
        return self.spawn()  # type: ignore[return-value]

    def horse(self, timeout: float = 10.0) -> int | None:
        """The forked work-horse's pid while it runs a job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kids = self.children()
            if kids:
                return kids[0]
            time.sleep(0.02)
        return None


# ---------------------------------------------------------------------------- the sinks


@dataclass
class Sinks:
    """E-mail (aiosmtpd), SMS gateway and webhooks (one small HTTP server): every call is
    recorded with its idempotency key; each answer is delayed, like a slow provider. A phone
    number or webhook path containing "poison" always fails (HTTP 500)."""

    delay: tuple[float, float] = (0.05, 0.3)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Sinks:
        from aiosmtpd.controller import Controller

        sinks = self

        class Mail:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                import asyncio

                await asyncio.sleep(random.uniform(*sinks.delay))
                message = message_from_bytes(envelope.content)
                sinks.record("email", str(message["X-B40-Idempotency-Key"]), envelope.rcpt_tos)
                return "250 OK"

        self.smtp_port = free_port()
        self._smtp = Controller(Mail(), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()

        class Http(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(random.uniform(*sinks.delay))
                kind = "sms" if self.path.startswith("/sms") else "webhook"
                key = self.headers.get("Idempotency-Key", "")
                poison = "poison" in self.path or POISON_PHONE.encode() in body
                sinks.record(kind, key, self.path, failed=poison)
                self.send_response(500 if poison else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def record(self, kind: str, key: str, to: Any, *, failed: bool = False) -> None:
        with self.lock:
            self.calls.append(
                {"kind": kind, "key": key, "to": to, "failed": failed, "t": time.time()}
            )

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.smtp_port}"

    @property
    def sms_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/sms"

    def webhook_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/hook/{name}"

    def delivered(self) -> Counter[str]:
        """Successful calls per idempotency key (raw: a repeat counts twice)."""
        with self.lock:
            return Counter(c["key"] for c in self.calls if not c["failed"])

    def first_delivery(self) -> dict[str, float]:
        with self.lock:
            out: dict[str, float] = {}
            for c in self.calls:
                if not c["failed"]:
                    out.setdefault(c["key"], c["t"])
            return out

    def stop(self) -> None:
        self._smtp.stop()
        self._http.shutdown()


# ------------------------------------------------------------------------- the whole rig


@dataclass
class Rig:
    """One deployment: a database on our PostgreSQL, our Redis, API processes and workers."""

    pg: Postgres
    redis: RedisServer | None
    database: str
    log_dir: Path
    sinks: Sinks | None = None
    prefix: str = "b40rel"
    extra_env: dict[str, str] = field(default_factory=dict)
    apis: list[ApiServer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.pg.url(self.database)

    def env(self) -> dict[str, str]:
        env = {
            "B40_DATABASE_URL": self.database_url,
            "B40_REDIS_URL": self.redis.url if self.redis else "",
            "B40_REDIS_PREFIX": self.prefix,
            "B40_ADMIN_TOKEN": ADMIN_TOKEN,
            "B40_DEMO": "0",
            "B40_ALERT_SIGNING_SECRET": "reliability-secret",
            "B40_OUTBOX_DIR": str(self.log_dir / "outbox"),
            "PYTHONUNBUFFERED": "1",
            # One admin token stands in for 40 cities' operators: the per-token write limit
            # (20/s, burst 200) would otherwise throttle the whole network's load as one city.
            "B40_RATE_LIMIT_WRITES_PER_SECOND": "5000",
            "B40_RATE_LIMIT_WRITE_BURST": "5000",
        }
        if self.sinks is not None:
            env["B40_SMTP_URL"] = self.sinks.smtp_url
            env["B40_SMS_GATEWAY_URL"] = self.sinks.sms_url
            env["B40_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the webhook sink is on 127.0.0.1
        return {**env, **self.extra_env}

    def api(self, **env: str) -> ApiServer:
        server = ApiServer(f"api{len(self.apis) + 1}", {**self.env(), **env}, self.log_dir)
        self.apis.append(server)
        return server.start()

    def worker(self, **env: str) -> Worker:
        process = Worker(f"worker{len(self.workers) + 1}", {**self.env(), **env}, self.log_dir)
        self.workers.append(process)
        return process.start()

    def client(self, api: ApiServer | None = None) -> httpx.Client:
        base = (api or self.apis[0]).url
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=WAIT
        )

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=10) as conn:
            return conn.execute(query, args or None).fetchall()

    def stop(self) -> None:
        for process in [*self.workers, *self.apis]:
            process.stop(signal.SIGKILL)


def make_rig(
    pg: Postgres,
    tmp: Path,
    *,
    redis_server: RedisServer | None = None,
    sinks: Sinks | None = None,
    **extra_env: str,
) -> Rig:
    name = f"rel_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    pg.create_database(name)
    return Rig(pg, redis_server, name, tmp, sinks=sinks, prefix=name, extra_env=extra_env)


def setup_cities(client: httpx.Client, cities: list[str]) -> dict[str, int]:
    """One active incident per city, for requests to point at."""
    out = {}
    for i, city in enumerate(cities):
        response = client.post(
            "/api/v1/incidents",
            json={
                "city": city,
                "kind": "wildfire",
                "title": f"Reliability incident {i}",
                "lat": 42.0 + (i % 7) * 0.3,
                "lon": 21.0 + (i % 5) * 0.4,
                "severity": "high",
            },
        )
        assert response.status_code == 201, response.text
        out[city] = int(response.json()["id"])
    return out


def city_slugs(client: httpx.Client, count: int) -> list[str]:
    response = client.get("/api/v1/cities")
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    return sorted(c["slug"] for c in items)[:count]


def print_figure(name: str, figures: dict[str, Any], results_dir: Path | None = None) -> None:
    """The measured values, printed (pytest -s) and appended to the results file."""
    line = json.dumps({"figure": name, **figures}, default=str)
    print(f"\nFIGURE {line}")
    target = Path(os.environ.get("B40_RELIABILITY_RESULTS", ROOT / "var" / "reliability.jsonl"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
