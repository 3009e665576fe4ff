"""Every metric family a source or a sink reports besides its core counters.

Components report *readings*: short names with numbers, cheap to produce
(`SinkStats.count("files_staged")`, a sink's live gauges `{"buffer_bytes": n}`,
a source's `{("socket_connections", "accepted"): n}`).  This table turns each
reading into a sample of one Prometheus family: the family, the values of its
labels after the owner's (`sink` or `source`), and a scale to its base unit.
A tuple key adds label values of its own after the table's.  Every family is
exposed once per process however many sources and sinks report into it.

Adding a metric is one line here plus the reading where the value lives;
a reading missing from the table is exposed as `streamer_sink_<name>_total`
(counters) or `streamer_<owner>_<name>` (gauges) with a help text saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge"]
Owner = Literal["sink", "source"]
UNLISTED = "(not in streamer/observability/families.py yet)"


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # a counter's without `_total`: prometheus-client adds it
    kind: Kind
    doc: str
    owner: Owner = "sink"
    labels: tuple[str, ...] = ()  # after the owner's


@dataclass(frozen=True, slots=True)
class Reading:
    family: Family
    labels: tuple[str, ...] = ()
    scale: float = 1.0


# -- sinks: live gauges (a sink's `watch`) ----------------------------------------------
BUFFER_BATCHES = Family("streamer_sink_buffer_batches", "gauge",
                        "Batches waiting in the sink's buffer")
BUFFER_BYTES = Family("streamer_sink_buffer_bytes", "gauge",
                      "Bytes of the batches waiting in the sink's buffer")
OLDEST_IN_FLIGHT = Family(
    "streamer_sink_oldest_in_flight_seconds", "gauge",
    "Age of the oldest batch the sink has not delivered yet (0 when none)")
TD_BATCHES_IN_FLIGHT = Family("streamer_td_batches_in_flight", "gauge",
                              "Batches taken by a td sink and not yet finished")
TD_REQUESTS_IN_FLIGHT = Family("streamer_td_requests_in_flight", "gauge",
                               "HTTP requests of a td sink waiting for their response")
TD_BACKOFF_REMAINING = Family(
    "streamer_td_backoff_remaining_seconds", "gauge",
    "Time left before a td sink sends again after a failure (0 = sending)")
STAGE_FILES = Family("streamer_stage_files", "gauge",
                     "Staged files not complete yet: open (being written) or completing",
                     labels=("state",))
STAGE_WINDOWS = Family(
    "streamer_stage_windows_current", "gauge",
    "Load windows of a stage sink by state now: open, sealed (waiting for files to "
    "complete), pending_load, loading, failed (need an operator)", labels=("state",))
S3_UPLOADS_IN_FLIGHT = Family("streamer_stage_s3_uploads_in_flight", "gauge",
                              "S3 requests of a stage sink under way")
S3_MULTIPART_OPEN = Family("streamer_stage_s3_multipart_uploads_open", "gauge",
                           "Multipart uploads started and not completed yet")
S3_CONCURRENCY_LIMIT = Family("streamer_stage_s3_upload_concurrency_limit", "gauge",
                              "The adaptive limit of a stage sink's S3 uploads in flight")

# -- sinks: event counters (`SinkStats.count`) ------------------------------------------
STAGE_FILES_STAGED = Family("streamer_stage_files_staged", "counter",
                            "Files staged (complete and durable)")
STAGE_STAGED_BYTES = Family("streamer_stage_staged_bytes", "counter", "Bytes of the files staged")
STAGE_WINDOWS_TOTAL = Family("streamer_stage_windows", "counter",
                             "Load windows that reached a state: opened, closed, loaded, failed",
                             labels=("state",))
STAGE_SKIPPED_REPLAYED = Family(
    "streamer_stage_records_skipped_replayed", "counter",
    "exactly_once: replayed records already staged before a crash, acknowledged without "
    "being written again")
STAGE_HANDED_OVER = Family(
    "streamer_stage_records_handed_over", "counter",
    "exactly_once: records of a Kafka partition read here and left to its next owner on "
    "a rebalance (final for this instance: not in flight)")
STAGE_ENCODE_FALLBACKS = Family(
    "streamer_stage_native_encode_fallbacks", "counter",
    "Blocks DuckDB could not encode, encoded record by record instead")
LOAD_ROWS = Family("streamer_load_rows", "counter",
                   "Rows of loaded windows: loaded, or rejected by the destination",
                   labels=("outcome",))
LOAD_JOBS_CREATED = Family("streamer_load_jobs_created", "counter",
                           "Load jobs created: Timestream batch load tasks, Data Exchange "
                           "import jobs")
LOAD_JOBS_FINISHED = Family(
    "streamer_load_jobs_finished", "counter",
    "Load jobs finished, by final state: Timestream succeeded / failed (SUCCEEDED with "
    "failures counts failed), Data Exchange "
    "completed / error / cancelled / timed_out (also a task or job still running at "
    "load.max_wait_s)", labels=("state",))
LOAD_JOBS_STOPPED = Family("streamer_load_jobs_stopped", "counter",
                           "Timestream batch load tasks found stopped (PROGRESS_STOPPED) "
                           "with resume = false: their windows fail")
LOAD_JOBS_RESUMED = Family("streamer_load_jobs_resumed", "counter",
                           "Timestream batch load tasks found stopped and resumed")
TIMESTREAM_RECORDS = Family(
    "streamer_timestream_load_records", "counter",
    "Records of finished Timestream batch load tasks as their progress reports count them: "
    "processed, ingested", labels=("count",))
TIMESTREAM_FAILURES = Family(
    "streamer_timestream_load_failures", "counter",
    "Failures in finished Timestream batch load tasks' progress reports: parse (records), "
    "ingestion (records), file (files)", labels=("kind",))
LOAD_ASSETS = Family("streamer_load_assets_imported", "counter",
                     "Files imported as Data Exchange assets")
TD_REQUESTS = Family("streamer_td_requests", "counter",
                     "HTTP requests to Treasure Data by outcome: 2xx, 3xx, 4xx, 5xx, error "
                     "(no response), or resent (a kept-alive connection closed before any "
                     "byte of a response: sent again at once on a new one)",
                     labels=("outcome",))
TD_CONCURRENCY_LIMIT = Family("streamer_td_concurrency_limit", "gauge",
                              "The adaptive limit of a td sink's requests in flight "
                              "(at most its `concurrency`)")
TD_BACKOFF = Family("streamer_td_backoff_seconds", "counter",
                    "Time a td sink spent paused after failures")
TD_KEY_REFUSED = Family("streamer_td_key_refused", "counter",
                        "TD answers 401/403: the write key refused, the records dead-lettered")
TD_NOT_FOUND = Family("streamer_td_not_found", "counter",
                      "TD answers 404/405/410: no such endpoint path or database, the "
                      "records dead-lettered")

# -- sources -------------------------------------------------------------------------
SOCKET_OPEN = Family("streamer_socket_open_connections", "gauge",
                     "Open connections of a socket source", owner="source")
SOCKET_CONNECTIONS = Family("streamer_socket_connections", "counter",
                            "Connections accepted, refused (max_connections), closed with no "
                            "first record in time (no_record) or displaced at "
                            "max_connections (evicted)",
                            owner="source", labels=("outcome",))
SOCKET_BUFFERED = Family("streamer_socket_buffered_bytes", "gauge",
                         "Bytes held by a socket source's connections (read, not yet emitted; "
                         "max_buffered_bytes bounds them)", owner="source")
_PARTITION = ("topic", "partition")
KAFKA_IN_FLIGHT = Family("streamer_kafka_in_flight_batches", "gauge",
                         "Fetched batches not yet acknowledged by every sink",
                         owner="source", labels=_PARTITION)
KAFKA_COMMITTED = Family("streamer_kafka_committed_offset", "gauge",
                         "Next offset to read as committed to the group", owner="source",
                         labels=_PARTITION)
KAFKA_LAG = Family("streamer_kafka_lag_messages", "gauge",
                   "Messages between the partition's end (the newer of the last fetch's "
                   "high watermark and the end offset listed every 5 s) and the committed "
                   "offset", owner="source", labels=_PARTITION)
KAFKA_PAUSED = Family("streamer_kafka_paused", "gauge",
                      "1 while fetching is paused (max_in_flight_batches)", owner="source",
                      labels=_PARTITION)
KAFKA_OFFSETS_LOST = Family("streamer_kafka_offsets_lost", "counter",
                            "Offsets skipped unread because they were out of range (deleted "
                            "by retention)", owner="source", labels=_PARTITION)
KAFKA_COMMITS = Family("streamer_kafka_commits", "counter", "Offset commits by outcome",
                       owner="source", labels=("outcome",))
KAFKA_REBALANCES = Family("streamer_kafka_rebalances", "counter",
                          "Partition revocations (rebalances)", owner="source")
KAFKA_JOIN = Family("streamer_kafka_join_seconds", "gauge",
                    "Duration of the last group (re)join: subscription or revocation to "
                    "assignment", owner="source")

READINGS: dict[str, Reading] = {
    "buffer_batches": Reading(BUFFER_BATCHES),
    "buffer_bytes": Reading(BUFFER_BYTES),
    "oldest_in_flight_s": Reading(OLDEST_IN_FLIGHT),
    "batches_in_flight": Reading(TD_BATCHES_IN_FLIGHT),
    "requests_in_flight": Reading(TD_REQUESTS_IN_FLIGHT),
    "backoff_remaining_s": Reading(TD_BACKOFF_REMAINING),
    "files_open": Reading(STAGE_FILES, ("open",)),
    "files_completing": Reading(STAGE_FILES, ("completing",)),
    "windows_open": Reading(STAGE_WINDOWS, ("open",)),
    "windows_sealed": Reading(STAGE_WINDOWS, ("sealed",)),
    "windows_pending_load": Reading(STAGE_WINDOWS, ("pending_load",)),
    "windows_loading": Reading(STAGE_WINDOWS, ("loading",)),
    "windows_failed_now": Reading(STAGE_WINDOWS, ("failed",)),
    "uploads_in_flight": Reading(S3_UPLOADS_IN_FLIGHT),
    "multipart_uploads_open": Reading(S3_MULTIPART_OPEN),
    "upload_concurrency_limit": Reading(S3_CONCURRENCY_LIMIT),
    "files_staged": Reading(STAGE_FILES_STAGED),
    "bytes_staged": Reading(STAGE_STAGED_BYTES),
    "windows_opened": Reading(STAGE_WINDOWS_TOTAL, ("opened",)),
    "windows_closed": Reading(STAGE_WINDOWS_TOTAL, ("closed",)),
    "windows_loaded": Reading(STAGE_WINDOWS_TOTAL, ("loaded",)),
    "windows_failed": Reading(STAGE_WINDOWS_TOTAL, ("failed",)),
    "native_encode_fallbacks": Reading(STAGE_ENCODE_FALLBACKS),
    "records_skipped_replayed": Reading(STAGE_SKIPPED_REPLAYED),
    "records_handed_over": Reading(STAGE_HANDED_OVER),
    "rows_loaded": Reading(LOAD_ROWS, ("loaded",)),
    "rows_rejected": Reading(LOAD_ROWS, ("rejected",)),
    "load_jobs_created": Reading(LOAD_JOBS_CREATED),
    **{f"load_jobs_{state}": Reading(LOAD_JOBS_FINISHED, (state,))
       for state in ("succeeded", "failed", "completed", "error", "cancelled", "timed_out")},
    "load_jobs_stopped": Reading(LOAD_JOBS_STOPPED),
    "load_jobs_resumed": Reading(LOAD_JOBS_RESUMED),
    "load_records_processed": Reading(TIMESTREAM_RECORDS, ("processed",)),
    "load_records_ingested": Reading(TIMESTREAM_RECORDS, ("ingested",)),
    "load_parse_failures": Reading(TIMESTREAM_FAILURES, ("parse",)),
    "load_ingestion_failures": Reading(TIMESTREAM_FAILURES, ("ingestion",)),
    "load_file_failures": Reading(TIMESTREAM_FAILURES, ("file",)),
    "load_assets_imported": Reading(LOAD_ASSETS),
    "requests_2xx": Reading(TD_REQUESTS, ("2xx",)),
    "requests_3xx": Reading(TD_REQUESTS, ("3xx",)),
    "requests_4xx": Reading(TD_REQUESTS, ("4xx",)),
    "requests_5xx": Reading(TD_REQUESTS, ("5xx",)),
    "requests_error": Reading(TD_REQUESTS, ("error",)),
    "requests_resent": Reading(TD_REQUESTS, ("resent",)),
    "backoff_ms": Reading(TD_BACKOFF, scale=0.001),
    "key_refused": Reading(TD_KEY_REFUSED),
    "not_found": Reading(TD_NOT_FOUND),
    "concurrency_limit": Reading(TD_CONCURRENCY_LIMIT),
    "socket_open_connections": Reading(SOCKET_OPEN),
    "socket_connections": Reading(SOCKET_CONNECTIONS),
    "socket_buffered_bytes": Reading(SOCKET_BUFFERED),
    "kafka_in_flight_batches": Reading(KAFKA_IN_FLIGHT),
    "kafka_committed_offset": Reading(KAFKA_COMMITTED),
    "kafka_lag": Reading(KAFKA_LAG),
    "kafka_paused": Reading(KAFKA_PAUSED),
    "kafka_offsets_lost": Reading(KAFKA_OFFSETS_LOST),
    "kafka_commits": Reading(KAFKA_COMMITS),
    "kafka_join_seconds": Reading(KAFKA_JOIN),
    "kafka_rebalances": Reading(KAFKA_REBALANCES),
}


def reading(name: str, owner: Owner, kind: Kind) -> Reading:
    """The table's entry, or a family of the reading's own name (see the module doc)."""
    known = READINGS.get(name)
    if known is not None:
        return known
    family = (Family(f"streamer_sink_{name}", "counter", f"Sink event count {UNLISTED}")
              if kind == "counter" else
              Family(f"streamer_{owner}_{name}", "gauge", f"Live gauge {UNLISTED}", owner))
    return Reading(family)
