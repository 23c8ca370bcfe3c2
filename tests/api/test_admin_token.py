"""B40_ADMIN_TOKEN at start-up: made an admin once; once revoked, refused for good, and said so.

A revoked token may have leaked, so a restart must not bring it back; but an operator who
finds every call answered 401 should learn why from the server's log, not by guessing.
"""

from __future__ import annotations

import logging

import pytest

from server.db.engine import make_engine
from server.db.unit_of_work import Database
from server.domain.model import Role
from server.services.users import create_user
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_api


def test_a_revoked_admin_token_stays_refused_after_a_restart_and_the_log_says_why(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    api, client = make_api(database_url)
    with client:
        me = api.ok(api.get("admin", "/api/v1/users/me"))
        api.ok(api.post("admin", f"/api/v1/users/{me['id']}/revoke", {}))
        assert api.get("admin", "/api/v1/users/me").status_code == 401

    restarted, client = make_api(database_url)
    with caplog.at_level(logging.WARNING, logger="server.app"), client:
        refused = restarted.get("admin", "/api/v1/users/me")
        assert refused.status_code == 401
        assert refused.json()["detail"] == "token revoked"
    warnings = [r.getMessage() for r in caplog.records if r.name == "server.app"]
    assert any("B40_ADMIN_TOKEN was revoked" in w and "b40 user add" in w for w in warnings)


def test_a_live_admin_token_starts_without_a_warning(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):  # made on the first start, found on the second
        api, client = make_api(database_url)
        with caplog.at_level(logging.WARNING, logger="server.app"), client:
            assert api.ok(api.get("admin", "/api/v1/users/me"))["role"] == "admin"
    assert not [r for r in caplog.records if r.name == "server.app"]


def test_an_admin_token_held_by_someone_else_is_not_made_an_admin(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(make_engine(database_url))
    database.run(
        lambda tx: create_user(
            tx, name="coordinator", role=Role.COORDINATOR, city=None, token=ADMIN_TOKEN
        )
    )
    database.engine.dispose()
    api, client = make_api(database_url)
    with caplog.at_level(logging.WARNING, logger="server.app"), client:
        assert api.ok(api.get("admin", "/api/v1/users/me"))["role"] == "coordinator"
    warnings = [r.getMessage() for r in caplog.records if r.name == "server.app"]
    assert any("a coordinator, not an admin" in w for w in warnings)
