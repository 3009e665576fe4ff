"""Logging set-up: text or one JSON object a line, on stderr.

The root logger gets one `RateLimitHandler` (repeated warnings and errors are
counted, not repeated: see log_limit.py) around one `ConsoleHandler`, which
redacts secrets (log_redact.py) and shares stderr with the progress display:
a status line drawn there is cleared before a log record is written."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

import orjson

from streamer.observability.log_limit import RateLimitHandler
from streamer.observability.log_redact import Redactor

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CLEAR_LINE = "\r\x1b[K"  # back to column 0, erase to the end of the line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        item = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            item["exception"] = record.exc_text
        if record.stack_info:
            item["stack"] = record.stack_info
        return orjson.dumps(item).decode()


class ConsoleHandler(logging.StreamHandler):
    """stderr: log lines (secrets redacted) and at most one status line."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        super().__init__(stream)
        self.redactor = redactor
        self.addFilter(redactor)
        self._status: str | None = None  # the status line on screen

    def add_secrets(self, values: Iterable[str]) -> None:
        self.redactor.add_secrets(values)

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def emit(self, record: logging.LogRecord) -> None:
        # called under self.lock: the status line is cleared, the record written on
        # its own line, and the status drawn again below it
        if self._status is None:
            super().emit(record)
            return
        self._write_raw(CLEAR_LINE)
        super().emit(record)
        self._write_raw(f"\r{self._status}\x1b[K")

    def show_status(self, text: str) -> None:
        """Draw `text` as the status line (replacing the previous one)."""
        with self.lock:
            self._write_raw(f"\r{text}\x1b[K")
            self._status = text

    def clear_status(self) -> None:
        with self.lock:
            if self._status is not None:
                self._write_raw(CLEAR_LINE)
                self._status = None

    def _write_raw(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass


def setup_logging(fmt: str, level: str, stream: TextIO | None = None) -> ConsoleHandler:
    """Install the handlers on the root logger; returns the console handler (to
    register secrets with once the config is loaded)."""
    console = ConsoleHandler(stream if stream is not None else sys.stderr, Redactor())
    console.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [RateLimitHandler(console)]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return console


def console_handler() -> ConsoleHandler | None:
    """The console handler installed by setup_logging, if any."""
    for handler in logging.getLogger().handlers:
        target = handler.target if isinstance(handler, RateLimitHandler) else handler
        if isinstance(target, ConsoleHandler):
            return target
    return None


def flush_suppressed() -> None:
    """Write the pending "repeated N times" lines now (before the run's summary)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RateLimitHandler):
            handler.flush_pending()
