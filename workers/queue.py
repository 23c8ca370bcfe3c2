"""Where alert jobs go after commit: RQ on Redis, or an in-process runner (embedded default).

Both run the same functions of workers.jobs, addressed by id, with the same retry intervals.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from server.services.alerts import Escalate, Send

log = logging.getLogger(__name__)

DELIVER = "workers.jobs.deliver_alert"
ESCALATE = "workers.jobs.escalate_alert"
ON_DELIVERY_FAILURE = "workers.jobs.delivery_failed"
LIVE_STATUSES = frozenset({"queued", "scheduled", "deferred"})
# RQ's scheduler keeps whole-second scores and may run a job up to a second early; an early
# escalation would find the alert not yet due and do nothing.
SCHEDULER_RESOLUTION = timedelta(seconds=1)


def delivery_job_id(send: Send) -> str:
    return f"alert-{send.alert_id}-{send.channel}"


class AlertQueue(Protocol):
    def deliver(self, sends: Sequence[Send], *, again: bool = False) -> None:
        """Enqueue deliveries; `again` (a sweep) skips those already waiting in the queue."""
        ...

    def escalate(self, items: Sequence[Escalate]) -> None: ...

    def depth(self) -> dict[str, int]:
        """Jobs by state (queued, scheduled, started, failed) for /metrics."""
        ...

    def close(self) -> None: ...


class RqAlertQueue:
    def __init__(
        self, connection: Any, name: str, retry_intervals: Sequence[int], *, job_timeout: int
    ) -> None:
        from rq import Queue

        self.connection = connection
        self.queue = Queue(name, connection=connection)
        self.intervals = list(retry_intervals)
        self.job_timeout = job_timeout

    def deliver(self, sends: Sequence[Send], *, again: bool = False) -> None:
        from rq import Callback, Retry
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        for send in sends:
            job_id = delivery_job_id(send)
            if again:
                try:
                    status = Job.fetch(job_id, connection=self.connection).get_status()
                except NoSuchJobError:
                    status = None
                if status is not None and str(status) in LIVE_STATUSES:
                    continue
            self.queue.enqueue(
                DELIVER,
                send.alert_id,
                send.channel,
                job_id=job_id,
                retry=Retry(max=len(self.intervals), interval=self.intervals)
                if self.intervals
                else None,
                on_failure=Callback(ON_DELIVERY_FAILURE),
                job_timeout=self.job_timeout,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
            )

    def escalate(self, items: Sequence[Escalate]) -> None:
        for item in items:
            # A timer, not a sleep: the RQ scheduler (worker --with-scheduler) moves it to the
            # queue at `at`. The job re-checks the alert, so an early or repeated run is harmless.
            self.queue.enqueue_at(
                item.at + SCHEDULER_RESOLUTION,
                ESCALATE,
                item.alert_id,
                job_id=f"escalate-{item.alert_id}",
                job_timeout=self.job_timeout,
            )

    def depth(self) -> dict[str, int]:
        return {
            "queued": self.queue.count,
            "scheduled": self.queue.scheduled_job_registry.count,
            "started": self.queue.started_job_registry.count,
            "failed": self.queue.failed_job_registry.count,
        }

    def close(self) -> None:
        self.connection.close()


def _call(fn: Callable[..., Any], *args: Any) -> Callable[[], None]:
    def run() -> None:
        fn(*args)

    return run


class InlineAlertQueue:
    """One background thread with a timer heap: the embedded default, no Redis needed."""

    def __init__(self, retry_intervals: Sequence[int]) -> None:
        self.intervals = list(retry_intervals)
        self.runtime: Any = None  # the Runtime these jobs run with (set by workers.runtime)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None  # started by the first job

    def deliver(self, sends: Sequence[Send], *, again: bool = False) -> None:
        from workers import jobs

        for send in sends:
            self._attempt(
                jobs.deliver_alert, (send.alert_id, send.channel, self.runtime), 0, failure=True
            )

    def escalate(self, items: Sequence[Escalate]) -> None:
        from workers import jobs

        for item in items:
            delay = (item.at - datetime.now(UTC)).total_seconds()
            self._at(
                time.monotonic() + max(0.0, delay),
                _call(jobs.escalate_alert, item.alert_id, self.runtime),
            )

    def _attempt(
        self, fn: Callable[..., Any], args: tuple[Any, ...], attempt: int, *, failure: bool
    ) -> None:
        from workers import jobs

        def run() -> None:
            try:
                fn(*args)
            except Exception as error:
                if attempt < len(self.intervals):
                    log.info("alert job %s%s failed, retrying: %s", fn.__name__, args, error)
                    self._at(
                        time.monotonic() + self.intervals[attempt],
                        lambda: self._attempt(fn, args, attempt + 1, failure=failure),
                    )
                elif failure:
                    log.warning("alert job %s%s gave up: %s", fn.__name__, args, error)
                    jobs.record_final_failure(args[0], args[1], error, self.runtime)

        self._at(time.monotonic(), run)

    def depth(self) -> dict[str, int]:
        with self._wake:
            due = sum(1 for when, _, _ in self._heap if when <= time.monotonic())
            return {"queued": due, "scheduled": len(self._heap) - due}

    def _at(self, when: float, fn: Callable[[], None]) -> None:
        with self._wake:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="b40-alert-jobs", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (when, next(self._order), fn))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("in-process alert job failed")

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
