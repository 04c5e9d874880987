"""The node's log lines: JSON objects (python-json-logger) or plain text, never URL paths.

Why: a log collector reads one JSON object per line; a person at a terminal reads text. With
JSON on, *every* line the node writes is one object, the lifecycle lines ("listening", "stopping",
"stopped") too (``ihx node run`` logs them instead of printing them), so nothing has to be parsed
out of a sentence.

Each JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the node's
``member`` and the app ``version`` (exchange/version.py), plus the fields a call passes with
``extra=`` — ``peer`` (the other member a line is about), ``report_ids``, ``notice`` … — as
top-level keys. An error's exception is one ``error`` field (its last line), not a traceback.

A reported URL's path and query can identify a victim, so they never reach logs: code logs
report ids, and ``redact_url`` keeps only scheme and host when a URL must be named.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from exchange.version import VERSION

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")


class JsonFormatter(_LibraryJsonFormatter):
    """python-json-logger with ihx's field names, lower-case levels and one-line errors."""

    def __init__(self, member: str | None = None) -> None:
        static: dict[str, Any] = {"version": VERSION}
        if member is not None:
            static["member"] = member
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields=static,
            timestamp="time",
            json_ensure_ascii=False,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data.get("level", "")).lower()
        # The time first: collectors and people both read it before anything else.
        ordered = {"time": log_data.pop("time", None), **log_data}
        trace = ordered.pop("exc_info", None)
        if trace:
            ordered["error"] = str(trace).strip().splitlines()[-1]
        ordered.pop("stack_info", None)
        return ordered


def configure(
    level: str = "info",
    stream: TextIO | None = None,
    *,
    log_format: LogFormat = "json",
    member: str | None = None,
) -> None:
    """Install one handler on the root logger: JSON (with ``member``) or text, on ``stream``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(member))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # grpc's own logger is chatty about normal peer disconnects.
    logging.getLogger("grpc").setLevel(logging.ERROR)


def redact_url(url: str) -> str:
    """``scheme://host/…``: enough to say where, nothing that identifies whom."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "…"
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…"


def ids_field(report_ids: Sequence[str], limit: int = 100) -> str:
    """Report ids for a log line, space-separated and capped (ids only, never URLs)."""
    shown = " ".join(report_ids[:limit])
    return shown if len(report_ids) <= limit else f"{shown} …(+{len(report_ids) - limit})"
