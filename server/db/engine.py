"""Engines for PostgreSQL (production) and SQLite (embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# Execution option marking a read-only transaction (Database.read).
READ_ONLY = "b40_read_only"


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, **kwargs)
    # No pre-ping: it costs a round trip on every checkout, three per posted request. A pooled
    # connection found dead (a restart, a terminated backend) is invalidated with every older
    # one on first use, and Database runs the read, or the write that had not reached COMMIT,
    # again on a new connection (unit_of_work.py).
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 10)
    return create_engine(database_url, **kwargs)


def _sqlite_engine(database_url: str, **kwargs: Any) -> Engine:
    database = make_url(database_url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
    )

    # SQLite ignores SELECT ... FOR UPDATE, and pysqlite's deferred BEGIN lets two writers
    # both read "available" and both book the unit. BEGIN IMMEDIATE takes the write lock at
    # the start of every writing transaction, so check-then-update is serialised. Reads take
    # a deferred BEGIN: a consistent WAL snapshot that never waits for a writer (the board's
    # relay and hub read while the alert planner writes).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
