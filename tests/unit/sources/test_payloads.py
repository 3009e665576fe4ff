"""decode_payloads: one block per read, bad lines located in their payload."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streamer.sources.payloads import decode_payloads


def test_records_in_order_and_bad_lines_located() -> None:
    payloads = [b'{"a": 1}', b"nope", b'{"b": 2}\n{"c": 3}\n', b"[1]", b"", b'{"d": 4}\nbad']
    decoded, located = decode_payloads(payloads, 1000)
    assert decoded.records == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    assert decoded.raws == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}', b'{"d": 4}']
    assert decoded.bad == []
    assert [(x.index, x.position, x.bad.raw) for x in located] == [
        (1, 0, b"nope"), (3, 0, b"[1]"), (5, 9, b"bad")]
    assert located[1].bad.reason == "not a JSON object: list"


def test_line_limit() -> None:
    decoded, located = decode_payloads([b'{"a": 1}', b'{"long": "' + b"x" * 50 + b'"}'], 20)
    assert decoded.records == [{"a": 1}]
    assert located[0].index == 1 and "exceeds max_line_bytes" in located[0].bad.reason


INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(st.one_of(
    st.dictionaries(st.text(max_size=5), INT64 | st.text(max_size=5), max_size=3),
    st.sampled_from([b"x", b"[]", b"1", b"{"])), max_size=30))
def test_every_payload_is_a_record_or_located(items: list) -> None:
    payloads = [orjson.dumps(i) if isinstance(i, dict) else i for i in items]
    decoded, located = decode_payloads(payloads, 10_000)
    good = [i for i in items if isinstance(i, dict)]
    assert decoded.records == good
    assert [x.index for x in located] == [n for n, i in enumerate(items)
                                         if not isinstance(i, dict)]
    assert all(payloads[x.index] == x.bad.raw and x.position == 0 for x in located)
