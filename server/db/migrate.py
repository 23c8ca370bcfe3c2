"""Alembic, driven from code: `b40 db upgrade`, and the start-up check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is ConfigParser's interpolation character; escape it in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class NotMigrated(RuntimeError):
    """The database schema is behind the code."""


def require_migrated(engine: Engine, database_url: str) -> None:
    current, head = current_revision(engine), head_revision(database_url)
    if current != head:
        raise NotMigrated(
            f"database schema is at revision {current or 'none (empty database)'}, "
            f"the code needs {head}: run `b40 db upgrade` first"
        )
