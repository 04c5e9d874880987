"""Core statements compiled once and run on the driver's cursor: the writer's per-group reads.

A Core statement built and run per call costs SQLAlchemy's whole path each time: the statement
objects built, their cache key computed, a compiled form looked up, an execution context and a
result made — 45 µs for a one-row SELECT by key, where SQLite itself takes 1 µs (14 µs with the
statement built once). The writer runs a dozen such statements in every group whatever its
size (the chain's head, the peer's next sequence, the batch's row, the receipt's updates), and
at a steady 1,000 reports/s groups are small: SQLAlchemy was two thirds of the writer's time
holding the GIL.

``Prepared(statement)`` keeps Core's meaning — the statement is written in Core, against the
schema's tables, and compiled by the dialect — but compiles it once per dialect and runs it as
text on the driver's cursor (``sql.driver_execute``, which raises SQLAlchemy's own errors).
Every bound value goes through its type's bind processor and every selected column through its
result processor, as Core would (our ``UtcMicros`` times); values bound in the statement
itself (a LIMIT) keep theirs. Parameters are named, as ``bindparam`` names them. Only
statements without expanding parameters (``IN`` lists) are taken: their text changes with the
list's length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import SelectBase

from exchange.store.sql import driver_execute

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    text: str
    names: tuple[str, ...] | None  # positional drivers: the parameters' order; named: None
    fixed: Mapping[str, Any]  # the values bound in the statement itself
    binds: Mapping[str, _Processor]
    results: tuple[_Processor, ...]

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.fixed, **values}
        processed = {
            name: value if (f := self.binds.get(name)) is None or value is None else f(value)
            for name, value in merged.items()
        }
        if self.names is None:
            return processed
        return tuple(processed[name] for name in self.names)


class Prepared:
    """A Core statement compiled once per dialect, run on the driver's cursor (see the module
    docstring)."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, conn: Connection, **values: Any) -> list[tuple[Any, ...]]:
        """The statement's rows for the named ``values``, each column as Core would give it."""
        compiled = self._compile(conn.dialect)
        cursor = driver_execute(conn, compiled.text, compiled.parameters(values))
        rows = cursor.fetchall()
        if not any(compiled.results):
            return [tuple(r) for r in rows]
        return [
            tuple(
                v if f is None or v is None else f(v)
                for f, v in zip(compiled.results, r, strict=True)
            )
            for r in rows
        ]

    def first(self, conn: Connection, **values: Any) -> tuple[Any, ...] | None:
        rows = self.rows(conn, **values)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, **values: Any) -> Any:
        """The first column of the only row (an error if there is none)."""
        row = self.first(conn, **values)
        if row is None:
            raise LookupError("Prepared.scalar: the statement found no row")
        return row[0]

    def run(self, conn: Connection, **values: Any) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        compiled = self._compile(conn.dialect)
        return int(driver_execute(conn, compiled.text, compiled.parameters(values)).rowcount)

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self._statement, dialect)
        return found


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    binds = compiled.bind_names  # each parameter, by the name the text gives it
    if any(b.expanding for b in binds) or "__[POSTCOMPILE_" in compiled.string:
        raise TypeError("Prepared: an expanding parameter (IN list) changes the statement text")
    processors = {name: b.type.bind_processor(dialect) for b, name in binds.items()}
    results: tuple[_Processor, ...] = ()
    if isinstance(statement, SelectBase):
        results = tuple(c.type.result_processor(dialect, None) for c in statement.selected_columns)
    fixed = {name: b.effective_value for b, name in binds.items() if not b.required}
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _Compiled(compiled.string, names, fixed, processors, results)
