"""file -> td against a receiver of fixed capacity: the adaptive concurrency limit
settles near what it can take, with few requests refused and nothing lost."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson

from bench.td_receiver import Receiver, serve
from tests.helpers import TD_RETRY, base_config, file_source, multiset, td_sink, write_config
from tests.integration.test_td_sink import make_input, run_td, sink_summary

KEY = "capacity-key/1"
CAPACITY = 8  # requests served at once
QUEUE = 6  # requests waiting for a place; above CAPACITY + QUEUE: 503
# a generous service time, so that the CPU noise of a loaded machine is small against it
SERVICE_S = 0.05
MARGIN = 4  # in flight above CAPACITY + QUEUE before the limit comes down
RECORDS = 700  # about 5 s at CAPACITY / SERVICE_S = 160 requests/s


class ThreadedReceiver:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(serve(receiver))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_a_receiver_of_fixed_capacity_gets_what_it_can_take(tmp_path: Path) -> None:
    records = make_input(tmp_path, RECORDS)
    server = ThreadedReceiver(Receiver(capacity=CAPACITY, queue=QUEUE, service_s=SERVICE_S,
                                       keep_bodies=True))
    try:
        config = write_config(tmp_path, base_config(tmp_path, checkpoint_interval_s=None)
                              + file_source(tmp_path / "in.ndjson", follow=False)
                              + td_sink(server.url, timeout_s=5, retry=TD_RETRY,
                                        extra="concurrency = 64"))
        summary = sink_summary(run_td(config, KEY))
    finally:
        server.close()
    receiver = server.receiver
    stats = receiver.stats()
    assert summary["delivered"] == RECORDS and summary["dead_lettered"] == 0
    assert multiset(orjson.loads(body) for body in receiver.bodies) == multiset(records)
    assert summary["requests_5xx"] == stats["refused"]
    assert stats["max_in_flight"] <= CAPACITY + QUEUE + MARGIN, stats
    # once settled (the second half of the run), few requests are refused
    assert stats["second_half_refused_share"] <= 0.05, stats
