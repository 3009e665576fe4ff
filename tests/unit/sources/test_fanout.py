"""The fanout: a source's decoded reads into every sink's buffer (whole blocks only
when every sink takes them), and rewiring to new buffers on reload."""

import asyncio

import orjson

from streamer.core.ack import Ack
from streamer.core.batch import BatchBuffer, Origin
from streamer.core.deadletter import DeadLetters
from streamer.core.ndjson import decode_block
from streamer.observability.metrics import SinkStats, SourceStats
from streamer.sources.fanout import Fanout


def buffer(max_records=2, max_batches=1, whole_blocks=False):
    return BatchBuffer(max_records=max_records, max_bytes=10**6, linger_s=0,
                       max_batches=max_batches, drop_newest=False, stats=SinkStats(),
                       whole_blocks=whole_blocks)


async def test_a_fanout_sends_blocks_only_when_every_sink_takes_them(tmp_path):
    block = b'{"a":1}\n{"b":"x"}\n'

    def wanting(whole_blocks: bool) -> BatchBuffer:
        return buffer(max_records=10, max_batches=4, whole_blocks=whole_blocks)

    for wants in ([True], [True, False], [False]):
        buffers = [wanting(w) for w in wants]
        fanout = Fanout("src", buffers, DeadLetters(tmp_path), SourceStats())
        await fanout.emit(decode_block(block, 0, 100), lambda n: Ack(n), Origin("src", None, 0))
        pieces = [(await b.get()).pieces[0] for b in buffers]
        assert all(p.raws == [b'{"a":1}', b'{"b":"x"}'] for p in pieces)
        # a block without copies, or the list the check split
        kept = pieces[0].lines.ndjson()
        assert (len(kept) == 1 and kept[0].obj is block) == all(wants), wants


async def emit(fanout, block, acks):
    decoded = decode_block(block, 0, 1 << 20)

    def track(sinks):
        acks.append(Ack(sinks))
        return acks[-1]

    await fanout.emit(decoded, track, Origin("logs", None, 0))


async def test_rewire_waits_for_emits_into_the_old_buffers(tmp_path):
    def taken(batch):
        return [r["a"] for r in batch.iter_records()]

    old, kept, new = buffer(), buffer(), buffer()
    fanout = Fanout("logs", [kept, old], DeadLetters(tmp_path), SourceStats())
    acks: list[Ack] = []
    await emit(fanout, b'{"a":1}\n{"a":2}\n', acks)
    await emit(fanout, b'{"a":3}\n{"a":4}\n', acks)  # both buffers are full now
    blocked = asyncio.create_task(emit(fanout, b'{"a":5}\n{"a":6}\n', acks))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # waits for room in `kept`, then in `old`
    retired = asyncio.ensure_future(fanout.rewire([kept, new]))
    await asyncio.sleep(0.01)
    assert not retired.done()
    assert taken(await kept.get()) == [1, 2]
    await asyncio.sleep(0.01)
    assert not retired.done()  # the blocked emit still has to put into `old`
    assert taken(await old.get()) == [1, 2]
    await blocked
    await asyncio.wait_for(retired, 1)
    old.close()  # now safe: nothing more can reach it
    assert [taken(await old.get()), taken(await old.get())] == [[3, 4], [5, 6]]
    assert await old.get() is None
    assert taken(await kept.get()) == [3, 4]
    await asyncio.wait_for(emit(fanout, b'{"a":7}\n', acks), 1)  # to `kept` and `new` only
    assert [a.pending for a in acks] == [2, 2, 2, 2]
    kept.close()
    new.close()
    assert [taken(await kept.get()) for _ in range(2)] == [[5, 6], [7]]
    assert taken(await new.get()) == [7]
    assert await new.get() is None


async def test_rewire_without_emits_in_progress_is_immediate(tmp_path):
    fanout = Fanout("logs", [buffer()], DeadLetters(tmp_path), SourceStats())
    await asyncio.wait_for(fanout.rewire([]), 1)
    assert fanout.buffers == []


def test_rejected_lines_are_logged_rate_limited_and_counted(tmp_path):
    """A WARNING per bad line naming source, origin, offset and reason, with a short
    excerpt; past the limiter's burst the lines are counted in its count line."""
    import io
    import logging

    from streamer.observability.logs import flush_suppressed, setup_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    console = setup_logging("json", "info", stream)
    console.add_secrets(["tdkey-0123456789/secret"])
    try:
        stats = SourceStats()
        fanout = Fanout("logs", [], DeadLetters(tmp_path), stats)
        lines = [b"not json %d tdkey-0123456789/secret" % i for i in range(25)]
        block = b"".join(line + b"\n" for line in lines) + b'[1]\n{"a": 1' + b"0" * 25 + b"}\n"
        fanout.reject(decode_block(block, 100, 1 << 20).bad, "/var/log/app.ndjson")
        flush_suppressed()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert stats.rejected == 27
    logged = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert all(item["level"] == "warning" and item["logger"] == "streamer.source.rejected"
               for item in logged)
    messages = [item["message"] for item in logged]
    assert len(messages) == 11  # the burst, then one count line
    offset = 100
    for i, message in enumerate(messages[:10]):
        assert message.startswith(f"source logs: rejected the line at /var/log/app.ndjson "
                                  f"offset {offset}: invalid JSON: "), message
        assert message.endswith(f'; dead-lettered: "not json {i} ***"'), message
        offset += len(lines[i]) + 1
    assert messages[10].startswith("source logs: rejected the line at /var/log/app.ndjson "
                                   f"offset {len(block) + 100 - 34}: integer ")
    assert messages[10].endswith(" -- repeated 17 times in the last 10s (suppressed)")
    assert "secret" not in stream.getvalue()
