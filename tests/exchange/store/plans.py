"""The SQLite query plans of the statements a store function runs: a test asserts an index is
searched where a scan would grow with the database (figures of that cost are bench/'s).

Statements are seen by SQLite's own trace, whatever road they take to it — Core, or the
driver's cursor (store/prepared.py, store/sql.py) — with their values bound in the text."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlalchemy import Connection, Engine


def sqlite_plans(engine: Engine, table: str, run: Callable[[Connection], object]) -> list[str]:
    """Each statement on ``table`` that ``run`` executes, planned by SQLite: one line per
    statement, its plan's steps joined by " / ". Empty on another database."""
    if engine.dialect.name != "sqlite":
        return []
    statements: list[str] = []

    def note(statement: str) -> None:
        if f"FROM {table}" in statement:
            statements.append(statement)

    with engine.connect() as conn:
        driver = conn.connection.dbapi_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.set_trace_callback(note)
        try:
            run(conn)
        finally:
            driver.set_trace_callback(None)
        return [
            " / ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s))
            for s in statements
        ]
