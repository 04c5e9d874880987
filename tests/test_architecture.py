"""The rules of docs/architecture.md, checked on the source so no change can quietly break them.

* SQL lives only in ``exchange/store/`` (and the migrations): no other module imports
  SQLAlchemy's statement builders or ``text``, or runs ``.execute(`` on a connection.
* The domain model imports neither gRPC nor SQLAlchemy nor protobuf; ``errors.py`` no gRPC.
* ``routing/``, ``auth/`` and ``common/`` never import ``exchange``; ``common/`` imports neither
  ``routing`` nor ``auth``.

Each rule is a walk over the import statements and calls of the real files (``ast``), so a
violation names the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SQL_BUILDERS = frozenset(
    {"select", "insert", "update", "delete", "text", "func", "case", "literal"}
)


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            yield node.lineno, node.module, tuple(a.name for a in node.names)


def _names_a_connection(node: ast.expr) -> bool:
    """``conn``, ``connection`` or ``something.conn`` — what the code calls a connection."""
    if isinstance(node, ast.Name):
        return node.id in {"conn", "connection"}
    return isinstance(node, ast.Attribute) and node.attr in {"conn", "connection"}


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_sql_lives_only_in_the_store() -> None:
    offenders = []
    for path in _modules("exchange"):
        if "store" in path.relative_to(ROOT / "exchange").parts:
            continue
        for line, module, names in _imports(path):
            if module.startswith("sqlalchemy") and SQL_BUILDERS.intersection(names):
                offenders.append(
                    f"{_where(path, line)} imports {sorted(SQL_BUILDERS & set(names))}"
                )
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "execute"
                and _names_a_connection(node.func.value)
            ):
                offenders.append(f"{_where(path, node.lineno)} runs SQL (conn.execute)")
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "exchange/domain.py",
        "exchange/errors.py",
        "exchange/lifecycle/model.py",
        "exchange/lifecycle/rules.py",
        "exchange/takedown/model.py",
    ],
)
def test_the_domain_imports_no_transport_or_storage(module: str) -> None:
    path = ROOT / module
    banned = ("grpc", "sqlalchemy", "google.protobuf", "ihx.v1")
    offenders = [
        f"{_where(path, line)} imports {name}"
        for line, name, _ in _imports(path)
        if name.startswith(banned)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        ("routing", ("exchange",)),
        ("auth", ("exchange",)),
        ("common", ("exchange", "routing", "auth")),
    ],
)
def test_dependencies_point_one_way(package: str, banned: tuple[str, ...]) -> None:
    offenders = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        for line, name, _ in _imports(path)
        if name.split(".")[0] in banned
    ]
    assert offenders == []


def test_the_case_views_take_near_content_injected_not_from_the_pdq_room() -> None:
    """lifecycle/ (the case views) is handed near-known content through a Protocol by node.py
    and the web app; it never imports exchange.pdq, one room reaching into another."""
    offenders = [
        f"{_where(path, line)} imports {name}"
        for path in _modules("exchange/lifecycle")
        for line, name, _ in _imports(path)
        if name.startswith("exchange.pdq")
    ]
    assert offenders == []


def test_item_hashes_are_read_only_by_their_aggregate() -> None:
    """``item_hashes`` belongs to store/reports.py; store/hash_index.py (the sightings) does
    not query it."""
    text = (ROOT / "exchange/store/hash_index.py").read_text(encoding="utf-8")
    assert "item_hashes" not in text
