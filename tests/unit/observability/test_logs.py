"""Log lines: one JSON object a line, repeated warnings counted not repeated,
secrets masked (message, arguments, exception text)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamer.observability.log_limit import RateLimitHandler, limit_group
from streamer.observability.log_redact import Redactor
from streamer.observability.logs import (
    TEXT_FORMAT,
    ConsoleHandler,
    JsonFormatter,
    TextFormatter,
    console_handler,
    flush_suppressed,
    setup_logging,
)
from tests.helpers import wait_until

SECRET = "1234/0123456789abcdef0123456789abcdef"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Chain:
    """A logger wired like setup_logging wires the root: limiter -> console."""

    def __init__(self, fmt: str, name: str, **limit) -> None:
        self.stream = io.StringIO()
        self.console = ConsoleHandler(self.stream, Redactor())
        self.console.setFormatter(JsonFormatter() if fmt == "json"
                                  else TextFormatter(TEXT_FORMAT))
        self.limiter = RateLimitHandler(self.console, **limit)
        self.logger = logging.getLogger(f"test_logs.{name}")
        self.logger.handlers[:] = [self.limiter]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.fmt = fmt

    def messages(self) -> list[str]:
        """The message of every line (JSON: its "message"; text: after "name: ")."""
        out = []
        text = self.stream.getvalue()
        # JSON may hold U+2028 as it is (valid JSON; str.splitlines would split there)
        for line in text.split("\n") if self.fmt == "json" else text.splitlines():
            if not line:
                continue
            if self.fmt == "json":
                out.append(orjson.loads(line)["message"])
            elif f"{self.logger.name}: " in line:
                out.append(line.split(f"{self.logger.name}: ", 1)[1])
        return out

    def close(self) -> None:
        self.limiter.close()
        self.logger.handlers[:] = []


@pytest.fixture(params=["text", "json"])
def fmt(request) -> str:
    return request.param


@pytest.fixture
def chain(fmt: str, request) -> Iterator[Chain]:
    c = Chain(fmt, request.node.name, clock=FakeClock(), use_timer=False)
    yield c
    c.close()


def test_json_is_one_object_per_line_even_with_newlines_and_tracebacks() -> None:
    c = Chain("json", "json_lines")
    try:
        c.logger.info("two\nlines %s", "here")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            c.logger.exception("it failed")
        lines = c.stream.getvalue().splitlines()
        assert len(lines) == 2
        first, second = (orjson.loads(line) for line in lines)
        assert first["message"] == "two\nlines here"
        assert first["level"] == "info" and first["logger"] == c.logger.name
        assert second["message"] == "it failed" and second["level"] == "error"
        assert second["exception"].startswith("Traceback")
        assert second["exception"].endswith("RuntimeError: boom")
    finally:
        c.close()


def test_repeats_beyond_the_burst_are_counted_in_one_line(chain: Chain) -> None:
    clock = chain.limiter._clock
    for i in range(533):
        chain.logger.warning("POST %s failed: connection refused", f"/shard/{i}")
        clock.now += 0.01  # 533 in 5.3 s: one window
    chain.logger.warning("another warning %d", 1)  # its own group
    chain.logger.info("info is never limited")
    assert chain.messages() == [
        *(f"POST /shard/{i} failed: connection refused" for i in range(10)),
        "another warning 1", "info is never limited"]
    clock.now = 1000.0 + 10.5  # the window of the first group has ended
    chain.logger.info("next")
    assert chain.messages()[-2:] == [
        "POST /shard/532 failed: connection refused -- repeated 523 times in the last 10s "
        "(suppressed)", "next"]
    if chain.fmt == "json":
        count_line = orjson.loads(chain.stream.getvalue().splitlines()[-2])
        assert count_line["level"] == "warning" and count_line["logger"] == chain.logger.name
    else:
        assert " WARNING test_logs." in chain.stream.getvalue().splitlines()[-2]


def test_a_new_window_shows_the_burst_again_and_quiet_groups_print_no_count(
        chain: Chain) -> None:
    clock = chain.limiter._clock
    for i in range(12):
        chain.logger.error("disk full (%d)", i)
    for _ in range(3):
        chain.logger.error("quiet one")
    clock.now += 11
    for i in range(12, 24):
        chain.logger.error("disk full (%d)", i)
    chain.limiter.flush_pending()
    assert chain.messages() == [
        *(f"disk full ({i})" for i in range(10)), "quiet one", "quiet one", "quiet one",
        "disk full (11) -- repeated 2 times in the last 10s (suppressed)",
        *(f"disk full ({i})" for i in range(12, 22)),
        "disk full (23) -- repeated 2 times in the last 10s (suppressed)"]
    chain.limiter.flush_pending()  # nothing left: no second count line
    assert len(chain.messages()) == 25


def test_a_limit_group_limits_each_component_on_its_own(chain: Chain) -> None:
    for i in range(12):
        for sink in ("a", "b"):  # one template, two sinks failing at once
            chain.logger.warning("td sink %s: POST failed (%d)", sink, i,
                                 extra=limit_group(sink))
    chain.limiter.flush_pending()
    assert chain.messages() == [
        *(f"td sink {sink}: POST failed ({i})" for i in range(10) for sink in ("a", "b")),
        "td sink a: POST failed (11) -- repeated 2 times in the last 10s (suppressed)",
        "td sink b: POST failed (11) -- repeated 2 times in the last 10s (suppressed)"]


def test_the_timer_writes_the_count_when_the_storm_stops() -> None:
    c = Chain("text", "timer", burst=3, window_s=0.2)
    try:
        for i in range(8):
            c.logger.warning("retrying %d", i)
        assert c.messages() == ["retrying 0", "retrying 1", "retrying 2"]
        # nothing else is logged: the timer alone must write the count line
        wait_until(lambda: len(c.messages()) == 4, timeout=10, what="the count line")
        assert c.messages()[3] == "retrying 7 -- repeated 5 times in the last 0.2s (suppressed)"
    finally:
        c.close()


def test_registered_secrets_are_masked_in_message_args_and_traceback(chain: Chain) -> None:
    chain.console.add_secrets([SECRET, AWS_SECRET, ""])
    chain.logger.warning(f"key {SECRET} in the template")
    chain.logger.warning("key %s in the arguments, aws %r", SECRET, AWS_SECRET)
    chain.logger.warning("url-encoded: https://in.example/t?k=%s", "1234%2F0123456789abcdef"
                         "0123456789abcdef")
    try:
        raise ConnectionError(f"server said no to {SECRET}")
    except ConnectionError:
        chain.logger.exception("request failed")
    out = chain.stream.getvalue()
    assert SECRET not in out and AWS_SECRET not in out and "0123456789abcdef" not in out
    messages = chain.messages()
    assert messages[:3] == ["key *** in the template", "key *** in the arguments, aws '***'",
                            "url-encoded: https://in.example/t?k=***"]
    assert messages[3] == "request failed"
    exception = (orjson.loads(out.splitlines()[-1])["exception"] if chain.fmt == "json"
                 else out.split("request failed\n", 1)[1])
    assert "Traceback (most recent call last)" in exception
    assert exception.rstrip().endswith("ConnectionError: server said no to ***")


def test_secret_in_a_suppressed_message_is_masked_in_the_count_line(chain: Chain) -> None:
    chain.console.add_secrets([SECRET])
    for _ in range(11):
        chain.logger.error("bad key %s", SECRET)
    chain.limiter.flush_pending()
    assert SECRET not in chain.stream.getvalue()
    assert chain.messages()[-1] == "bad key *** -- repeated 1 times in the last 10s (suppressed)"


@pytest.mark.parametrize(("text", "want"), [
    ("POST https://in.treasuredata.com/postback/v3/event/db/t?td_write_key=1%2Fabc&x=1",
     "POST https://in.treasuredata.com/postback/v3/event/db/t?td_write_key=***&x=1"),
    ("headers {'Authorization': 'TD1 9/zzzzzz', 'User-Agent': 'streamer'}",
     "headers {'Authorization': 'TD1 ***', 'User-Agent': 'streamer'}"),
    ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
    ("X-Amz-Security-Token: FQoGZXIvYXdzEBYaDH", "X-Amz-Security-Token: ***"),
    ("?X-Amz-Security-Token=FQoGZX%2Bab&X-Amz-Signature=abcdef",
     "?X-Amz-Security-Token=***&X-Amz-Signature=***"),
    ("X-TD-Write-Key: 1/abcd", "X-TD-Write-Key: ***"),
    ('write_key = "1/abcd" in streamer.toml', 'write_key = "***" in streamer.toml'),
    ("aws_secret_access_key=abc/def session_token: qqq",
     "aws_secret_access_key=*** session_token: ***"),
    # not secrets: left alone
    ("write_key_file=/etc/streamer/td.key", "write_key_file=/etc/streamer/td.key"),
    ("The request signature we calculated does not match",
     "The request signature we calculated does not match"),
])
def test_pattern_backstop_masks_credentials_nobody_registered(chain: Chain, text: str,
                                                              want: str) -> None:
    chain.logger.warning("%s", text)
    assert chain.messages() == [want]


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_setup_logging_wires_limiter_redactor_and_console(fmt: str) -> None:
    stream = io.StringIO()
    console = setup_logging(fmt, "info", stream=stream)
    assert console_handler() is console
    console.add_secrets([SECRET])
    log = logging.getLogger("streamer.test_setup")
    for i in range(15):
        log.warning("sink %s failed with key %s", i, SECRET)
    log.debug("below the level")
    flush_suppressed()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert SECRET not in stream.getvalue()
    last = orjson.loads(lines[-1])["message"] if fmt == "json" else lines[-1]
    assert last.endswith("sink 14 failed with key *** -- repeated 5 times in the last 10s "
                         "(suppressed)")


def test_status_line_is_cleared_before_a_log_record() -> None:
    c = Chain("text", "status", use_timer=False)
    try:
        c.console.show_status("streamer: 10 records")
        c.logger.info("a log line")
        c.console.show_status("streamer: 20 records")
        c.console.clear_status()
        c.console.clear_status()  # nothing shown: writes nothing
        out = c.stream.getvalue()
        first, rest = out.split("\n", 1)
        # drawn, cleared, the record on its own line, drawn again below it
        assert first.startswith("\rstreamer: 10 records\x1b[K\r\x1b[K")
        assert first.endswith("test_logs.status: a log line")
        assert rest == ("\rstreamer: 10 records\x1b[K\rstreamer: 20 records\x1b[K\r\x1b[K")
        c.logger.info("no status now")
        assert c.stream.getvalue()[len(out):].endswith("status: no status now\n")
    finally:
        c.close()



def test_report_is_the_text_as_it_is_or_one_json_object(fmt: str) -> None:
    from streamer.observability.logs import report

    stream = io.StringIO()
    console = setup_logging(fmt, "error", stream=stream)
    console.add_secrets([SECRET])
    console.show_status("status")
    report("sinks.td.table: bad " + SECRET, logger="streamer.config",
           key="sinks.td.table")
    report("warning: a file is readable", level="warning")
    console.clear_status()
    lines = [line.rpartition("\r")[2].replace("\x1b[K", "")
             for line in stream.getvalue().split("\n") if line.rpartition("\r")[2]]
    if fmt == "text":
        assert lines[:2] == ["sinks.td.table: bad ***", "warning: a file is readable"]
        return
    first, second = (orjson.loads(line) for line in lines[:2])
    assert {k: first[k] for k in ("level", "logger", "message", "key")} == {
        "level": "error", "logger": "streamer.config", "key": "sinks.td.table",
        "message": "sinks.td.table: bad ***"}
    assert second["level"] == "warning" and second["logger"] == "streamer"
    assert "time" in first and SECRET not in stream.getvalue()


def test_limiter_counts_records_it_was_not_given() -> None:
    """A caller with many records of one group logs the room left and hands the rest
    over as a count: the same lines as logging each one."""
    c = Chain("text", "room", clock=FakeClock(), use_timer=False)
    try:
        key = (c.logger.name, logging.WARNING, "bad line %d", "src")
        assert c.limiter.room(key) == 10
        for i in range(4):
            c.logger.warning("bad line %d", i, extra=limit_group("src"))
        assert c.limiter.room(key) == 6
        assert c.limiter.room((c.logger.name, logging.INFO, "bad line %d", "src")) == 10
        for i in range(4, 10):
            c.logger.warning("bad line %d", i, extra=limit_group("src"))
        assert c.limiter.room(key) == 0
        c.limiter.count_suppressed(key, 990, "bad line %d", (999,))
        c.logger.warning("bad line %d", 1000, extra=limit_group("src"))  # one more: counted
        c.limiter._clock.now += 10.5
        assert c.limiter.room(key) == 10  # the window ended
        c.limiter.flush_pending()
        assert c.messages() == [*(f"bad line {i}" for i in range(10)),
                                "bad line 1000 -- repeated 991 times in the last 10s "
                                "(suppressed)"]
    finally:
        c.close()


def test_problem_fields_name_the_key_or_the_file() -> None:
    from streamer.config.problems import problem_fields

    assert problem_fields("sinks.stage.max_file_records: Input should be greater than 0",
                          "my.toml") == {"key": "sinks.stage.max_file_records"}
    assert problem_fields("sources.x.paths[0]: bad", "c.toml") == {"key": "sources.x.paths[0]"}
    assert problem_fields("my.toml: TOML syntax error: x", "my.toml") == {"file": "my.toml"}
    assert problem_fields("sources: only one stdin source is possible (a, b)", "c") == {
        "key": "sources"}
    assert problem_fields("data_dir /x is in use by another streamer process", "c") == {}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_characters_in_arguments_cannot_split_a_line(fmt: str) -> None:
    chain = Chain(fmt, f"controls_{fmt}")
    name = Path("/logs/a\nFORGED\r\x1b[2K\u2028b.ndjson")
    chain.logger.warning("reading %s from offset %d (%s)", name, 7, "x\ty")
    chain.logger.warning("a message with a\nnewline")
    lines = chain.stream.getvalue().rstrip("\n").split("\n")
    assert len(lines) == 2, lines
    if fmt == "text":
        assert len(chain.stream.getvalue().splitlines()) == 2
        assert chain.messages() == [
            "reading /logs/a\\nFORGED\\r\\x1b[2K\\u2028b.ndjson from offset 7 (x\\ty)",
            "a message with a\\nnewline"]
    else:
        assert chain.messages() == [f"reading {name} from offset 7 (x\ty)",
                                    "a message with a\nnewline"]
