"""SIGHUP reloads the config of a running daemon (the CLI as a subprocess)."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers import (
    Daemon,
    assert_same_multiset,
    base_config,
    csv_cell,
    file_source,
    free_port,
    multiset,
    scrape,
    socket_source,
    stage_files,
    stage_sink,
    stop,
    stored,
    summary_identity_problems,
    summary_of,
    td_sink,
    wait_for_log,
    wait_until,
    write_config,
    write_ndjson,
)
from tests.helpers.sockets import self_signed


def records(start: int, n: int) -> list[dict[str, Any]]:
    """Records with a unique id and values that differ per record."""
    return [{"id": i, "k": f"key-{i}", "n": i * 3, "note": "a,b" if i % 7 == 0 else None}
            for i in range(start, start + n)]


def stage(name: str, tmp: Path, columns: list[str]) -> str:
    return stage_sink(tmp, name=name, columns=columns, max_file_age_s=0.3)


def config(tmp: Path, sources: dict[str, list[Path]], sinks: str, api: str = "") -> Path:
    text = base_config(tmp, api=api, checkpoint_interval_s=0.2)
    for name, paths in sources.items():
        text += file_source(paths, name=name, follow=None, poll_interval_ms=20,
                            extra="glob_interval_ms = 100")
    return write_config(tmp, text + sinks)


def staged(directory: Path) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(header, row) of every row of every completed stage file."""
    return [(tuple(header), tuple(row))
            for _path, (header, *rows) in stage_files(directory) for row in rows]


