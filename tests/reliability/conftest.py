"""Reliability fixtures: a PostgreSQL cluster of our own for the session (fsync off: these
tests measure the system, not the disk; the PostgreSQL fault test starts its own with fsync on),
a Redis of our own per test, the sinks, and a rig that tears every process down by pid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.rig import Postgres, RedisServer, Rig, Sinks, make_rig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def own_pg() -> Iterator[Postgres]:
    pg = Postgres(fsync=False).init()
    yield pg
    pg.destroy()


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    s = Sinks().start()
    yield s
    s.stop()


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory(own_pg: Postgres, tmp_path: Path) -> Iterator[RigFactory]:
    """Build rigs (own database on our cluster, own Redis); all torn down afterwards."""
    rigs: list[Rig] = []
    servers: list[RedisServer] = []

    def build(
        *, redis: bool = True, appendonly: bool = True, sinks: Sinks | None = None, **env: str
    ) -> Rig:
        server = None
        if redis:
            server = RedisServer(appendonly=appendonly).start()
            servers.append(server)
        rig = make_rig(own_pg, tmp_path, redis_server=server, sinks=sinks, **env)
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        rig.stop()
    for server in servers:
        server.destroy()
