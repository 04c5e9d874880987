"""Structured logs: one JSON object per line, carrying report ids, never URL paths or queries.

A reported URL's path and query can identify a victim, so they never reach logs at info level:
code logs report ids, and ``redact_url`` keeps only scheme and host when a URL must be named.
``configure`` installs the JSON formatter on the root logger (``ihx node run`` calls it);
fields passed with ``extra={"report_id": …}`` become top-level keys.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info and record.levelno >= logging.ERROR:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, ensure_ascii=False)


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
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