def expected(record: dict[str, Any], header: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(csv_cell(record.get(c)) for c in header)


def assert_rows_match(rows: list[tuple[tuple[str, ...], tuple[str, ...]]],
                      by_id: dict[int, dict[str, Any]]) -> Counter[int]:
    """Every row is exactly its record under its file's header; returns the id counts."""
    wrong = [(h, r) for h, r in rows if r != expected(by_id[int(r[0])], h)]
    assert not wrong, f"{len(wrong)} rows differ from their records, e.g. {wrong[:2]}"
    return Counter(int(r[0]) for _, r in rows)


def staged_ids(directory: Path) -> set[int]:
    return {int(row[0]) for _, row in staged(directory)}


def assert_identity(summary: dict[str, Any]) -> None:
    assert not summary_identity_problems(summary)
    for name, sink in summary["sinks"].items():
        assert sink["in_flight"] == 0, (name, sink)


class Appender:
    """Appends batches of records to a file in the background, as a logging app would."""

    def __init__(self, path: Path, start: int, batches: int, size: int = 100,
                 pause_s: float = 0.02) -> None:
        self.records: list[dict[str, Any]] = []
        self._args = (path, start, batches, size, pause_s)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path, start, batches, size, pause_s = self._args
        for b in range(batches):
            batch = records(start + b * size, size)
            write_ndjson(path, batch, mode="ab")
            self.records.extend(batch)
            time.sleep(pause_s)

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(30)
        return self.records


def test_invalid_config_is_refused_and_the_pipeline_keeps_running(tmp_path):
    source = tmp_path / "a.ndjson"
    first = records(0, 2000)
    write_ndjson(source, first)
    columns = ["id", "k", "n", "note"]
    path = config(tmp_path, {"events": [source]}, stage("stage", tmp_path, columns))
    daemon = Daemon(path, tmp_path / "run.log")
    try:
        wait_until(lambda: len(staged(tmp_path / "stage")) == 2000, what="first records staged")
        # two problems; the valid part (new columns) must not be applied either
        bad = path.read_text().replace('"note"]', '"note", "extra"]').replace(
            "max_file_age_s = 0.3", "max_file_age_s = 0.3\nmax_file_records = 0\ncolums = []")
        path.write_text(bad)
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload refused")
        errors = [line for line in daemon.log.splitlines() if "reload:" in line]
        assert any("sinks.stage.max_file_records" in line and "greater than 0" in line
                   for line in errors), errors
        assert any("sinks.stage.colums" in line for line in errors), errors
        second = records(2000, 3000)
        write_ndjson(source, second, mode="ab")
        wait_until(lambda: len(staged(tmp_path / "stage")) == 5000, what="records after it")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    rows = staged(tmp_path / "stage")
    by_id = {r["id"]: r for r in first + second}
    counts = assert_rows_match(rows, by_id)
    assert_same_multiset(counts, Counter(list(by_id)))  # every record exactly once
    assert {header for header, _ in rows} == {tuple(columns)}  # nothing of the bad config
    summary = summary_of(daemon.log)
    assert summary["sinks"]["stage"]["delivered"] == 5000
    assert_identity(summary)


def test_changed_sink_and_source_are_rebuilt_while_records_flow(tmp_path):
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first = records(0, 3000)
    write_ndjson(a, first)
    path = config(tmp_path, {"events": [a]}, stage("stage", tmp_path, ["id", "k"])
                  + stage("gone", tmp_path, ["id", "n"]))
    daemon = Daemon(path, tmp_path / "run.log")
    try:
        wait_until(lambda: len(staged(tmp_path / "stage")) == 3000, what="first records staged")
        flowing = Appender(a, 3000, batches=60)  # about 1.5 s of appends around the reload
        time.sleep(0.3)
        # the stage sink gets a column, the source a second file, a new sink appears,
        # the sink "gone" is removed
        config(tmp_path, {"events": [a, b]},
               stage("stage", tmp_path, ["id", "k", "n"]) + stage("wide", tmp_path, ["id", "n"]))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload done")
        during = flowing.join()
        late = records(100_000, 1000)
        write_ndjson(b, late)
        everything = first + during + late
        want = {r["id"] for r in everything}
        wait_until(lambda: staged_ids(tmp_path / "stage") == want, what="every record staged")
        wait_until(lambda: {r["id"] for r in late} <= staged_ids(tmp_path / "wide"),
                   what="b.ndjson in the new sink")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    log = daemon.log
    assert re.search(r"reload: rebuilt sinks stage; added sinks wide; removed sinks gone; "
                     r"rebuilt sources events", log), log[-3000:]
    by_id = {r["id"]: r for r in everything}
    rows = staged(tmp_path / "stage")
    counts = assert_rows_match(rows, by_id)
    assert set(counts) == set(by_id)  # at least once (a rebuilt source may repeat its tail)
    headers = Counter(header for header, _ in rows)
    assert set(headers) == {("id", "k"), ("id", "k", "n")}, headers
    new_ids = {int(r[0]) for h, r in rows if h == ("id", "k", "n")}
    assert {r["id"] for r in late} <= new_ids  # only read after the reload: new columns
    wide = staged(tmp_path / "wide")
    assert {h for h, _ in wide} == {("id", "n")}
    assert {r["id"] for r in late} <= set(assert_rows_match(wide, by_id))
    # the removed sink delivered everything it had received, once, and nothing later
    gone = staged(tmp_path / "gone")
    gone_ids = assert_rows_match(gone, by_id)
    assert set(gone_ids.values()) == {1}
    assert {r["id"] for r in first} <= set(gone_ids)
    assert not {r["id"] for r in late} & set(gone_ids)
    summary = summary_of(log)
    assert_identity(summary)  # the removed sink is still in the summary
    assert summary["sinks"]["stage"]["delivered"] == len(rows)
    assert summary["sinks"]["wide"]["delivered"] == len(wide)
    assert summary["sinks"]["gone"]["delivered"] == len(gone)


def test_unchanged_source_keeps_reading_and_counters_continue(tmp_path):
    a = tmp_path / "a.ndjson"
    first = records(0, 2000)
    write_ndjson(a, first)
    sinks = stage("keep", tmp_path, ["id", "k", "n", "note"]) + stage("other", tmp_path, ["id"])
    path = config(tmp_path, {"events": [a]}, sinks)
    daemon = Daemon(path, tmp_path / "run.log")
    try:
        wait_until(lambda: len(staged(tmp_path / "other")) == 2000, what="first records staged")
        flowing = Appender(a, 2000, batches=60)
        time.sleep(0.3)
        config(tmp_path, {"events": [a]},
               stage("keep", tmp_path, ["id", "k", "n", "note"])
               + stage("other", tmp_path, ["id", "k"]))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "SIGHUP received")
        daemon.signal(signal.SIGHUP)  # a second one while the first may still run
        wait_for_log(daemon, "SIGHUP received", count=2)
        wait_for_log(daemon, "no source or sink changed")
        everything = first + flowing.join()
        wait_until(lambda: len(staged(tmp_path / "other")) == len(everything)
                   and len(staged(tmp_path / "keep")) == len(everything), what="all staged")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    log = daemon.log
    assert len(re.findall(r"reload: rebuilt sinks other; unchanged", log)) == 1, log[-3000:]
    # the file was opened once: the source's reader was never restarted
    assert len(re.findall(r"reading \S*a\.ndjson from offset", log)) == 1, log[-3000:]
    by_id = {r["id"]: r for r in everything}
    keep = staged(tmp_path / "keep")
    other = staged(tmp_path / "other")
    # exactly once in both: the unchanged sink saw no pause-and-replay, and the
    # changed one got every record either before or after its rebuild
    assert_same_multiset(assert_rows_match(keep, by_id), Counter(list(by_id)))
    assert_same_multiset(assert_rows_match(other, by_id), Counter(list(by_id)))
    assert {h for h, _ in other} == {("id",), ("id", "k")}
    summary = summary_of(log)
    assert_identity(summary)
    # counters of the rebuilt sink continued: they cover the rows of both versions
    assert summary["sinks"]["other"]["received"] == len(everything)
    assert summary["sinks"]["other"]["delivered"] == len(everything)
    assert summary["sources"]["events"]["records"] == len(everything)


