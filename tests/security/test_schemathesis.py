"""Schemathesis (v4) over every operation with all default checks: as an admin, as a city
operator and anonymous, plus the stateful mode. Zero 5xx, zero schema violations.

Example counts are small so the file runs in CI time (docs/security.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import unsupported_method

from server.app import create_app
from tests.conftest import PG_ADMIN_URL, _pg_url
from tests.factories import ADMIN_TOKEN, make_settings

EXAMPLES = 6
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases every run: CI failures reproduce
)


# Built at import, so schemathesis can read the schema when it collects; the database behind
# it is made (from the migrated template) by the `running` fixture before the first call.
DATABASE = f"b40_fuzz_{uuid.uuid4().hex[:10]}"
APP = create_app(make_settings(_pg_url(DATABASE)), prepare=False)
# from_asgi("/openapi.json", APP) would run the app's lifespan at collection, before its
# database exists; this is the same thing without that: the schema, and calls into APP.
# One setting on one check: schema-valid input naming a city or capability that does not
# exist is a 422 (`invalid_input`, naming the field), which positive_data_acceptance must allow.
# And unknown query parameters are ignored (forward compatible), so none are generated.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"allow-extra-parameters": False},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            }
        },
    }
)
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)
schema.app = APP
schema.location = "/openapi.json"


@pytest.fixture(scope="module")
def running(pg_template: str) -> Iterator[dict[str, Any]]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE "{pg_template}"')
    with TestClient(APP) as client:  # runs the lifespan (admin token, board hub)
        made = client.post(
            "/api/v1/users",
            json={"name": "athens-op", "role": "city_operator", "city": "athens"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert made.status_code == 201, made.text
        yield {"tokens": {"admin": ADMIN_TOKEN, "operator": made.json()["token"]}}
    APP.state.database.engine.dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


# Known gaps in routes owned by other work, each skipping one check on one operation only
# (docs/security.md lists them): remove a row when its route is fixed.
KNOWN: dict[tuple[str, str], list[Any]] = {
    # GET /resources/bulk reaches GET /resources/{resource_id} and fails int parsing (422)
    # instead of 405; fix: an int path convertor on the resource routes.
    ("POST", "/api/v1/resources/bulk"): [unsupported_method],
    # The acknowledgement link answers with an HTML page its operation does not document.
    ("POST", "/api/v1/alerts/{alert_id}/ack-link"): [content_type_conformance],
    ("GET", "/api/v1/alerts/{alert_id}/ack-link"): [content_type_conformance],
}


def check(case: Any, headers: dict[str, str] | None = None) -> None:
    skipped = KNOWN.get((case.operation.method.upper(), case.operation.path), [])
    case.call_and_validate(headers=headers, excluded_checks=skipped)


def auth(running: dict[str, Any], who: str) -> dict[str, str]:
    token = running["tokens"].get(who)
    return {"Authorization": f"Bearer {token}"} if token else {}


@schema.parametrize()
@SETTINGS
def test_as_admin(case: Any, running: dict[str, Any]) -> None:
    check(case, auth(running, "admin"))


@schema.parametrize()
@SETTINGS
def test_as_city_operator(case: Any, running: dict[str, Any]) -> None:
    check(case, auth(running, "operator"))


@schema.parametrize()
@SETTINGS
def test_anonymous(case: Any, running: dict[str, Any]) -> None:
    check(case)


Workflow = schema.as_state_machine()


@pytest.mark.parametrize("who", ["admin", "operator"])
def test_stateful(who: str, running: dict[str, Any]) -> None:
    """Sequences linked by the schema (create, then read, act on what was created)."""

    class Authenticated(Workflow):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": auth(running, who)}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            skipped = KNOWN.get((case.operation.method.upper(), case.operation.path), [])
            case.validate_response(response, excluded_checks=skipped)

    Authenticated.run(
        settings=settings(
            max_examples=4,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
    )
