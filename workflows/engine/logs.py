"""How the long-running processes log: text for people, or JSON lines (TAKEDOWN_LOG_FORMAT).

    text   "2026-12-07 10:00:00,123 INFO sweep: 3 traced, …" (the default)
    json   {"time": "2026-12-07T10:00:00.123Z", "level": "info", "logger": "takedown.sweep",
            "message": "…", "process": 4242, "task": "takedown.trace", "task_id": "…",
            "case_ids": [1, 2, 3]}

A task's ids ride along on every line logged while it runs (`log_context`, set from
Celery's task_prerun signal), so Celery's own "Task … succeeded" line names its cases or
notices too; a record may add `case_id`/`notice_id` of its own with `extra=`.

Never URLs or bodies at info level: httpx logs every request with its URL at info, so its
loggers are kept to warnings; uvicorn's access lines lose their query strings (a desk
filter may carry a host or a URL). Bodies are never logged at any level.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
QUIET = ("httpx", "httpcore")  # they log each request's URL at info
IDS = ("case_id", "case_ids", "notice_id", "notice_ids")
_context: ContextVar[Mapping[str, Any] | None] = ContextVar("takedown_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add FIELDS to every JSON line logged in this thread (or task) until the block ends."""
    token = enter_context(**fields)
    try:
        yield
    finally:
        leave_context(token)


def enter_context(**fields: Any) -> object:
    """Add FIELDS to what this thread logs from now on; return the token leave_context takes."""
    return _context.set({**(_context.get() or {}), **fields})


def leave_context(token: object) -> None:
    """Undo enter_context."""
    _context.reset(token)  # type: ignore[arg-type]


class JSONFormatter(logging.Formatter):
    """One JSON object per record, with the running task's ids."""

    def format(self, record: logging.LogRecord) -> str:
        """Return RECORD as one line of JSON."""
        at = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        line.update(_context.get() or {})
        for name in IDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class HideQuery(logging.Filter):
    """Drop the query string from uvicorn's access lines: `GET /cases?host=… 200`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument of an access record; keep every record."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            record.args = (args[0], args[1], path + ("?…" if mark else ""), args[3], args[4])
        return True


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send this process's log records to stderr as text or JSON lines (LOG_FORMAT)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
        logging.captureWarnings(True)  # a warning is a JSON line too, not a raw stderr line
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_urls()


def say_as_json(message: str, stream: TextIO | None = None) -> None:
    """Print one of Celery's shutdown messages as a JSON line (it bypasses logging, since
    it is said from a signal handler; so does this, writing one line at once)."""
    line = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": "warning",
        "logger": "celery.apps.worker",
        "message": message.strip(),
        "process": os.getpid(),
    }
    print(json.dumps(line), file=stream or sys.__stderr__, flush=True)


def quiet_urls() -> None:
    """Keep the loggers that name URLs at info to warnings, and hide access queries."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideQuery) for f in access.filters):
        access.addFilter(HideQuery())


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """Return uvicorn's `log_config`: its own for text; None for JSON (records go to ours)."""
    if log_format == "json":
        configure_logging("json")
        return None
    quiet_urls()
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
