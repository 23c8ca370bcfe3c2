"""T2, Redis killed (-9) and restarted mid-load, with and without persistence: posts keep
succeeding (the event log is the truth), boards on both API processes converge within 15 s,
nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.conftest import RigFactory
from tests.reliability.history import LoadRun, check, load_config
from tests.reliability.rig import city_slugs, full_length, print_figure, setup_cities

BOARDS = 40
RATE = 20
DURATION = 30 if full_length() else 16
KILL_AT, DOWN_FOR = 4.0, 3.0  # seconds into the steady load; the outage
CONVERGE_GATE_S = 15.0


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-persistence"])
def test_redis_restart_mid_load_loses_nothing(
    rig_factory: RigFactory, tmp_path: Path, appendonly: bool
) -> None:
    rig = rig_factory(appendonly=appendonly)
    rig.api()
    rig.api()
    assert rig.redis is not None
    with rig.client() as client:
        incidents = setup_cities(client, city_slugs(client, 20))
    config = load_config(
        rig, incidents, tag="t2", boards=BOARDS, burst=50, rate=RATE, duration=DURATION
    )
    run = LoadRun(config, tmp_path).start()
    run.wait_phase("load")
    time.sleep(KILL_AT)
    rig.redis.kill()
    killed = time.time()
    time.sleep(DOWN_FOR)
    rig.redis.start()
    back = time.time()
    history = run.finish()
    verdict = check(history, rig)
    f = verdict.figures
    print_figure(
        f"T2 Redis restart ({'AOF' if appendonly else 'no persistence'})",
        {
            "boards": BOARDS,
            "rate_per_s": RATE,
            "duration_s": DURATION,
            "redis_down_s": round(back - killed, 2),
            "gate_converge_s": CONVERGE_GATE_S,
            **f,
        },
    )
    assert not verdict.violations, verdict.violations
    assert f["http_5xx"] == {}, f
    assert f["failed"] == f["unknown"] == 0, f
    # Every event reached every board within the gate, during the outage and after it.
    assert f["commit_to_board_max_s"] <= CONVERGE_GATE_S, f
    assert f["converged_after_load_s"] <= CONVERGE_GATE_S, f
