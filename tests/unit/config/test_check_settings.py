from streamer.config.check import check_report
from streamer.config.root import Config, parse_config
from tests.helpers import config_data

TABLES = {"api", "defaults", "sources", "sinks"}


def _report(sources: dict | None = None, **top) -> list[str]:
    cfg = parse_config(config_data(sources=sources, **top), {})
    return check_report(cfg, "c.toml").splitlines()


def test_check_prints_every_top_level_setting_as_resolved() -> None:
    lines = _report(oneshot_give_up_s=45, workers=2, checkpoint_interval_s=2.5)
    keys = [key for key in Config.model_fields if key not in TABLES]
    missing = [key for key in keys if not any(line.startswith(f"{key}: ") for line in lines)]
    assert not missing, lines
    assert "workers: 2" in lines and "checkpoint_interval_s: 2.5" in lines


def test_check_says_whether_oneshot_give_up_s_applies() -> None:
    finite = {"in": {"type": "file", "paths": ["/x/*.log"], "follow": False}}
    (line,) = [x for x in _report(finite, oneshot_give_up_s=45)
               if x.startswith("oneshot_give_up_s")]
    assert line == ("oneshot_give_up_s: 45 (a one-shot run: it stops once a sink has had no "
                    "success this long)")
    (line,) = [x for x in _report(finite, oneshot_give_up_s=0)
               if x.startswith("oneshot_give_up_s")]
    assert line == "oneshot_give_up_s: 0 (a one-shot run: retries until killed)"
    daemon = {"in": {"type": "file", "paths": ["/x/*.log"]}}
    (line,) = [x for x in _report(daemon) if x.startswith("oneshot_give_up_s")]
    assert line == "oneshot_give_up_s: 300 (not used: a daemon retries for ever)"
