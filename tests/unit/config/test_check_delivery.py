from streamer.config.check import check_report
from streamer.config.root import parse_config
from tests.helpers import config_data

STAGE = {"type": "stage", "url": "file:///tmp/stage/", "columns": ["a"]}


def delivery(sink: dict, sources: dict | None = None) -> str:
    cfg = parse_config(config_data(sinks={"stage": sink}, sources=sources), {})
    (line,) = [x for x in check_report(cfg, "c.toml").splitlines() if "delivery:" in x]
    return line.strip()


def test_check_says_which_inputs_of_an_exactly_once_stage_cannot_have_it():
    assert delivery(STAGE) == "delivery: at-least-once"
    assert delivery({**STAGE, "exactly_once": True}) == \
        "delivery: exactly_once max_open_files=64"
    mixed = {"logs": {"type": "file", "paths": ["/x/*.log"]}, "in": {"type": "stdin"},
             "tcp": {"type": "socket", "listen": "127.0.0.1:9000", "framing": "newline"}}
    assert delivery({**STAGE, "exactly_once": True, "max_open_files": 8}, mixed) == (
        "delivery: exactly_once max_open_files=8; at-least-once from in (stdin), "
        "tcp (socket): no replay")
