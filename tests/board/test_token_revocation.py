"""A token revoked through one API process is refused by the others (services/credentials.py)."""

from __future__ import annotations

import time

import httpx

from server.services.credentials import TTL_SECONDS
from tests.board.conftest import WAIT, ServerStarter
from tests.conftest import ADMIN_TOKEN


def test_a_token_revoked_through_another_process_is_refused_here(
    clustered: ServerStarter,
) -> None:
    """Two `b40 serve` processes on one PostgreSQL and Redis: B has the token in memory when A
    revokes it; B refuses it as soon as the revocation's event reaches B's hub."""
    a, b = clustered(), clustered()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with (
        httpx.Client(base_url=a.url, headers=headers, timeout=WAIT) as on_a,
        httpx.Client(base_url=b.url, headers=headers, timeout=WAIT) as admin_b,
    ):
        made = on_a.post("/api/v1/users", json={"name": "victim", "role": "coordinator"})
        assert made.status_code == 201, made.text
        victim = {"Authorization": f"Bearer {made.json()['token']}"}
        assert admin_b.get("/api/v1/incidents", headers=victim).status_code == 200
        revoked = on_a.post(f"/api/v1/users/{made.json()['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        # Well inside the 30 s time-to-live: only the event can have made B forget it.
        deadline = time.monotonic() + TTL_SECONDS / 3
        while (status := admin_b.get("/api/v1/incidents", headers=victim).status_code) == 200:
            assert time.monotonic() < deadline, "process B still accepts the revoked token"
            time.sleep(0.01)
        assert status == 401
        assert admin_b.get("/api/v1/incidents").status_code == 200
