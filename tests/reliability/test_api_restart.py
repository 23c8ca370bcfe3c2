"""T4, the API process SIGTERMed (graceful) or SIGKILLed under load and started again, clients
retrying with the same Idempotency-Key: every acknowledged write exists exactly once, every
unknown one at most once; boards reconnect and resume from their last seq with no gap."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import RigFactory
from tests.reliability.history import LoadRun, check, load_config
from tests.reliability.rig import city_slugs, full_length, print_figure, setup_cities

BOARDS = 60
RATE = 20
DURATION = 30 if full_length() else 16
KILL_AT = 4.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_api_restart_under_load_keeps_every_acknowledged_write_once(
    rig_factory: RigFactory, tmp_path: Path, sig: signal.Signals
) -> None:
    rig = rig_factory()
    api = rig.api()
    with rig.client() as client:
        incidents = setup_cities(client, city_slugs(client, 20))
    config = load_config(
        rig, incidents, tag="t4", boards=BOARDS, burst=50, rate=RATE, duration=DURATION
    )
    run = LoadRun(config, tmp_path).start()
    run.wait_phase("load")
    time.sleep(KILL_AT)
    hit = time.time()
    api.send(sig)
    api.wait(30)
    down = time.time()
    api.start()  # same port: clients and boards come back to it
    up = time.time()
    history = run.finish()
    verdict = check(history, rig)
    f = verdict.figures
    print_figure(
        f"T4 API {sig.name}",
        {
            "boards": BOARDS,
            "rate_per_s": RATE,
            "duration_s": DURATION,
            "shutdown_s": round(down - hit, 2),
            "restart_s": round(up - down, 2),
            "api_unavailable_s": round(up - hit, 2),
            **f,
        },
    )
    assert not verdict.violations, verdict.violations
    assert f["duplicated_keys"] == 0, f
    assert f["failed"] == 0, f
    assert "500" not in f["statuses"], f
    # Every board came back (reconnected) and resumed with no gap (checked above).
    assert f["board_reconnects"] >= BOARDS, f
