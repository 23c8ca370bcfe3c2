"""Persistence adapter: engine, tables, unit of work, event log, migrations."""
