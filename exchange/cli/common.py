"""What every command shares: consoles, the one-line error format, and small argument parsers.

Output that a person reads goes through rich consoles with markup, emoji and highlighting off:
reported URLs and member names are untrusted text, and ``[b]`` or ``:smile:`` inside them must
print as written. JSON output bypasses rich entirely so it is exactly ``json.dumps``.

Every failure a user can cause ends as ``ihx: error: <one line>`` on stderr and exit status 2
(``error_line`` builds that line from any of the expected error types); a check that ran and
failed exits 1.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from auth.errors import AuthError
from auth.keys import PublicKey, SigningKey
from exchange.errors import ExchangeError
from routing.errors import RoutingError
from routing.resolver import StaticResolver

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in ihx, not a problem with the input


class CliError(Exception):
    """A problem with what the user asked for, found by the command itself."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "failed"


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    CliError,
    ExchangeError,
    AuthError,
    RoutingError,
    OSError,
    grpc.RpcError,
    SQLAlchemyError,
    UnicodeDecodeError,
)


def one_line(text: str) -> str:
    """Collapse a message to one line: several lines on stderr would read as several errors."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "failed"


def error_line(error: BaseException) -> str:
    """The text after ``ihx: error: `` for an expected error, without internals or traceback."""
    if isinstance(error, CliError | ExchangeError | AuthError | RoutingError):
        return one_line(error.message)
    if isinstance(error, grpc.RpcError):
        return one_line(rpc_error_text(error))
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.start})"
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return one_line(f"{where}{error.strerror or error}")
    if isinstance(error, SQLAlchemyError):
        orig = getattr(error, "orig", None)
        return one_line(f"database: {orig if orig is not None else error}")
    return one_line(str(error))


def rpc_error_text(error: grpc.RpcError) -> str:
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    name = code().name if callable(code) else "UNKNOWN"
    text = details() if callable(details) else str(error)
    if name == "UNAVAILABLE":
        return f"node unavailable: {text}"
    if name == "DEADLINE_EXCEEDED":
        return "the node did not answer in time"
    return f"the node refused the request ({name}): {text}"


def out() -> Console:
    # Created per command, not at import: the test runner swaps sys.stdout per invocation.
    return Console(highlight=False, markup=False, emoji=False, soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def progress(label: str) -> Progress:
    """A progress bar on stderr for a long operation; drawn only when stderr is a terminal,
    so a script's captured stderr holds nothing but the lines meant for it."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def check_mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def aligned(rows: Sequence[Sequence[str]], *, indent: str = "  ") -> list[str]:
    """Rows as lines of left-aligned columns.

    Used instead of rich tables for data a person copies from: a table wraps or truncates
    cells at the terminal width (80 columns when piped), an id or a key must stay whole.
    """
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


# -- times -------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"([+-])(\d{1,6})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_HELP = "now, -1h / +7d (s m h d w from now), YYYY-MM-DD (UTC) or RFC 3339"


def format_time(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def short_time(at: datetime | None) -> str | None:
    """To the second, for tables a person reads (JSON output keeps the full precision)."""
    return None if at is None else format_time(at.replace(microsecond=0))


def parse_time(text: str, *, option: str, now: datetime) -> datetime:
    """The one reader of every time option: ``now``; ``-90m`` / ``+7d`` relative to ``now``;
    a day ``YYYY-MM-DD`` (its start, UTC); or an RFC 3339 time with a timezone."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative is not None:
        span = timedelta(seconds=int(relative[2]) * _UNITS[relative[3]])
        return now + span if relative[1] == "+" else now - span
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(f"{option}: {value[:40]!r} is not a time: use {TIME_HELP}") from None
    if _DAY.fullmatch(value):
        return parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise CliError(f"{option}: {value[:40]!r} has no timezone (add Z or +01:00)")
    return parsed.astimezone(UTC)


def parse_duration(text: str, *, option: str) -> timedelta:
    """``N`` followed by s, m, h, d or w (``90m``, ``12h``, ``7d``)."""
    value = text.strip()
    if not 2 <= len(value) <= 8 or not value[:-1].isdigit() or value[-1] not in _UNITS:
        raise CliError(f"{option}: {value[:20]!r} is not a duration: use e.g. 90m, 12h or 7d")
    return timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])


# -- keys and lists ----------------------------------------------------------------------------


def public_key_from(text: str, *, option: str) -> PublicKey:
    """A public key given as base64, or as a file: a private key PEM, a public key PEM."""
    candidate = Path(text)
    if len(text) < 1024 and candidate.is_file():
        data = candidate.read_bytes()
        if b"PRIVATE KEY" in data:
            return SigningKey.load(candidate).public
        try:
            return PublicKey.from_pem(data)
        except AuthError:
            return _b64_key(data.decode("ascii", "replace").strip(), option)
    return _b64_key(text, option)


def _b64_key(text: str, option: str) -> PublicKey:
    try:
        return PublicKey.from_b64(text)
    except AuthError as error:
        raise CliError(f"{option}: {error.message}") from None


def split_list(values: Sequence[str]) -> list[str]:
    """Comma-separated and/or repeated option values as one list (``--countries NL,BE``)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_host_specs(specs: Sequence[str], *, option: str) -> dict[str, list[str]]:
    """``host=ip[,ip…]`` specs as a table (validated by ``StaticResolver.from_specs`` first)."""
    try:
        StaticResolver.from_specs(list(specs))
    except RoutingError as error:
        raise CliError(f"{option}: {error.message}") from None
    table: dict[str, list[str]] = {}
    for spec in specs:
        host, _, rest = spec.partition("=")
        table.setdefault(host.strip(), []).extend(a.strip() for a in rest.split(","))
    return table


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` whole or not at all: an interrupted edit never leaves half a file.

    The file is created with ``mode`` from the start, so a private key is never readable by
    others, not even for an instant.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
