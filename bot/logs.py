"""Structured logs: one JSON object per line, with the request's correlation id.

Log shippers (Loki/promtail, journald → anything, `docker logs`) index JSON fields
directly, so an operator can go from the id a user pastes ("ref 3f2a…") to every line
that request wrote.  `--log-format text` keeps a human-readable form for a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from bot import observe

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "chatops"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "correlation_id", "request_id", ...}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        scope = observe.current()
        if scope is not None:
            out.update({k: v for k, v in scope.fields().items() if v is not None})
        given = getattr(record, "chatops", None)
        if isinstance(given, dict):
            out.update({k: v for k, v in given.items() if v is not None})
        for key, value in record.__dict__.items():  # logger.info(..., extra={"key": value})
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, still carrying the correlation id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        scope = observe.current()
        given = getattr(record, "chatops", None) or {}
        cid = given.get("correlation_id") or (scope.correlation_id if scope else None)
        return f"{line} [{cid}]" if cid else line


def setup_logging(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every `chatops.*` (and library) log line to `stream` in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_chatops", False)]:
        root.removeHandler(old)
    handler._chatops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
