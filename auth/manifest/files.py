"""Manifest files: read and write the bare (unsigned) document as .toml or .json.

IO stands apart from parsing so that the parser stays a pure function of a mapping: this module
picks the format by suffix, turns every OS, encoding and syntax failure into a ``ManifestError``
that names the file (and the line, where the decoder knows it), and prefixes field errors with the
file name. Signed manifests are bytes handled by ``signing``; this is for the coordinator's
working copy.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auth import strict_json
from auth.errors import ManifestError
from auth.manifest.checks import type_name
from auth.manifest.document import manifest_to_json, manifest_to_toml, parse_manifest
from auth.manifest.model import Manifest
from auth.strict_json import StrictJsonError

__all__ = ["dump_manifest", "load_manifest"]


def _read_document(path: Path) -> Mapping[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ManifestError(f"{path}: unsupported manifest file type (use .toml or .json)")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest file not found") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else strict_json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except StrictJsonError as exc:
        raise ManifestError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ManifestError(f"{path}: expected a JSON object, got {type_name(data)}")
    return data


def load_manifest(path: str | Path) -> Manifest:
    """Read a bare (unsigned) manifest document from a .toml or .json file."""
    p = Path(path)
    data = _read_document(p)
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise ManifestError(f"{p}: {exc.message}") from None


def dump_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write the bare document as .toml or .json (by suffix)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".toml":
        text = manifest_to_toml(manifest)
    elif suffix == ".json":
        text = manifest_to_json(manifest)
    else:
        raise ManifestError(f"{p}: unsupported manifest file type (use .toml or .json)")
    p.write_text(text, encoding="utf-8")
