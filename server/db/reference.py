"""Reference data (cities, capability catalogue, substitution rules) from config/reference/."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from config.settings import REFERENCE_DIR
from server.db.tables import CapabilityRow, CityRow, SubstitutionRow


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def city_rows(directory: Path = REFERENCE_DIR) -> list[dict[str, Any]]:
    return [
        {
            "slug": r["slug"],
            "name": r["name"],
            "country": r["country_iso2"],
            "lat": float(r["lat"]),
            "lon": float(r["lon"]),
            "population": int(r["population"]) if r["population"] else None,
            "member_source": r["member_source"],
        }
        for r in read_csv(directory / "b40_cities.csv")
    ]


def capability_rows(directory: Path = REFERENCE_DIR) -> list[dict[str, Any]]:
    return [
        {
            "code": r["code"],
            "name": r["name"],
            "domain": r["domain"],
            "unit": r["unit"],
            "crew": int(r["typical_crew"]),
            "self_sufficiency_hours": float(r["self_sufficiency_hours"]),
            "deploy_speed_kmh": float(r["deploy_speed_kmh"]),
            "travel": r["travel"],
            "readiness_hours": float(r["readiness_hours"]),
            "description": r["description"],
        }
        for r in read_csv(directory / "capabilities.csv")
    ]


def substitution_rows(directory: Path = REFERENCE_DIR) -> list[dict[str, Any]]:
    return [
        {"substitute": r["substitute"], "for_capability": r["for"], "reason": r["reason"]}
        for r in read_csv(directory / "substitutions.csv")
    ]


def load_reference(connection: Connection, directory: Path = REFERENCE_DIR) -> None:
    """Insert or update every reference row; safe to run again."""
    _upsert(connection, CityRow.__table__, city_rows(directory), ["slug"])  # type: ignore[arg-type]
    _upsert(connection, CapabilityRow.__table__, capability_rows(directory), ["code"])  # type: ignore[arg-type]
    _upsert(
        connection,
        SubstitutionRow.__table__,  # type: ignore[arg-type]
        substitution_rows(directory),
        ["substitute", "for_capability"],
    )


def _upsert(
    connection: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    if not rows:
        return
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(rows)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))
