"""Logging set-up for the entry points: JSON lines or readable text, with a request/job id."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

# Bound by the request middleware and the worker, so every line says what it belongs to.
context_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("context_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "context_id"}


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context_id = context_id.get() or "-"
        return True


class _TextFormatter(logging.Formatter):
    """`time level logger [id] message key=value …` for reading in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        return f"{line} {extra}" if extra else line


class _StderrHandler(logging.StreamHandler):
    """Writes to the current `sys.stderr`, even when it has been replaced since set-up."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = _StderrHandler()
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(context_id)s %(message)s"))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(name)s [%(context_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # `serve` writes one access line per request at INFO (web/access_log.py); the level governs it.
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)
    # Alembic chatters at INFO on every schema check; commands print their own summary.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
