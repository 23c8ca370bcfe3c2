"""`b40 worker` / `python -m workers`: an RQ worker for the alert queue (with its scheduler)."""

from __future__ import annotations

import logging
import sys

from config.settings import Settings
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
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(alert_queue_name(settings), connection=connection)
    worker_class = SimpleWorker if simple else Worker
    worker = worker_class([queue], connection=connection, name=name)
    pipeline = None
    if planner:
        from workers.pipeline import AlertPipeline
        from workers.runtime import current

        pipeline = AlertPipeline(
            current(),
            tick_seconds=settings.alert_tick_seconds,
            redeliver_after_seconds=settings.alert_redeliver_after_seconds,
        )
        pipeline.start()
    try:
        return bool(worker.work(burst=burst, with_scheduler=with_scheduler))
    finally:
        if pipeline is not None:
            pipeline.stop()


if __name__ == "__main__":
    run_worker(with_scheduler="--without-scheduler" not in sys.argv, burst="--burst" in sys.argv)
