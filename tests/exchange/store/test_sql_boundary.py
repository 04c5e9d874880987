"""SQL stays in exchange/store/: the node's domain modules and servicers run none of their own.

A module outside the store that imports SQLAlchemy's statement builders (``select``, ``insert``,
``update``, ``delete``, ``text``) or calls ``.execute(`` on a connection has taken back a piece of
an aggregate's storage. Checked on the source (AST), so a new module is checked by adding it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUILDERS = {"select", "insert", "update", "delete", "text"}
MODULES = [
    "exchange/cases.py",
    "exchange/intake.py",
    "exchange/receiver.py",
    "exchange/partners.py",
    "exchange/checkpoints.py",
    "exchange/routing_log.py",
    "exchange/domain.py",
    "exchange/edge/partner_service.py",
    "exchange/edge/log_service.py",
]
# intake's outbox INSERT moves to exchange/store/outbox.py with the delivery rework.
ALLOWED_EXECUTES = {"exchange/intake.py": 1}


def problems(path: str) -> tuple[list[str], int]:
    tree = ast.parse((ROOT / path).read_text())
    imported = [
        f"imports sqlalchemy.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        for alias in node.names
        if alias.name in BUILDERS
    ]
    executes = sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "execute"
        and isinstance(node.func.value, ast.Name | ast.Attribute)
        and getattr(node.func.value, "id", getattr(node.func.value, "attr", "")) == "conn"
    )
    return imported, executes


@pytest.mark.parametrize("path", MODULES)
def test_no_sql_outside_the_store(path: str) -> None:
    imported, executes = problems(path)
    assert imported == []
    assert executes <= ALLOWED_EXECUTES.get(path, 0), f"{path}: conn.execute outside the store"
