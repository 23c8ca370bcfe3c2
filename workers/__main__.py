"""`b40 worker` / `python -m workers`: an RQ worker for the alert queue (with its scheduler)."""

from __future__ import annotations

import gc
import logging
import sys

import workers.jobs  # noqa: F401  (the job functions, imported once before any fork)
from config.settings import Settings
from workers import runtime
from workers.runtime import alert_queue_name


def run_worker(
    *,
    with_scheduler: bool = True,
    burst: bool = False,
    simple: bool = False,
    planner: bool = False,
    name: str | None = None,
) -> bool:
    """Work the alert queue. `simple` runs jobs in this process (faster, no fork isolation);
    `planner` also runs the alert planner loop here (when no `b40 serve` does)."""
    import redis
    from rq import Queue, SimpleWorker, Worker

    settings = Settings()
    if settings.redis_url is None:
        raise SystemExit(
            "b40 worker needs B40_REDIS_URL (the embedded default runs jobs in-process)"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Built once here, not in every job: a forked work-horse inherits it (runtime.after_fork).
    # Per job, the rebuild (settings, rules, TLS contexts of the HTTP channels, a new engine
    # with an empty statement cache and an uninitialised dialect) cost more than the delivery.
    rt = runtime.build(settings)
    runtime.install(rt)
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(alert_queue_name(settings), connection=connection)
    worker_class = SimpleWorker if simple else Worker
    worker = worker_class([queue], connection=connection, name=name)
    pipeline = None
    waker = None
    if planner:
        from workers.pipeline import AlertPipeline
        from workers.wakeup import StreamWaker

        pipeline = AlertPipeline(
            rt,
            tick_seconds=settings.alert_tick_seconds,
            redeliver_after_seconds=settings.alert_redeliver_after_seconds,
        )
        # The API processes' commits, as they reach the board's stream (workers/wakeup.py).
        waker = StreamWaker(settings.redis_url, settings.redis_prefix, pipeline.wake)
    if not simple:
        runtime.prepare_to_fork(rt)
        # Objects alive now (modules, settings, the engine) are never freed; frozen, the
        # collector in a work-horse does not walk them, so it does not copy their pages.
        gc.freeze()
    if waker is not None:
        waker.start()
    if pipeline is not None:
        pipeline.start()
    try:
        return bool(worker.work(burst=burst, with_scheduler=with_scheduler))
    finally:
        if waker is not None:
            waker.stop()
        if pipeline is not None:
            pipeline.stop()


if __name__ == "__main__":
    run_worker(with_scheduler="--without-scheduler" not in sys.argv, burst="--burst" in sys.argv)