def test_sighup_during_the_drain_is_ignored(tmp_path):
    a = tmp_path / "a.ndjson"
    write_ndjson(a, records(0, 100))
    port = free_port()  # a loopback port nobody listens on: every send fails
    td = td_sink(f"http://127.0.0.1:{port}", api=None, timeout_s=None, write_key="1/abc",
                 retry={"initial_backoff_ms": 50, "max_backoff_ms": 200})
    path = config(tmp_path, {"events": [a]}, td)
    daemon = Daemon(path, tmp_path / "run.log")
    try:
        wait_for_log(daemon, "reading")
        wait_for_log(daemon, "td sink td")  # retrying: the drain cannot finish
        daemon.signal(signal.SIGTERM)
        wait_for_log(daemon, "SIGTERM received")
        config(tmp_path, {"events": [a]}, td.replace('"events"', '"other"'))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "SIGHUP ignored: shutting down")
        daemon.signal(signal.SIGTERM)  # the second one forces the exit
        assert daemon.wait(30) == 1, daemon.log[-3000:]
    finally:
        daemon.stop()
    assert "reload:" not in daemon.log
    summary = summary_of(daemon.log)
    assert summary["sinks"]["td"]["delivered"] == 0
    assert summary["sinks"]["td"]["received"] == 100  # still in flight: recoverable


def td_sink_config(url: str, table: str) -> str:
    return td_sink(url, table=table, api=None, timeout_s=10, retry=None)


