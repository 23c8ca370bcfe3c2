"""Alert delivery by real `b40 worker` processes over Redis: once per channel, retries,
RQ-scheduled escalation, SIGKILL mid-job, the failed registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry

from alerts.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import REDIS_URL
from tests.workers.conftest import SECRET, Rig, scenario, wait_for


def test_each_channel_delivers_once_and_the_webhook_is_signed(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory()
    rig.start_worker()
    scenario(rig.api, rig.hook.url)
    wait_for(
        lambda: rig.smtp.accepted and rig.sms.requests and rig.hook.requests, "three deliveries"
    )
    [alert] = wait_for(lambda: [a for a in rig.alerts() if a["status"] == "sent"], "alert sent")
    wait_for(
        lambda: all(
            d["status"] == "sent"
            for d in rig.api.get("admin", f"/api/v1/alerts/{alert['id']}").json()["deliveries"]
        ),
        "all channels recorded",
    )
    assert len(rig.smtp.accepted) == 1
    assert b"Parnitha" in rig.smtp.accepted[0]
    assert rig.sms.keys() == [f"alert-{alert['id']}-sms"]
    assert rig.hook.keys() == [f"alert-{alert['id']}-webhook"]
    hook = rig.hook.requests[0]
    assert verify(
        SECRET,
        hook["headers"][TIMESTAMP_HEADER],
        hook["body"],
        hook["headers"][SIGNATURE_HEADER],
        datetime.now(UTC),
    )
    assert hook["json"]["alert"]["facts"]["requesting_city"] == "athens"
    assert len(rig.events("alert.sent")) == 1


def test_a_channel_failing_three_times_then_recovering_delivers_once(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory()
    rig.sms.failures = 3
    rig.start_worker()
    scenario(rig.api, rig.hook.url)
    wait_for(lambda: rig.sms.requests, "the SMS after three refusals")
    [alert] = rig.alerts()
    detail = wait_for(
        lambda: (
            (d := rig.api.get("admin", f"/api/v1/alerts/{alert['id']}").json())
            and all(x["status"] == "sent" for x in d["deliveries"])
            and d
        ),
        "deliveries recorded",
    )
    sms = next(d for d in detail["deliveries"] if d["channel"] == "sms")
    assert sms["attempts"] == 4
    assert rig.sms.refused == 3
    assert len(rig.sms.requests) == 1
    assert rig.events("alert.failed") == []


def test_a_channel_that_never_recovers_ends_in_the_failed_registry_and_on_the_board(
    rig_factory: Callable[..., Rig], redis_prefix: str
) -> None:
    rig = rig_factory()
    rig.hook.failures = 1000
    rig.start_worker()
    scenario(rig.api, rig.hook.url)
    failed = wait_for(lambda: rig.events("alert.failed"), "alert.failed on the board")
    assert failed[0]["payload"]["channel"] == "webhook"
    queue = Queue(f"{redis_prefix}:alerts", connection=redis.Redis.from_url(REDIS_URL))
    job_id = f"alert-{failed[0]['payload']['id']}-webhook"
    assert job_id in FailedJobRegistry(queue=queue).get_job_ids()
    assert rig.hook.refused == 4  # the first try and three retries
    assert len(rig.smtp.accepted) == 1  # the other channels are unaffected


def test_unacknowledged_escalates_through_an_rq_scheduled_job_and_ack_stops_it(
    rig_factory: Callable[..., Rig],
) -> None:
    # A long tick: the app's sweep cannot be what escalates; the RQ scheduler must.
    rig = rig_factory(tick_seconds=3600)
    rig.start_worker()
    scenario(rig.api, rig.hook.url, levels=3)
    wait_for(
        lambda: {a["officer"]: a["status"] for a in rig.alerts()}.get("sofia-2") == "sent",
        "level 2 alerted",
    )
    level2 = next(a for a in rig.alerts() if a["officer"] == "sofia-2")
    rig.api.ok(rig.api.post("admin", f"/api/v1/alerts/{level2['id']}/ack"))
    statuses = {a["officer"]: a["status"] for a in rig.alerts()}
    assert statuses == {"sofia-1": "escalated", "sofia-2": "acknowledged"}
    queue = Queue(
        rig.env["B40_REDIS_PREFIX"] + ":alerts", connection=redis.Redis.from_url(REDIS_URL)
    )
    # Level 2's own timer fires after the ack and finds nothing to do.
    wait_for(
        lambda: (
            queue.fetch_job(f"escalate-{level2['id']}")
            and queue.fetch_job(f"escalate-{level2['id']}").get_status() == "finished"
        ),
        "level 2 timer ran",
    )
    assert {a["officer"] for a in rig.alerts()} == {"sofia-1", "sofia-2"}
    assert len(rig.events("alert.escalated")) == 1


def test_a_worker_killed_mid_send_leads_to_exactly_one_delivery_after_restart(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory()
    rig.smtp.hold_first = True
    worker = rig.start_worker()
    scenario(rig.api, rig.hook.url)
    assert rig.smtp.holding.wait(60), "the e-mail never reached the sink"
    rig.kill(worker)  # SIGKILL, work-horse included, while the SMTP transaction is open
    rig.smtp.release.set()
    rig.start_worker()
    wait_for(lambda: rig.smtp.accepted, "the e-mail after restart")
    [alert] = rig.alerts()
    detail = wait_for(
        lambda: (
            (d := rig.api.get("admin", f"/api/v1/alerts/{alert['id']}").json())
            and all(x["status"] == "sent" for x in d["deliveries"])
            and d
        ),
        "deliveries recorded",
    )
    email = next(d for d in detail["deliveries"] if d["channel"] == "email")
    assert email["attempts"] == 2
    assert len(rig.smtp.accepted) == 1
    assert rig.smtp.received == 2
    assert len(rig.events("alert.sent")) == 1


def test_a_planner_in_a_worker_is_woken_by_the_api_processes_commits(
    rig_factory: Callable[..., Rig],
) -> None:
    """docker-compose.yml's topology: the API plans no alerts (B40_ALERT_PIPELINE=0), the
    worker runs the planner. Its tick is two minutes here, so only the wake-up from the
    board's stream (workers/wakeup.py) can alert the officers within the wait below."""
    rig = rig_factory(tick_seconds=120, planner_in_api=False)
    rig.start_worker(planner=True)
    connection = redis.Redis.from_url(REDIS_URL)
    queue = Queue(rig.env["B40_REDIS_PREFIX"] + ":alerts", connection=connection)
    wait_for(lambda: Worker.all(queue=queue), "the worker started (planner and wake-up first)")
    scenario(rig.api, rig.hook.url)
    [alert] = wait_for(lambda: rig.alerts(), "an alert planned by the worker", seconds=30)
    assert alert["facts"]["requesting_city"] == "athens"
    wait_for(lambda: rig.smtp.accepted, "the officer's e-mail")
