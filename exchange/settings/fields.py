"""Field types shared by the settings sections: ranges, file paths, listen addresses.

Each setting is described once, where its section declares it: type, default and range. The
helpers here keep those declarations one line long. Paths are written as text in the file and
resolved against the settings file's directory, which the loader passes as validation context
(``{"base": Path}``), so a node directory can be moved as a whole. A value a validator refuses
raises ``PydanticCustomError("config", …)`` carrying the complete message, field named; the
loader prints it after the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

__all__ = [
    "OptionalPath",
    "RequiredPath",
    "between",
    "check_address",
    "field_infos",
    "limits",
    "refuse",
    "resolve_sqlite_url",
    "sqlite_beside",
]


def between(default: float, low: float, high: float) -> Any:
    """A number setting with its default and inclusive range (a file's int is fine for a float).

    Strict: a string or a bool in the file is a type error, never silently converted.
    """
    return Field(default, ge=low, le=high, strict=True)


def field_infos(model: object) -> dict[str, FieldInfo]:
    """The declared fields of a section: a pydantic model or dataclass ({} for anything else)."""
    fields = getattr(model, "__pydantic_fields__", None)
    return dict(fields) if isinstance(fields, dict) else {}


def limits(model: object) -> dict[str, tuple[float, float]]:
    """``{name: (low, high)}`` of every ranged field of ``model``, as declared."""
    out: dict[str, tuple[float, float]] = {}
    for name, info in field_infos(model).items():
        low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
        high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
        if low is not None and high is not None:
            out[name] = (cast(float, low), cast(float, high))
    return out


def refuse(message: str) -> PydanticCustomError:
    """The error of a refused value; ``message`` names the field and is shown as it is."""
    return PydanticCustomError("config", "{message}", {"message": message})


def _base(info: ValidationInfo) -> Path:
    context = info.context or {}
    base = context.get("base", Path.cwd())
    return base if isinstance(base, Path) else Path(base)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    path = value.expanduser()
    return path if path.is_absolute() else _base(info) / path


def _text_to_path(value: object) -> object:
    if value == "":
        raise PydanticCustomError("missing", "Field required")
    return Path(value) if isinstance(value, str) else value


def _optional_path(value: object) -> object:
    if value is None or value == "":
        return None
    return Path(value) if isinstance(value, str) else value


# A path written as text, relative to the settings file; required, or optional ("" = unset).
RequiredPath = Annotated[Path, BeforeValidator(_text_to_path), AfterValidator(_resolve)]
OptionalPath = Annotated[
    Annotated[Path, AfterValidator(_resolve)] | None, BeforeValidator(_optional_path)
]


def sqlite_beside(url: str, base: Path) -> str:
    """A relative SQLite file (``sqlite:///node.db``) lives beside the settings file."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return "sqlite:///" + str(base / relative)
    return url


def resolve_sqlite_url(url: str, info: ValidationInfo) -> str:
    return sqlite_beside(url, _base(info))


def check_address(listen: str, name: str) -> str:
    """``listen`` as ``host:port``; returns the host (without IPv6 brackets)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise refuse(f"{name} must be host:port, not {listen!r}")
    return host.strip("[]")
