"""Logging set-up: text or one JSON object a line, on stderr.

The root logger gets one `RateLimitHandler` (repeated warnings and errors are
counted, not repeated: see log_limit.py) around one `ConsoleHandler`, which
redacts secrets (log_redact.py) and shares stderr with the progress display:
a status line drawn there is cleared before a log record is written.

With `json`, every line the process writes to stderr is one JSON object: log
records, the lines written before logging is of use (`report`: config
problems, refusals to start, usage errors), uncaught exceptions and Python
warnings; the run's summary line is a JSON object already."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from streamer.core.printable import escape_controls, printable_values
from streamer.observability.log_limit import RateLimitHandler
from streamer.observability.log_redact import Redactor

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CLEAR_LINE = "\r\x1b[K"  # back to column 0, erase to the end of the line


def _iso_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def _escaped(arg: Any) -> Any:
    """A log argument as a text line may hold it: numbers and None as they are (for
    `%d`), anything else escaped only when its text holds a control character."""
    if arg is None or isinstance(arg, int | float):
        return arg
    text = str(arg)
    escaped = escape_controls(text)
    return arg if escaped is text else escaped


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT with control characters in the message escaped: a file name (or
    any other value from outside) holding a newline cannot split a log line and so
    forge one.  A traceback keeps its lines (its exception text is a repr)."""

    def format(self, record: logging.LogRecord) -> str:
        msg, args = record.msg, record.args
        if isinstance(args, tuple):
            record.args = tuple(_escaped(arg) for arg in args)
        elif args:
            record.args = {key: _escaped(value) for key, value in args.items()}
        record.msg = _escaped(msg)
        try:
            return super().format(record)
        finally:
            record.msg, record.args = msg, args


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        item = {
            "time": _iso_time(record.created),
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
        try:
            return orjson.dumps(item).decode()
        except orjson.JSONEncodeError:  # a file name whose bytes are not UTF-8
            return orjson.dumps(printable_values(item)).decode()


class ConsoleHandler(logging.StreamHandler):
    """stderr: log lines (secrets redacted) and at most one status line."""

    def __init__(self, stream: TextIO, redactor: Redactor, json: bool = False) -> None:
        super().__init__(stream)
        self.redactor = redactor
        self.addFilter(redactor)
        self.json = json
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

    def report(self, text: str, level: str, logger: str, fields: dict[str, Any]) -> None:
        """`text` as it is, or as one JSON object with `fields` (secrets masked)."""
        text = self.redactor.masker.mask(text)
        if self.json:
            item = {"time": _iso_time(datetime.now(UTC).timestamp()), "level": level,
                    "logger": logger, "message": text, **fields}
            try:
                text = orjson.dumps(item).decode()
            except orjson.JSONEncodeError:  # a file name whose bytes are not UTF-8
                text = orjson.dumps(printable_values(item)).decode()
        with self.lock:
            if self._status is not None:
                self._write_raw(CLEAR_LINE)
            self._write_raw(text + "\n")
            if self._status is not None:
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
    json = fmt == "json"
    console = ConsoleHandler(stream if stream is not None else sys.stderr, Redactor(), json)
    console.setFormatter(JsonFormatter() if json else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [RateLimitHandler(console)]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if json:  # what Python itself writes to stderr goes through the JSON handler too
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    return console


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("streamer").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("streamer").critical(
        "uncaught exception in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def report(text: str, *, level: str = "error", logger: str = "streamer",
           **fields: Any) -> None:
    """A line for the operator outside the log levels and the rate limit (a config
    problem, a refusal to start): `text` as it is with `--log-format text`, one JSON
    object (`time`, `level`, `logger`, `message` = `text`, and `fields`) with
    `json`.  Before setup_logging: `text` on stderr."""
    console = console_handler()
    if console is None:
        print(text, file=sys.stderr)
        return
    console.report(text, level, logger, fields)


def console_handler() -> ConsoleHandler | None:
    """The console handler installed by setup_logging, if any."""
    for handler in logging.getLogger().handlers:
        target = handler.target if isinstance(handler, RateLimitHandler) else handler
        if isinstance(target, ConsoleHandler):
            return target
    return None


def mask_secrets(text: str) -> str:
    """`text` with the secrets the log handler knows masked (as in log lines)."""
    console = console_handler()
    return text if console is None else console.redactor.masker.mask(text)


def rate_limiter() -> RateLimitHandler | None:
    """The rate limit handler installed by setup_logging, if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RateLimitHandler):
            return handler
    return None


def flush_suppressed() -> None:
    """Write the pending "repeated N times" lines now (before the run's summary)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RateLimitHandler):
            handler.flush_pending()