def test_a_sighup_during_a_reload_is_served_after_it(tmp_path, td_emulator):
    a = tmp_path / "a.ndjson"
    first = records(0, 300)
    write_ndjson(a, first)
    path = config(tmp_path, {"events": [a]}, td_sink_config(td_emulator.url, "events"))
    daemon = Daemon(path, tmp_path / "run.log", env={"TD_WRITE_KEY": td_emulator.key})
    try:
        wait_until(lambda: len(td_emulator.records()) == 300, what="first records in TD")
        # slow answers: the old td sink needs about two seconds to drain what it holds
        td_emulator.set_faults(slow=1.0, slow_seconds=1.0)
        held = records(300, 100)
        write_ndjson(a, held, mode="ab")
        wait_until(lambda: td_emulator.stats()["faults"]["slow"] >= 50, what="slow requests")
        config(tmp_path, {"events": [a]}, td_sink_config(td_emulator.url, "events2"))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload: rebuilt sinks td")
        config(tmp_path, {"events": [a]}, td_sink_config(td_emulator.url, "events2")
               + stage("stage", tmp_path, ["id", "k"]))
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "SIGHUP received during a reload")
        wait_for_log(daemon, "reload done", count=2)
        td_emulator.set_faults()
        late = records(400, 300)
        write_ndjson(a, late, mode="ab")
        everything = first + held + late
        wait_until(lambda: len(td_emulator.records()) >= len(everything), what="all in TD")
        wait_until(lambda: len(staged(tmp_path / "stage")) >= len(late), what="late staged")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    log = daemon.log
    # the second reload started only after the first had finished
    first_done = log.index("reload done")
    assert log.index("reload: added sinks stage") > first_done, log[-3000:]
    assert log.index("reload: rebuilt sinks td") < first_done
    assert_same_multiset(multiset(stored(td_emulator)), multiset(everything))
    by_table = {r["record"]["id"]: r["table"] for r in td_emulator.records()}
    assert {by_table[r["id"]] for r in first} == {"events"}
    assert {by_table[r["id"]] for r in late} == {"events2"}
    by_id = {r["id"]: r for r in everything}
    rows = staged(tmp_path / "stage")
    assert_same_multiset(assert_rows_match(rows, by_id), Counter(r["id"] for r in late))
    summary = summary_of(log)
    assert_identity(summary)
    assert summary["sinks"]["td"]["delivered"] == len(everything)
    assert summary["sinks"]["td"]["requests_2xx"] == len(everything)  # continued, not reset


def test_sigterm_during_a_reload_drains_the_old_and_the_new_sink(tmp_path, td_emulator):
    a = tmp_path / "a.ndjson"
    everything = records(0, 500)
    write_ndjson(a, everything[:300])
    port = free_port()
    api = f"127.0.0.1:{port}"
    path = config(tmp_path, {"events": [a]}, td_sink_config(td_emulator.url, "events"), api=api)
    daemon = Daemon(path, tmp_path / "run.log", env={"TD_WRITE_KEY": td_emulator.key})
    read_total = ("streamer_source_records_total", (("source", "events"),))
    try:
        wait_until(lambda: len(td_emulator.records()) == 300, what="first records in TD")
        td_emulator.set_faults(slow=1.0, slow_seconds=1.0)
        write_ndjson(a, everything[300:400], mode="ab")
        wait_until(lambda: td_emulator.stats()["faults"]["slow"] >= 50, what="slow requests")
        config(tmp_path, {"events": [a]}, td_sink_config(td_emulator.url, "events2"), api=api)
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload: rebuilt sinks td")
        # read while the old sink drains: these wait in the new sink's buffer
        write_ndjson(a, everything[400:], mode="ab")
        wait_until(lambda: scrape(port).get(read_total) == 500, what="all 500 read")
        assert "reload done" not in daemon.log  # still draining the old sink
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    summary = summary_of(daemon.log)
    assert_identity(summary)
    read = summary["sources"]["events"]["records"]
    assert read == 500, summary
    # what was read is delivered exactly once, by the old or by the new sink
    assert_same_multiset(multiset(stored(td_emulator)), multiset(everything[:read]))
    tables = {r["record"]["id"]: r["table"] for r in td_emulator.records()}
    assert {tables[r["id"]] for r in everything[400:read]} == {"events2"}
    assert summary["sinks"]["td"]["delivered"] == read
    assert "reload done" not in daemon.log  # the stop came first: no "done" claim


def socket_config(tmp: Path, port: int, max_connections: int) -> Path:
    return write_config(tmp, base_config(tmp, checkpoint_interval_s=None)
                        + socket_source("net", "newline", port=port,
                                        extra=f"max_connections = {max_connections}")
                        + stage("stage", tmp, ["id", "k", "n", "note"]))


def send_lines(port: int, batch: list[dict[str, Any]]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in batch))


def test_a_changed_socket_source_listens_again_on_its_port(tmp_path):
    port = free_port()
    path = socket_config(tmp_path, port, 16)
    daemon = Daemon(path, tmp_path / "run.log")
    first, second = records(0, 1000), records(1000, 1000)
    try:
        wait_for_log(daemon, "listening on")
        send_lines(port, first)
        wait_until(lambda: len(staged(tmp_path / "stage")) == 1000, what="first records")
        socket_config(tmp_path, port, 8)
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload done")
        wait_for_log(daemon, "listening on", count=2)
        send_lines(port, second)
        wait_until(lambda: len(staged(tmp_path / "stage")) == 2000, what="records after it")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    assert "reload: rebuilt sources net; unchanged and still running: sinks stage" in daemon.log
    by_id = {r["id"]: r for r in first + second}
    counts = assert_rows_match(staged(tmp_path / "stage"), by_id)
    assert_same_multiset(counts, Counter(list(by_id)))
    summary = summary_of(daemon.log)
    assert_identity(summary)
    assert summary["sources"]["net"]["records"] == 2000


