"""The README's two commands are the real ones: `make run` serves the seeded system, .ci/run tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README.md opens with a shell block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_run_then_test_and_ci_calls_the_test_command() -> None:
    assert readme_commands()[:2] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_run_serves_the_b40_cities_to_the_admin_token(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "B40_DATABASE_URL": f"sqlite:///{tmp_path}/readme.db",
        "B40_ADMIN_TOKEN": "readme-token",
        "B40_DEMO": "0",
    }
    env.pop("B40_REDIS_URL", None)
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        cities = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/cities",
                    headers={"Authorization": "Bearer readme-token"},
                )
                cities = response.json()
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert cities is not None, "make run did not serve within 120 s"
        assert cities["total"] == 60
        board = httpx.get(f"http://127.0.0.1:{port}/")
        assert board.status_code == 200
        assert "B40" in board.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
