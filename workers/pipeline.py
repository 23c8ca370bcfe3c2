"""The alert planner loop: woken after each commit and every few seconds, it reads the event
log past its cursor, runs the timed rules and due escalations, and enqueues after commit."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from functools import partial

from server.services import alerts
from workers.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 500
# After a wake-up, wait this long for more commits before planning: one pass for a burst of
# events instead of one per event, and the pass runs after, not during, the moment the API
# process and its boards are busiest with the commit that woke it. Alerts wait 50 ms more.
COALESCE_SECONDS = 0.05
MAX_BATCHES = 20


class AlertPipeline:
    def __init__(
        self, runtime: Runtime, *, tick_seconds: float, redeliver_after_seconds: float
    ) -> None:
        self.runtime = runtime
        self.tick_seconds = tick_seconds
        self.redeliver_after = timedelta(seconds=redeliver_after_seconds)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.runtime.database.on_commit(self.wake)
        self._thread = threading.Thread(target=self._loop, name="b40-alert-planner", daemon=True)
        self._thread.start()
        self._wake.set()  # catch up with whatever was committed while we were down

    def wake(self, _last_seq: int = 0) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        timed_due = 0.0  # monotonic; the first pass runs everything
        while not self._stop.is_set():
            if self._wake.wait(self.tick_seconds):
                self._stop.wait(COALESCE_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            # A commit wakes the planner for the events it wrote; the timed rules, due
            # escalations and redeliveries depend on the clock, not on events, so they run
            # once per tick even while commits keep waking it (a pass of each per event cost
            # four more transactions on every commit in the network).
            timed = time.monotonic() >= timed_due
            try:
                self.run_once(timed=timed)
                if timed:
                    timed_due = time.monotonic() + self.tick_seconds
            except Exception:
                # Logged, not swallowed silently: the cursor did not move, the next tick retries.
                log.exception("alert planner tick failed")

    def run_once(self, *, timed: bool = True) -> int:
        """One pass; returns how many deliveries it enqueued. `timed=False`: the new events
        only (the clock-driven parts wait for the tick)."""
        rt = self.runtime
        db, config = rt.database, rt.config
        sends: list[alerts.Send] = []
        for _ in range(MAX_BATCHES):  # bounded, so the timed rules run even under a flood
            batch = db.run(lambda tx: alerts.plan_from_log(tx, config, batch=BATCH))
            rt.queue.deliver(batch)  # after the commit, from the durable rows
            sends += batch
            if db.read(alerts.planner_lag) <= 0:
                break
        if not timed:
            return len(sends)
        timed_sends = db.run(lambda tx: alerts.plan_timed(tx, config))
        rt.queue.deliver(timed_sends)
        now = db.clock()
        for alert_id in db.read(lambda s: alerts.escalations_due(s, now)):
            rt.queue.deliver(db.run(partial(alerts.escalate, alert_id=alert_id, config=config)))
        again = db.read(
            lambda s: alerts.redeliveries(s, db.clock(), older_than=self.redeliver_after)
        )
        rt.queue.deliver(again, again=True)
        return len(sends) + len(timed_sends)
