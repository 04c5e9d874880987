"""Structured logs (python-json-logger): JSON lines with ihx's fields and the extra ones; text
lines when asked; URLs reduced to scheme and host."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime, timedelta
from importlib.metadata import version

from exchange.ops.json_logging import JsonFormatter, configure, redact_url


def test_json_line_carries_extra_fields() -> None:
    stream = io.StringIO()
    configure("info", stream, member="nl-eokm")
    logging.getLogger("exchange.test").info("stored", extra={"report_id": "r-1", "count": 3})
    doc = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert list(doc)[:4] == ["time", "level", "logger", "message"]
    assert datetime.fromisoformat(doc["time"]).utcoffset() == timedelta(0)
    assert doc["message"] == "stored"
    assert doc["member"] == "nl-eokm"
    assert doc["version"] == version("ihx")
    assert doc["level"] == "info"
    assert doc["report_id"] == "r-1"
    assert doc["count"] == 3
    assert doc["logger"] == "exchange.test"


def test_text_format_is_not_json() -> None:
    stream = io.StringIO()
    configure("info", stream, log_format="text")
    logging.getLogger("exchange.test").warning("peer down")
    line = stream.getvalue().strip()
    assert line.endswith("WARNING exchange.test: peer down")
    assert not line.startswith("{")


def test_error_records_one_line_not_a_traceback() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, "f", 1, "failed", (), sys.exc_info()
        )
    doc = json.loads(formatter.format(record))
    assert doc["error"] == "ValueError: boom"
    assert "\n" not in formatter.format(record)
    assert "exc_info" not in doc


def test_redact_url_keeps_only_scheme_and_host() -> None:
    assert redact_url("https://user:pw@Host.example/victim/name?q=1#f") == "https://Host.example/…"
    assert redact_url("http://example.nl?x=1") == "http://example.nl/…"
    assert redact_url("not a url") == "…"


def test_ids_field_caps_long_lists() -> None:
    from exchange.ops.json_logging import ids_field

    assert ids_field(["r-1", "r-2"]) == "r-1 r-2"
    many = [f"r-{i}" for i in range(105)]
    assert ids_field(many).endswith("r-99 …(+5)")
