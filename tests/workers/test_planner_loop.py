"""The planner loop: a commit wakes it for new events; the clock-driven parts (timed rules, due
escalations, redeliveries) run once per tick, however often commits wake it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from workers.pipeline import COALESCE_SECONDS, AlertPipeline

WAIT = 10.0  # a hang guard


class Recording(AlertPipeline):
    def __init__(self, tick_seconds: float) -> None:
        runtime: Any = SimpleNamespace(database=SimpleNamespace(on_commit=lambda callback: None))
        super().__init__(runtime, tick_seconds=tick_seconds, redeliver_after_seconds=90)
        self.passes: list[bool] = []
        self.ran = threading.Semaphore(0)

    def run_once(self, *, timed: bool = True) -> int:
        self.passes.append(timed)
        self.ran.release()
        return 0

    def wake_and_wait(self) -> None:
        self.wake()
        assert self.ran.acquire(timeout=WAIT)


def test_commits_wake_the_event_pass_and_the_timed_part_waits_for_its_tick() -> None:
    pipeline = Recording(tick_seconds=3.0)
    pipeline.start()
    try:
        assert pipeline.ran.acquire(timeout=WAIT)  # the first pass runs everything
        for _ in range(5):
            pipeline.wake_and_wait()
        time.sleep(3.1)  # a tick has passed: the next wake-up runs the timed part too
        while pipeline.ran.acquire(timeout=0):  # a pass the tick itself ran meanwhile
            pass
        pipeline.wake_and_wait()
    finally:
        pipeline.stop()
    assert pipeline.passes[0] is True
    assert pipeline.passes[1:6] == [False] * 5
    assert True in pipeline.passes[6:], "after a tick the timed part ran again"


def test_a_burst_of_commits_makes_one_pass() -> None:
    pipeline = Recording(tick_seconds=3600)
    pipeline.start()
    try:
        assert pipeline.ran.acquire(timeout=WAIT)
        for _ in range(20):  # twenty commits in a burst, well inside the coalescing window
            pipeline.wake()
        assert pipeline.ran.acquire(timeout=WAIT)
        time.sleep(COALESCE_SECONDS * 6)
    finally:
        pipeline.stop()
    assert len(pipeline.passes) == 2, pipeline.passes
