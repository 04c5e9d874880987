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
itself (a LIMIT) keep theirs. Parameters are named, as ``bindparam`` names them; rows are
named tuples of the selected columns' keys.

An expanding parameter (``IN`` list) changes the text with the list's length. Its list is
padded to the next power of two by repeating its last value — ``IN (a, b, c, c)`` means
``IN (a, b, c)`` — so a statement has a text per power of two, each made once from the
compiled one. An empty list matches nothing and runs nothing.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import SelectBase

from exchange.store.sql import driver_execute

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    text: str
    names: tuple[str, ...] | None  # positional drivers: the parameters' order; named: None
    fixed: Mapping[str, Any]  # the values bound in the statement itself
    binds: Mapping[str, _Processor]
    results: tuple[_Processor, ...]
    row: Any  # the named tuple of a result row (of no fields: the statement returns none)
    expanding: tuple[str, ...]  # the IN lists' parameters
    _sized: dict[tuple[int, ...], _Compiled] = field(default_factory=dict)

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.fixed, **values}
        processed = {
            name: value if (f := self.binds.get(name)) is None or value is None else f(value)
            for name, value in merged.items()
        }
        if self.names is None:
            return processed
        return tuple(processed[name] for name in self.names)

    def for_lists(self, values: dict[str, Any]) -> _Compiled:
        """This statement with each IN list of ``values`` padded (in place) to a power of two
        and spelled out as that many parameters, each list value under a name of its own."""
        sizes = []
        for name in self.expanding:
            listed = list(values.pop(name))
            size = 1 << (len(listed) - 1).bit_length()
            listed += listed[-1:] * (size - len(listed))
            values.update({f"{name}_{i}": v for i, v in enumerate(listed, 1)})
            sizes.append(size)
        key = tuple(sizes)
        found = self._sized.get(key)
        if found is None:
            found = self._sized[key] = self._spelled(dict(zip(self.expanding, sizes, strict=True)))
        return found

    def _spelled(self, sizes: dict[str, int]) -> _Compiled:
        text, names, binds = self.text, [], dict(self.binds)
        for name, size in sizes.items():
            each = [f"{name}_{i}" for i in range(1, size + 1)]
            marks = ["?"] * size if self.names is not None else [f"%({n})s" for n in each]
            text = text.replace(f"__[POSTCOMPILE_{name}]", ", ".join(marks))
            binds.update(dict.fromkeys(each, binds.pop(name)))
        for name in self.names or ():
            names.extend(
                [f"{name}_{i}" for i in range(1, sizes[name] + 1)] if name in sizes else [name]
            )
        return _Compiled(
            text,
            None if self.names is None else tuple(names),
            self.fixed,
            binds,
            self.results,
            self.row,
            (),
        )


class Prepared:
    """A Core statement compiled once per dialect, run on the driver's cursor (see the module
    docstring)."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, conn: Connection, **values: Any) -> list[Any]:
        """The statement's rows for the named ``values``, each a named tuple of the selected
        columns as Core would give them."""
        compiled = self._bound(conn, values)
        if compiled is None:
            return []
        cursor = driver_execute(conn, compiled.text, compiled.parameters(values))
        make, results = compiled.row._make, compiled.results
        if not any(results):
            return [make(r) for r in cursor.fetchall()]
        return [
            make(v if f is None or v is None else f(v) for f, v in zip(results, r, strict=True))
            for r in cursor.fetchall()
        ]

    def first(self, conn: Connection, **values: Any) -> Any | None:
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
        compiled = self._bound(conn, values)
        if compiled is None:
            return 0
        return int(driver_execute(conn, compiled.text, compiled.parameters(values)).rowcount)

    def _bound(self, conn: Connection, values: dict[str, Any]) -> _Compiled | None:
        """The text for ``values`` (its IN lists spelled out in it); None if an IN list is
        empty — it matches nothing, and nothing need run."""
        compiled = self._compile(conn.dialect)
        if not compiled.expanding:
            return compiled
        if not all(values[name] for name in compiled.expanding):
            return None
        return compiled.for_lists(values)

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self._statement, dialect)
        return found


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    binds = compiled.bind_names  # each parameter, by the name the text gives it
    expanding = tuple(name for b, name in binds.items() if b.expanding)
    if any(f"__[POSTCOMPILE_{name}]" not in compiled.string for name in expanding) or (
        compiled.string.count("__[POSTCOMPILE_") != len(expanding)
    ):
        raise TypeError("Prepared: a parameter rendered at execution that is not an IN list")
    processors = {name: b.type.bind_processor(dialect) for b, name in binds.items()}
    columns = list(statement.selected_columns) if isinstance(statement, SelectBase) else []
    results = tuple(c.type.result_processor(dialect, None) for c in columns)
    # Made at run time, from the columns' keys: rows read as Core's do (``row.payload``).
    keys = [c.key or f"c{i}" for i, c in enumerate(columns)]
    row = collections.namedtuple("Row", keys, rename=True)  # type: ignore[misc]
    fixed = {name: b.effective_value for b, name in binds.items() if not b.required}
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _Compiled(compiled.string, names, fixed, processors, results, row, expanding)
