"""docker-compose.yml is read, not run (no Docker engine here): check it against the code."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    apis = [s for s in services.values() if command_of(s)[:2] == ["b40", "serve"]]
    assert len(apis) >= 2, "API replicas behind the proxy"
    assert command_of(services["migrate"]) == ["b40", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    worker = services["worker"]
    assert command_of(worker)[:2] == ["b40", "worker"]
    assert "--with-scheduler" in command_of(worker)
    assert worker["deploy"]["replicas"] >= 2
    assert "--appendonly" in command_of(services["redis"])
    for api in apis:
        assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_alert_planner_runs_somewhere(compose: dict[str, Any]) -> None:
    """Off in the API replicas (it competed with the boards for the GIL), on in the workers."""
    services = compose["services"]
    apis = [s for s in services.values() if command_of(s)[:2] == ["b40", "serve"]]
    in_api = [str(s.get("environment", {}).get("B40_ALERT_PIPELINE", "1")) != "0" for s in apis]
    in_worker = "--planner" in command_of(services["worker"])
    assert not any(in_api), "the planner stays out of the API processes"
    assert in_worker, "so the workers run it"
    assert Settings().alert_pipeline, "the embedded default keeps its in-process planner"


def test_every_b40_command_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        command = command_of(service)
        if command[:1] != ["b40"]:
            continue
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        flags = [w.split("=")[0] for w in command[1:] if w.startswith("--")]
        help_text = subprocess.run(
            [sys.executable, "-m", "server.cli", *words, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert help_text.returncode == 0, (name, help_text.stderr)
        for flag in flags:
            assert flag in help_text.stdout, (name, flag)


def test_every_b40_variable_is_a_setting(compose: dict[str, Any]) -> None:
    fields = {f"B40_{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        for variable in service.get("environment", {}) or {}:
            if variable.startswith("B40_"):
                assert variable in fields, variable


def test_proxy_points_at_the_api_services(compose: dict[str, Any]) -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstreams = set(re.findall(r"server\s+([\w-]+):8000;", conf))
    apis = {n for n, s in compose["services"].items() if command_of(s)[:2] == ["b40", "serve"]}
    assert upstreams == apis
    assert "Upgrade $http_upgrade" in conf, "websockets pass through the proxy"


def test_image_contains_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("server", "workers", "alerts", "config"):
        assert f"COPY {package} ./{package}" in dockerfile