def _send_tls(port: int, trusted: Path, line: bytes) -> None:
    context = ssl.create_default_context(cafile=str(trusted))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(line)
        sock.unwrap()


def test_a_renewed_tls_certificate_is_served_after_sighup(tmp_path):
    """A certificate renewed in place (certbot and the like rewrite the same files), then
    SIGHUP: the socket source serves the new one. Before 2026-12-04 the reload saw the
    same paths, said "no source or sink changed" and served the old certificate until a
    restart (clients failed once it expired)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    first = tmp_path / "first.pem"
    first.write_bytes(cert.read_bytes())
    port = free_port()
    extra = f'tls = {{cert = "{cert}", key = "{key}"}}'
    daemon = Daemon(write_config(tmp_path, base_config(tmp_path)
                                 + socket_source("net", "newline", port=port, extra=extra)
                                 + stage_sink(tmp_path)), tmp_path / "run.log")
    try:
        wait_for_log(daemon, "listening on")
        _send_tls(port, first, b'{"id": 1}\n')
        self_signed(cert, key)  # renewed: another key pair in the same files
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload done")
        wait_for_log(daemon, "listening on", count=2)
        _send_tls(port, cert, b'{"id": 2}\n')  # only the new certificate is trusted
        wait_until(lambda: len(staged(tmp_path / "stage")) == 2, what="both records")
        stop(daemon, timeout=30)
    finally:
        daemon.stop()
    assert sorted(int(row[header.index("id")])
                  for header, row in staged(tmp_path / "stage")) == [1, 2]


def test_a_rebuilt_source_stages_nothing_twice_into_an_exactly_once_sink(tmp_path):
    """`exactly_once` stages every record of a file once across restarts; a reload that
    rebuilds the source keeps that. The SIGHUP comes while what it read sits in an open
    stage file (max_file_age_s 60: nothing acknowledged, the checkpoint still at 0)."""
    a = tmp_path / "a.ndjson"
    first = records(0, 2000)
    write_ndjson(a, first)
    port = free_port()
    sink = stage_sink(tmp_path, columns=["id", "k", "n", "note"], max_file_age_s=60,
                      extra="exactly_once = true")

    def write(glob_interval_ms: int) -> None:
        source = file_source([a], poll_interval_ms=20,
                             extra=f"glob_interval_ms = {glob_interval_ms}")
        write_config(tmp_path, base_config(tmp_path, api=f"127.0.0.1:{port}",
                                           checkpoint_interval_s=0.2) + source + sink)

    write(100)
    daemon = Daemon(tmp_path / "streamer.toml", tmp_path / "run.log")
    read = ("streamer_source_records_total", (("source", "events"),))
    try:
        wait_until(lambda: scrape(port).get(read) == 2000, what="the file read")
        assert staged(tmp_path / "stage") == []  # held in the open stage file
        write(150)  # the source changes, the sink does not
        daemon.signal(signal.SIGHUP)
        wait_for_log(daemon, "reload done")
        late = records(2000, 500)
        write_ndjson(a, late, mode="ab")
        wait_until(lambda: scrape(port).get(read, 0) >= 2500, what="the appended records read")
        summary = stop(daemon, timeout=30)
    finally:
        daemon.stop()
    by_id = {r["id"]: r for r in first + late}
    counts = assert_rows_match(staged(tmp_path / "stage"), by_id)
    assert_same_multiset(counts, Counter(list(by_id)))  # each record staged once
    assert summary["sources"]["events"]["records"] == 2500, summary
    assert re.search(r"reload: rebuilt sinks stage; rebuilt sources events", daemon.log), \
        daemon.log[-3000:]
    assert_identity(summary)
