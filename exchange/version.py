"""The node's version, read once from the installed package: the one source for every place
that names it (``ihx --version``, ``GetNodeInfo``, each JSON log line, ``ihx_build_info``).

Why: a version written into the code drifts from the one the package was built as; the
installed distribution's metadata (``pyproject.toml``'s ``version``) cannot.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # a source tree run without installing: say so, never guess
        return "unknown"


VERSION = _installed("ihx")
GRPC_VERSION = _installed("grpcio")
PYTHON_VERSION = platform.python_version()
