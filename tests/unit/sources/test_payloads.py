"""decode_payloads: one block per read, bad lines located in their payload."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streamer.core.deadletter import BadInput
from streamer.core.ndjson import oversize_reason
from streamer.sources.payloads import decode_payloads


def test_records_in_order_and_bad_lines_at_their_payload() -> None:
    payloads = [b'{"a": 1}', b"nope", b'{"b": 2}\n{"c": 3}\n', b"[1]", b"", b'{"d": 4}\nbad']
    offsets = [100, 101, 105, 107, 108, 110]
    decoded = decode_payloads(payloads, offsets.__getitem__, 1000)
    assert decoded.records == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    assert decoded.raws == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}', b'{"d": 4}']
    assert [(b.offset, b.payload_position, b.raw) for b in decoded.bad] == [
        (101, 0, b"nope"), (107, 0, b"[1]"), (110, 9, b"bad")]
    assert decoded.bad[1].reason == "not a JSON object: list"


def test_good_payloads_stay_one_block() -> None:
    """The stage sink hands DuckDB a block as it is; a list of lines it must join and
    search line by line."""
    payloads = [b'{"a": 1}', b'{"b": 2}\n{"c": 3}', b'{"d": "x"}']
    decoded = decode_payloads(payloads, lambda i: i, 1000)
    lines = decoded.lines()
    assert decoded.whole and not decoded.bad
    assert bytes(lines.ndjson()[0]) == b'{"a": 1}\n{"b": 2}\n{"c": 3}\n{"d": "x"}\n'
    assert lines.count == 4 and lines.raws == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}',
                                               b'{"d": "x"}']


def test_offsets_are_asked_only_for_payloads_with_a_bad_line() -> None:
    asked: list[int] = []

    def offset_of(index: int) -> int:
        asked.append(index)
        return index * 10

    decode_payloads([b'{"a": 1}', b"x", b'{"b": 2}', b"y"], offset_of, 1000)
    assert asked == [1, 3]


def test_line_limit_names_its_setting() -> None:
    long = b'{"long": "' + b"x" * 50 + b'"}'
    decoded = decode_payloads([b'{"a": 1}', long], lambda i: 7 * i, 20, "max_frame_bytes")
    assert decoded.records == [{"a": 1}]
    assert decoded.bad == [
        BadInput(7, oversize_reason(20, "max_frame_bytes", len(long)), long[:20])]


INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(st.one_of(
    st.dictionaries(st.text(max_size=5), INT64 | st.text(max_size=5), max_size=3),
    st.sampled_from([b"x", b"[]", b"1", b"{"])), max_size=30))
def test_every_payload_is_a_record_or_located(items: list) -> None:
    payloads = [orjson.dumps(i) if isinstance(i, dict) else i for i in items]
    decoded = decode_payloads(payloads, lambda index: 1000 + index, 10_000)
    good = [i for i in items if isinstance(i, dict)]
    assert decoded.records == good
    assert [b.offset - 1000 for b in decoded.bad] == [n for n, i in enumerate(items)
                                                     if not isinstance(i, dict)]
    assert all(payloads[b.offset - 1000] == b.raw and b.payload_position == 0
               for b in decoded.bad)
