"""The image's inputs are pinned: the lock file covers pyproject.toml, the base image a digest.

``requirements.lock`` (pip-compile, with hashes) is what the Dockerfile installs with
``--require-hashes``; the project itself goes in ``--no-deps``. So a dependency added to
pyproject.toml but not to the lock would be missing from the image (its ``pip check`` fails the
build, but only where an engine runs), and a lock pin outside pyproject's bounds would ship a
version the code was never allowed to use. These tests catch both on every run: each runtime
dependency — with the dependencies its extras name (``psycopg[binary]``) — and each build
requirement is pinned exactly, within its bounds, with hashes.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
# The image's platform: CPython 3.11 on Linux (python:3.11-slim).
IMAGE_ENV = {**default_environment(), "python_version": "3.11", "sys_platform": "linux"}


def locked() -> dict[str, tuple[Version, int]]:
    """``name → (version, number of hashes)`` of every pin in requirements.lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if (pin := PIN.match(line)) is not None:
            current = canonicalize_name(pin[1])
            assert current not in pins, f"{current} pinned twice"
            pins[current] = (Version(pin[2]), 0)
        elif current is not None and (found := HASH.findall(line)):
            version, count = pins[current]
            pins[current] = (version, count + len(found))
    return pins


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _extra_requirements(requirement: Requirement) -> list[Requirement]:
    """What ``requirement``'s extras add, from the installed distribution's metadata."""
    added = []
    for text in importlib.metadata.requires(requirement.name) or []:
        extra = Requirement(text)
        for name in requirement.extras:
            if extra.marker is not None and extra.marker.evaluate({**IMAGE_ENV, "extra": name}):
                added.append(extra)
    return added


def _assert_locked(requirement: Requirement, pins: dict[str, tuple[Version, int]]) -> None:
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement} is not in requirements.lock: regenerate it (Dockerfile)"
    version, hashes = pins[name]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"requirements.lock pins {name}=={version}, outside pyproject's {requirement}"
    )
    assert hashes > 0, f"{name} has no hash in requirements.lock"


def test_every_runtime_dependency_and_its_extras_is_locked_within_bounds() -> None:
    pins = locked()
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for text in project["dependencies"]:
        requirement = Requirement(text)
        _assert_locked(requirement, pins)
        for extra in _extra_requirements(requirement):
            _assert_locked(extra, pins)


def test_the_build_backend_is_locked_too() -> None:
    # The Dockerfile builds ihx without build isolation, with the locked setuptools and wheel.
    pins = locked()
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    for text in build["requires"]:
        _assert_locked(Requirement(text), pins)


def test_the_dockerfile_installs_the_lock_with_hashes_on_a_base_pinned_by_digest() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
