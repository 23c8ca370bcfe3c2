"""Running the load generator beside a chaos schedule, and the checkers that hold its history
against the database (the ground truth) afterwards."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.rig import ADMIN_TOKEN, ROOT, Rig


@dataclass
class LoadRun:
    """The load generator as a subprocess; `wait_phase` lets a test time its faults."""

    config: dict[str, Any]
    tmp: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.tmp / f"history-{self.config['tag']}.json"

    def start(self) -> LoadRun:
        path = self.tmp / f"load-{self.config['tag']}.json"
        path.write_text(json.dumps(self.config))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.loadgen", str(path), str(self.out)],
            cwd=ROOT,
            stdout=open(self.tmp / f"loadgen-{self.config['tag']}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        return self

    def phase(self) -> str:
        try:
            return Path(str(self.out) + ".phase").read_text()
        except OSError:
            return ""

    def wait_phase(self, name: str, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while self.phase() != name and time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"load generator exited early ({self.process.returncode})")
            time.sleep(0.05)
        if self.phase() != name:
            raise RuntimeError(f"load generator never reached {name!r} (at {self.phase()!r})")
        return time.time()

    def finish(self, timeout: float = 400) -> dict[str, Any]:
        assert self.process is not None
        self.process.wait(timeout=timeout)
        log = (self.tmp / f"loadgen-{self.config['tag']}.log").read_text(errors="replace")
        assert self.out.exists(), f"no history written:\n{log[-3000:]}"
        history: dict[str, Any] = json.loads(self.out.read_text())
        assert self.process.returncode == 0, f"load generator failed:\n{log[-3000:]}"
        return history


def load_config(
    rig: Rig,
    incidents: dict[str, int],
    *,
    tag: str,
    boards: int,
    burst: int,
    rate: float,
    duration: float,
    **extra: Any,
) -> dict[str, Any]:
    urls = [a.url for a in rig.apis]
    return {
        "api_urls": urls,
        "board_urls": urls,
        "token": ADMIN_TOKEN,
        "boards": boards,
        "burst": burst,
        "rate": rate,
        "duration": duration,
        "incidents": incidents,
        "tag": tag,
        **extra,
    }


@dataclass
class Verdict:
    """What the checkers found; `violations` must be empty for the figure to hold."""

    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(message)


def check(history: dict[str, Any], rig: Rig) -> Verdict:
    v = Verdict()
    check_ops(history, rig, v)
    check_boards(history, rig, v)
    return v


def check_ops(history: dict[str, Any], rig: Rig, v: Verdict) -> None:
    """Acknowledged writes exist exactly once, unknown ones at most once, refused ones never."""
    ops = history["ops"]
    tags = {op["op"] for op in ops}
    rows = rig.sql("SELECT note, id FROM aid_requests WHERE note IS NOT NULL")
    found: dict[str, list[int]] = {}
    for note, rid in rows:
        if note in tags:
            found.setdefault(note, []).append(int(rid))
    outcomes = Counter(op["outcome"] for op in ops)
    for op in ops:
        ids = found.get(op["op"], [])
        if op["outcome"] == "ok" and ids != [op["id"]]:
            v.fail(f"acknowledged {op['op']} (id {op['id']}) is in the database as {ids}")
        elif op["outcome"] == "unknown" and len(ids) > 1:
            v.fail(f"unknown {op['op']} was written {len(ids)} times")
        elif op["outcome"] == "failed" and ids:
            v.fail(f"refused {op['op']} ({op['statuses']}) was written anyway: {ids}")
    statuses = Counter(history["statuses"])
    five = {s: n for s, n in statuses.items() if s.isdigit() and int(s) >= 500}
    unknown_written = sum(1 for op in ops if op["outcome"] == "unknown" and found.get(op["op"]))
    latencies = sorted(op["t1"] - op["t0"] for op in ops if op["outcome"] == "ok")
    v.figures.update(
        posts=len(ops),
        ok=outcomes["ok"],
        failed=outcomes["failed"],
        unknown=outcomes["unknown"],
        unknown_written=unknown_written,
        statuses=dict(statuses),
        http_5xx=five,
        retry_after_missing=history["retry_after_missing"],
        post_p95_s=_pct(latencies, 95),
        post_p99_s=_pct(latencies, 99),
        burst_s=_round(history.get("burst_seconds")),
        duplicated_keys=sum(1 for ids in found.values() if len(ids) > 1),
    )


def check_boards(history: dict[str, Any], rig: Rig, v: Verdict) -> None:
    """Every board got every event after its start, once, in seq order; nothing else."""
    boards = history["boards"]
    final = history["final_seq"]
    first = min((b["start_seq"] or 0) for b in boards) if boards else 0
    truth = {
        int(seq): (kind, entity_id, float(created))
        for seq, kind, entity_id, created in rig.sql(
            "SELECT seq, type, entity_id, extract(epoch from created_at) FROM events "
            "WHERE seq > %s",
            first,
        )
    }
    lost = gaps = dups = foreign = 0
    latency: list[float] = []
    steady: list[float] = []  # events begun after the burst: the sustained-load figure
    load_start = history["phases"].get("load", float("inf"))
    for b in boards:
        seqs = [e[0] for e in b["events"]]
        start = b["start_seq"]
        if start is None:
            v.fail(f"board {b['board']} never connected")
            continue
        expected = list(range(start + 1, final + 1))
        got = [s for s in seqs if s <= final]
        if got != expected:
            missing = set(expected) - set(got)
            lost += len(missing)
            dups += len(got) - len(set(got))
            gaps += sum(1 for a, c in zip(got, got[1:], strict=False) if c != a + 1)
            v.fail(
                f"board {b['board']}: {len(missing)} missing (e.g. {sorted(missing)[:5]}), "
                f"{len(got) - len(set(got))} repeated"
            )
        for seq, kind, entity_id, t_recv in b["events"]:
            row = truth.get(seq)
            if row is None or row[0] != kind or str(row[1]) != str(entity_id):
                foreign += 1
                v.fail(f"board {b['board']} got seq {seq} {kind} {entity_id}; the log has {row}")
                continue
            latency.append(t_recv - row[2])
            if row[2] >= load_start:
                steady.append(t_recv - row[2])
    latency.sort()
    steady.sort()
    v.figures.update(
        boards=len(boards),
        events=final - first,
        board_events_received=sum(len(b["events"]) for b in boards),
        lost_events=lost,
        gaps=gaps,
        repeated_events=dups,
        foreign_events=foreign,
        commit_to_board_p50_s=_pct(latency, 50),
        commit_to_board_p99_s=_pct(latency, 99),
        commit_to_board_max_s=_round(latency[-1] if latency else None),
        steady_commit_to_board_p99_s=_pct(steady, 99),
        board_reconnects=sum(b["reconnects"] for b in boards),
        board_resyncs=sum(b["resyncs"] for b in boards),
        longest_board_outage_s=_round(max((b["longest_down"] for b in boards), default=0)),
        converged_after_load_s=_round(history.get("converged_after_load")),
    )


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1], 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


Chaos = Callable[[LoadRun], dict[str, Any]]


# The double-booking invariants, as SQL that runs on PostgreSQL and SQLite alike.
BOOKING_CHECKS = {
    "unit with more than one active deployment": (
        "SELECT resource_id FROM deployments WHERE status <> 'returned' "
        "GROUP BY resource_id HAVING count(*) > 1"
    ),
    "unit with more than one pending offer": (
        "SELECT resource_id FROM offers WHERE status = 'pending' "
        "GROUP BY resource_id HAVING count(*) > 1"
    ),
    "unit deployed but not in a deployed status": (
        "SELECT r.id FROM resources r JOIN deployments d ON d.resource_id = r.id "
        "AND d.status <> 'returned' "
        "WHERE r.status NOT IN ('mobilising', 'en_route', 'on_scene', 'returning')"
    ),
    "stranded: unit in a deployed status with no active deployment": (
        "SELECT r.id FROM resources r WHERE r.status IN "
        "('mobilising', 'en_route', 'on_scene', 'returning') AND NOT EXISTS "
        "(SELECT 1 FROM deployments d WHERE d.resource_id = r.id AND d.status <> 'returned')"
    ),
    "stranded: unit offered with no pending offer": (
        "SELECT r.id FROM resources r WHERE r.status = 'offered' AND NOT EXISTS "
        "(SELECT 1 FROM offers o WHERE o.resource_id = r.id AND o.status = 'pending')"
    ),
    "pending offer of a unit that is not offered": (
        "SELECT o.resource_id FROM offers o JOIN resources r ON r.id = o.resource_id "
        "WHERE o.status = 'pending' AND r.status <> 'offered'"
    ),
    "line given more units than it asked for": (
        "SELECT i.id FROM request_items i WHERE i.quantity < (SELECT count(*) FROM "
        "deployments d WHERE d.request_item_id = i.id AND d.status <> 'returned')"
    ),
}


def booking_violations(sql: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, list[Any]]:
    out = {}
    for name, query in BOOKING_CHECKS.items():
        rows = sql(query)
        if rows:
            out[name] = [r[0] for r in rows][:20]
    return out
