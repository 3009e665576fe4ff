"""Config reload: the plan (what changes)."""

import pytest

from streamer.config.root import ConfigError, parse_config
from streamer.pipeline.plan import plan_reload, restart_note

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


def test_an_exactly_once_sink_fed_by_a_stopping_source_is_drained_too():
    """It is rebuilt (drained before the checkpoint is saved): the new source must not
    read again what the old one left in the sink's open files."""
    once = {name: {**sink, "exactly_once": True} for name, sink in BASE["sinks"].items()}
    logs_changed = {**BASE["sources"], "logs": {"type": "file", "paths": ["/var/log/*.j"]}}
    plan = plan_reload(cfg(sinks=once), cfg(sinks=once, sources=logs_changed))
    assert (plan.sinks.changed, plan.sinks.unchanged) == (("stage",), ("copy",))  # app only
    app_removed = {"logs": BASE["sources"]["logs"]}
    plan = plan_reload(cfg(sinks=once), cfg(sinks={**once, "copy": {**once["copy"],
                                                                    "inputs": None}},
                                           sources=app_removed))
    assert (plan.sinks.changed, plan.sinks.unchanged) == (("copy", "stage"), ())
    # at-least-once sinks keep running: the replay is what they promise
    plan = plan_reload(cfg(), cfg(sources=logs_changed))
    assert (plan.sinks.changed, plan.sinks.unchanged) == ((), ("stage", "copy"))


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


def test_a_workers_change_says_how_to_apply_it():
    # before 2026-12-04 it said only "after a restart", which the data_dir then refused
    assert restart_note("api") == ("api changed; it takes effect only after a restart "
                                   "(the running value is kept)")
    note = restart_note("workers")
    assert note.startswith("workers changed; it takes effect only after a restart")
    assert "restart with the new value is refused" in note and "a new data_dir" in note


def test_a_kafka_client_certificate_renewed_in_place_rebuilds_the_source(tmp_path):
    """The files' contents are part of the config (as a socket source's tls files and a
    td sink's write_key_file): the same paths with a renewed certificate are a change."""
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for name, path in files.items():
        path.write_text(f"{name} 1")
    kafka = {"type": "kafka", "bootstrap_servers": ["b:9093"], "topics": ["t"],
             "group_id": "g", "security_protocol": "SSL",
             **{f"ssl_{name}file": str(path) for name, path in files.items()}}

    def with_kafka():
        return cfg(sources={**BASE["sources"], "k": kafka})

    before = with_kafka()
    assert plan_reload(before, with_kafka()).sources.changed == ()
    files["cert"].write_text("cert 2")
    assert plan_reload(before, with_kafka()).sources.changed == ("k",)
