"""The SQLite query plans of the statements a store function runs: a test asserts an index is
searched where a scan would grow with the database (figures of that cost are bench/'s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, event


def sqlite_plans(engine: Engine, table: str, run: Callable[[Connection], object]) -> list[str]:
    """Each statement on ``table`` that ``run`` executes, planned by SQLite: one line per
    statement, its plan's steps joined by " / ". Empty on another database."""
    if engine.dialect.name != "sqlite":
        return []
    statements: list[tuple[str, Any]] = []

    def note(_c: object, _cur: object, stmt: str, params: Any, *_a: object) -> None:
        if f"FROM {table}" in stmt:
            statements.append((stmt, params))

    with engine.connect() as conn:
        event.listen(engine, "before_cursor_execute", note)
        try:
            run(conn)
        finally:
            event.remove(engine, "before_cursor_execute", note)
        return [
            " / ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p))
            for s, p in statements
        ]
