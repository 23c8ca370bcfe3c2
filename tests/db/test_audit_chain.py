"""The audit trail: hash-chained, append-only, exportable, verifiable (PostgreSQL and SQLite)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from config.settings import Settings
from server.cli import cli
from server.db.audit import verify_log
from server.db.engine import make_engine
from server.domain.audit import GENESIS, verify_chain
from tests.factories import Api, make_api


def fill(api: Api, units: int = 6) -> None:
    api.user("sofia", "city_operator", "sofia")
    for i in range(units):
        api.ok(
            api.post(
                "sofia", "/api/v1/resources", {"capability": "AMBULANCE", "callsign": f"A{i}"}
            ),
            201,
        )
    api.ok(
        api.post(
            "admin",
            "/api/v1/incidents",
            {
                "city": "athens",
                "kind": "flood",
                "title": "Ω — ünïcode",
                "lat": -0.0,
                "lon": 23.5,
                "severity": "low",
            },
        ),
        201,
    )


def export(api: Api, who: str = "admin", **params: Any) -> list[dict[str, Any]]:
    response = api.get(who, "/api/v1/audit/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def engine_for(url: str) -> Engine:
    return make_engine(Settings(database_url=url).database_url)


def verify_db(url: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            from sqlalchemy.orm import Session

            with Session(bind=connection) as session:
                return verify_log(session)
    finally:
        engine.dispose()


def tamper(url: str, sql: str, **params: Any) -> None:
    """Change the log behind the application's back, with the append-only trigger lifted."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
                connection.execute(text(sql), params)
                connection.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
            else:
                connection.execute(text("DROP TRIGGER IF EXISTS events_no_update"))
                connection.execute(text("DROP TRIGGER IF EXISTS events_no_delete"))
                connection.execute(text(sql), params)
    finally:
        engine.dispose()


def test_chain_holds_in_the_database_and_in_the_export(database_url: str) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api)
        records = export(api)
        last_seq = api.ok(api.get("admin", "/api/v1/events"))["last_seq"]
        coordinator = api.user("coord", "coordinator")
        assert export(api, coordinator)  # coordinators may export too
        partial = export(api, after=3)
    assert [r["seq"] for r in records] == list(range(1, last_seq + 1))
    assert records[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:], strict=False))
    assert verify_chain(records).ok
    assert partial[0]["seq"] == 4
    assert verify_chain(partial, start_seq=4, start_hash=records[2]["hash"]).ok
    report = verify_db(database_url)
    assert report.ok, report
    assert report.checked == last_seq + 1  # and the coordinator's creation
    assert report.head != records[-1]["hash"]


@pytest.mark.parametrize("victim", [2, 5])
def test_verify_names_the_first_tampered_seq(database_url: str, victim: int) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api)
        before = export(api)
    payload = json.dumps({**before[victim - 1]["payload"], "callsign": "FORGED"})
    tamper(database_url, "UPDATE events SET payload = :p WHERE seq = :s", p=payload, s=victim)
    report = verify_db(database_url)
    assert not report.ok
    assert report.broken_seq == victim
    assert report.checked == victim - 1
    # The same through the CLI, on the database and on an export taken after the tampering.
    env = {"B40_DATABASE_URL": database_url}
    result = CliRunner().invoke(cli, ["audit", "verify"], env=env)
    assert result.exit_code == 1
    assert f"broken at seq {victim}" in result.output


def test_verify_names_a_deleted_event_and_a_cut_tail(database_url: str) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api)
        last = api.ok(api.get("admin", "/api/v1/events"))["last_seq"]
    tamper(database_url, "DELETE FROM events WHERE seq = :s", s=3)
    assert verify_db(database_url).broken_seq == 3
    tamper(database_url, "DELETE FROM events WHERE seq >= :s", s=last)
    report = verify_db(database_url)
    assert report.broken_seq == 3  # still the first break


def test_cut_tail_alone_is_named(database_url: str) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api)
        last = api.ok(api.get("admin", "/api/v1/events"))["last_seq"]
    tamper(database_url, "DELETE FROM events WHERE seq = :s", s=last)
    report = verify_db(database_url)
    assert report.broken_seq == last
    assert "committed" in (report.reason or "")


def test_cli_verifies_a_clean_log_and_an_export_file(database_url: str, tmp_path: Any) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api)
        response = api.get("admin", "/api/v1/audit/export")
    path = tmp_path / "audit.ndjson"
    path.write_bytes(response.content)
    runner = CliRunner()
    clean = runner.invoke(cli, ["audit", "verify"], env={"B40_DATABASE_URL": database_url})
    assert clean.exit_code == 0, clean.output
    assert "intact" in clean.output
    assert runner.invoke(cli, ["audit", "verify", "--file", str(path)]).exit_code == 0
    lines = path.read_text().splitlines()
    forged = json.loads(lines[4])
    forged["actor_name"] = "somebody else"
    lines[4] = json.dumps(forged)
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["audit", "verify", "--file", str(path)])
    assert result.exit_code == 1
    assert "broken at seq 5" in result.output


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET type = 'forged' WHERE seq = 1",
        "UPDATE events SET payload = payload WHERE seq >= 1",
        "DELETE FROM events WHERE seq = 1",
        "DELETE FROM events",
    ],
)
def test_the_database_refuses_updates_and_deletes_of_events(database_url: str, sql: str) -> None:
    api, client = make_api(database_url)
    with client:
        fill(api, units=1)
    engine = engine_for(database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(sql))
        if engine.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text("TRUNCATE events"))
    finally:
        engine.dispose()
    assert verify_db(database_url).ok


def test_chain_follows_commit_order_under_concurrent_writers(pg_url: str) -> None:
    api, client = make_api(pg_url)
    with client:
        for city in ("sofia", "athens", "zagreb", "belgrade"):
            api.user(city, "city_operator", city)
        errors: list[str] = []

        def write(city: str) -> None:
            for i in range(15):
                body = {"capability": "AMBULANCE", "callsign": f"{city[:3].upper()}-{i}"}
                response = api.post(city, "/api/v1/resources", body)
                if response.status_code != 201:
                    errors.append(response.text)

        threads = [
            threading.Thread(target=write, args=(c,))
            for c in ("sofia", "athens", "zagreb", "belgrade")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    report = verify_db(pg_url)
    assert report.ok, report
    assert report.checked >= 60
