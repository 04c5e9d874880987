"""The one settings loader: a TOML file, then ``IHX_<SECTION>_<KEY>`` overrides, then validation.

The file is read here (so its problems name it: missing, unreadable, not TOML); pydantic-settings'
environment source finds the overrides by the vocabulary ``Settings`` declares, and this module
only turns their text into the field's type (a list is comma-separated; a bool is 1/0, true/false
or yes/no) — a value that does not convert is an error naming the variable. The merged sections
are then validated against the models, and pydantic's first error becomes a ``ConfigError``
naming the file and the field, worded as the node always has (``exchange.window must be from 1
to 64``). The sender and Helm chart rely on those words staying put.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from exchange.errors import ConfigError
from exchange.settings.fields import field_infos, limits, sqlite_beside
from exchange.settings.model import Settings

__all__ = ["load_database_url", "load_settings", "settings_from_mapping"]

SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


def read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such settings file") from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` and apply ``IHX_*`` overrides from ``env`` (default: the process env)."""
    file = Path(path)
    data = read_toml(file)
    return settings_from_mapping(data, base=file.resolve().parent, env=env, source=file)


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    base: Path,
    env: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Settings:
    """Settings from parsed TOML ``data``; relative paths resolve against ``base``."""
    where = str(source) if source else "settings"
    overrides = _Overrides(os.environ if env is None else env)()
    merged: dict[str, Any] = {name: {} for name in SECTIONS}
    for name, values in data.items():
        merged[name] = {**values, **overrides.pop(name, {})} if isinstance(values, dict) else values
    for name, values in overrides.items():
        merged[name] = {**merged[name], **values}
    try:
        settings = Settings.model_validate(merged, context={"base": base})
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe(error)}") from None
    return settings.from_file(source)


class _Vocabulary(BaseSettings, Settings):
    """The environment names of ``Settings``' fields; never instantiated, only read by the source.

    IHX_EXCHANGE_RECEIPT_TIMEOUT_S: the prefix, the section, then the rest is the key (sections
    have no ``_`` in their names, so one split is always right).
    """

    model_config = SettingsConfigDict(
        env_prefix="IHX_", env_nested_delimiter="_", env_nested_max_split=1, case_sensitive=False
    )


class _Overrides(EnvSettingsSource):
    """``IHX_<SECTION>_<KEY>`` from ``environ``, typed by the field each one names."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(_Vocabulary)
        # The source reads os.environ when built; these are the variables it is to read. It
        # matches names case-insensitively; the node's names are upper-case only.
        self.env_vars = {n.lower(): value for n, value in environ.items() if n == n.upper()}

    def __call__(self) -> dict[str, Any]:
        typed: dict[str, dict[str, Any]] = {}
        for section, values in super().__call__().items():
            fields = _fields(section)
            if not isinstance(values, dict) or fields is None:
                continue
            for key, raw in values.items():
                if key in fields and isinstance(raw, str):
                    name = f"IHX_{section.upper()}_{key.upper()}"
                    value = _from_text(name, raw, fields[key].annotation)
                    if value is not None:
                        typed.setdefault(section, {})[key] = value
        return typed


def _fields(section: str) -> dict[str, FieldInfo] | None:
    field = Settings.model_fields.get(section)
    return field_infos(field.annotation) or None if field else None


_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _from_text(name: str, raw: str, kind: Any) -> Any:
    """``raw`` as the field's type: None for a table (it cannot come from one variable)."""
    origin = get_origin(kind)
    if origin is dict:
        return None
    if origin is tuple:
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        if kind is bool:
            return _BOOLS[raw.lower()]
        if kind is int or kind is float:
            return kind(raw)
    except (KeyError, ValueError):
        raise ConfigError(f"{name}: {raw[:40]!r} is not a valid {kind.__name__}") from None
    return raw


# -- pydantic's errors, in the node's words -----------------------------------------------------

_TYPE_NAMES = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "string": "str",
    "path": "str",
    "list": "list",
    "tuple": "list",
    "dict": "dict",
}
_LAYOUT = ("extra_forbidden", "unexpected_keyword_argument", "model_type", "dataclass_type")


def describe(error: ValidationError) -> str:
    """The first problem (layout before types before values), field named."""
    details = error.errors()
    first = min(details, key=lambda d: (d["type"] not in _LAYOUT, not d["type"].endswith("_type")))
    return _message(first)


def _message(detail: ErrorDetails) -> str:
    loc = tuple(str(part) for part in detail["loc"])
    kind, value = detail["type"], detail["input"]
    field = ".".join(loc[:2])
    if kind == "config":
        return str((detail.get("ctx") or {}).get("message", detail["msg"]))
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown section [{loc[0]}]" if len(loc) == 1 else f"unknown setting {field}"
    if kind in ("model_type", "dataclass_type"):
        return f"[{loc[0]}] must be a table"
    if kind in ("missing", "string_too_short", "missing_argument"):
        return f"{field} is required (or set IHX_{loc[0].upper()}_{loc[-1].upper()})"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(loc[0], loc[1])
        return f"{field} must be from {low:g} to {high:g}"
    if kind == "is_instance_of":  # a path field given something other than text
        kind = "string_type"
    expected = _TYPE_NAMES.get(kind.removesuffix("_type").removesuffix("_parsing"))
    if expected:
        return f"{field} must be {expected}, not {type(value).__name__}"
    return f"{field}: {detail['msg']}"


def _bounds(section: str, key: str) -> tuple[float, float]:
    field = Settings.model_fields[section]
    return limits(field.annotation)[key]


def load_database_url(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """Only ``database.url`` (with its IHX_ override): all that ``ihx db upgrade`` needs.

    The migration job of the Helm chart has the settings file and the DSN, but no keys, TLS or
    GeoIP files, so it must not require them.
    """
    file = Path(path)
    data = read_toml(file)
    environ = os.environ if env is None else env
    url = environ.get("IHX_DATABASE_URL") or data.get("database", {}).get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{file}: database.url is required (or set IHX_DATABASE_URL)")
    return sqlite_beside(url, file.resolve().parent)
