"""Plain factory functions for tests: an API client with users of each role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi.testclient import TestClient

from config.settings import Settings
from server.app import create_app
from server.db.unit_of_work import utc_now

ADMIN_TOKEN = "test-admin-token"


@dataclass
class Api:
    """A TestClient plus the tokens of the users made so far."""

    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if who != "anonymous":
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(who, "GET", path, **kwargs)

    def post(self, who: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.call(who, "POST", path, json=json, **kwargs)

    def put(self, who: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.call(who, "PUT", path, json=json, **kwargs)

    def user(
        self, name: str, role: str, city: str | None = None, *, expires_at: datetime | None = None
    ) -> str:
        """Create a user through the API; remember its token under `name`."""
        body = {"name": name, "role": role, "city": city}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        response = self.post("admin", "/api/v1/users", body)
        assert response.status_code == 201, response.text
        self.tokens[name] = response.json()["token"]
        return name

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        return response.json()


class Clock:
    """A clock a test moves by hand (`clock.now += timedelta(...)`)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def make_settings(database_url: str, **overrides: Any) -> Settings:
    # Functional tests fire hundreds of writes and bad tokens from one address in seconds;
    # the rate limits have their own tests (tests/api/test_rate_limits.py), which turn them on.
    overrides.setdefault("rate_limit_enabled", False)
    overrides.setdefault("redis_url", None)
    overrides.setdefault("demo", False)
    return Settings(database_url=database_url, admin_token=ADMIN_TOKEN, **overrides)


def make_api(
    database_url: str, *, clock: Callable[[], datetime] = utc_now, **overrides: Any
) -> tuple[Api, TestClient]:
    app = create_app(make_settings(database_url, **overrides), clock=clock, prepare=False)
    client = TestClient(app)
    return Api(client=client, tokens={"admin": ADMIN_TOKEN}), client
