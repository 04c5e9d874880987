"""List functions longer than N lines, longest first: the "no function over ~60 lines" habit.

Ruff has no rule for a function's length (PLR0915 counts statements, not lines), so this walks
the syntax tree with :mod:`ast` and measures each function from its ``def`` (decorators
included) to its last line. Migrations are left out: an Alembic revision is one long, linear
``upgrade()`` on purpose. Nested functions are listed on their own as well as inside their
parent. Exit status 1 when anything is listed: ``.ci/run`` and the pre-commit hook run it.

Usage: ``python scripts/long_functions.py [--max 60] [PATH ...]`` (default: the packages).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("common", "exchange", "routing", "auth")
SKIPPED_PARTS = frozenset({"migrations", ".venv", "__pycache__"})


def python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in paths:
            if not SKIPPED_PARTS.intersection(path.parts) and not path.name.endswith("_pb2.py"):
                yield path


def long_functions(path: Path, limit: int) -> Iterator[tuple[int, str]]:
    """(lines, qualified name) of each function in ``path`` longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[int, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                lines = (child.end_lineno or child.lineno) - first + 1
                name = f"{prefix}{child.name}"
                if lines > limit:
                    yield lines, name
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=60, help="longest allowed function (lines)")
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders")
    args = parser.parse_args(argv)
    roots = args.paths or [Path(p) for p in PACKAGES]
    found = [
        (lines, f"{path}:{name}")
        for path in python_files(roots)
        for lines, name in long_functions(path, args.max)
    ]
    for lines, where in sorted(found, reverse=True):
        print(f"{where}:{lines}")
    print(f"{len(found)} functions over {args.max} lines", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
