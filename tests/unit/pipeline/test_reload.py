"""Config reload: the plan (what changes) and the fanout rewiring barrier."""

import asyncio

import pytest

from streamer.config.root import ConfigError, parse_config
from streamer.core.ack import Ack
from streamer.core.batch import BatchBuffer, Origin
from streamer.core.deadletter import DeadLetters
from streamer.core.ndjson import decode_block
from streamer.observability.metrics import SinkStats, SourceStats
from streamer.pipeline.plan import plan_reload
from streamer.sources.fanout import Fanout

BASE = {
    "data_dir": "/tmp/x",
    "sources": {"logs": {"type": "file", "paths": ["/var/log/*.ndjson"]},
                "app": {"type": "file", "paths": ["/srv/app/*.ndjson"]}},
    "sinks": {"stage": {"type": "stage", "url": "file:///tmp/stage/", "columns": ["a", "b"]},
              "copy": {"type": "stage", "url": "file:///tmp/copy/", "columns": ["a"],
                       "inputs": ["app"]}},
}


def cfg(**changes):
    return parse_config({**BASE, **changes}, {})


def test_components_are_classified_by_name_and_config():
    new = cfg(sources={"logs": {"type": "file", "paths": ["/var/log/*.json"]},
                       "extra": {"type": "file", "paths": ["/x/*"]}},
              sinks={"stage": BASE["sinks"]["stage"],
                     "copy": {**BASE["sinks"]["copy"], "columns": ["a", "b"], "inputs": None},
                     "more": {"type": "stage", "url": "file:///m/", "columns": ["a"]}})
    plan = plan_reload(cfg(), new)
    assert (plan.sources.changed, plan.sources.added, plan.sources.removed) == (
        ("logs",), ("extra",), ("app",))
    assert (plan.sinks.changed, plan.sinks.added, plan.sinks.unchanged) == (
        ("copy",), ("more",), ("stage",))
    assert plan.summary() == ("rebuilt sinks copy; added sinks more; rebuilt sources logs; "
                               "added sources extra; removed sources app; "
                               "unchanged and still running: sinks stage")


def test_defaults_change_every_sink_that_uses_them():
    plan = plan_reload(cfg(), cfg(defaults={"batch": {"linger_ms": 5}}))
    assert set(plan.sinks.changed) == {"stage", "copy"}
    assert not plan.sources.any


def test_restart_only_keys_keep_their_running_value_and_settings_apply():
    old = cfg()
    plan = plan_reload(old, cfg(data_dir="/elsewhere", instance_id="7",
                                api={"listen": "127.0.0.1:1"}, checkpoint_interval_s=9))
    assert plan.needs_restart == ("data_dir", "instance_id", "api")
    assert (plan.config.data_dir, plan.config.instance_id, plan.config.api) == (
        old.data_dir, old.instance_id, old.api)
    assert plan.settings == ("checkpoint_interval_s",)
    assert plan.config.checkpoint_interval_s == 9
    assert not plan.empty and not plan.sinks.any and not plan.sources.any


def test_an_identical_config_is_an_empty_plan():
    assert plan_reload(cfg(), cfg()).empty


def test_stdin_sources_cannot_change():
    old = cfg(sources={**BASE["sources"], "in": {"type": "stdin"}})
    for new in (cfg(), cfg(sources={**BASE["sources"], "in": {"type": "stdin",
                                                              "read_bytes": 4096}})):
        with pytest.raises(ConfigError) as info:
            plan_reload(old, new)
        assert info.value.problems[0].startswith("sources: a stdin source cannot")
    assert plan_reload(old, old).empty


def buffer(max_batches=1):
    return BatchBuffer(max_records=2, max_bytes=10**6, linger_s=0, max_batches=max_batches,
                       drop_newest=False, stats=SinkStats())


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
