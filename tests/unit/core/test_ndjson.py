import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from streamer.core import ndjson
from streamer.core.ndjson import (
    decode_block,
    has_long_digit_run,
    long_digit_run_by_hyperscan,
    long_digit_run_by_translate,
    long_digit_run_lines,
    long_digit_run_lines_by_hyperscan,
    long_digit_run_lines_by_translate,
    nul_hole_reason,
)
from tests.fixtures.processes import REPO


def _lines(*items: bytes) -> bytes:
    return b"".join(i + b"\n" for i in items)


def test_decode_good_records_keep_their_bytes():
    block = _lines(b'{"a":1,"b":"x"}', b'{"a":2}\r')
    out = decode_block(block, 100, 1000)
    assert out.records == [{"a": 1, "b": "x"}, {"a": 2}]
    assert out.raws == [b'{"a":1,"b":"x"}', b'{"a":2}\r']
    assert out.bad == []
    assert out.nbytes == len(b'{"a":1,"b":"x"}') + len(b'{"a":2}\r')


def test_decode_bad_lines_have_reason_and_exact_offset():
    good = b'{"ok":1}'
    bad_items = [b"not json", b"[1,2]", b'"str"', b'{"a":"\xff"}', b'{"a":"\\ud800"}',
                 b'{"a":"x\x00y"}', b'{"big":123456789012345678901234567890}',
                 b'{"neg":-99999999999999999999}', b'{"a":1', b"12"]
    block = _lines(good, *bad_items, good)
    out = decode_block(block, 1000, 10_000)
    assert out.records == [{"ok": 1}, {"ok": 1}]
    nul = bad_items.index(b'{"a":"x\x00y"}')  # a hole of one NUL: two bad inputs
    assert [b.raw for b in out.bad] == [*bad_items[:nul], b'{"a":"x', b'y"}',
                                        *bad_items[nul + 1:]]
    assert out.bad[nul].reason == nul_hole_reason(1, 7)
    assert out.bad[nul + 1].offset == out.bad[nul].offset + 8
    del out.bad[nul + 1]
    offset = 1000 + len(good) + 1
    for item, bad in zip(bad_items, out.bad, strict=True):
        assert bad.offset == offset, item
        assert block[bad.offset - 1000:].startswith(bad.raw)
        offset += len(item) + 1
    reasons = [b.reason for b in out.bad]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "not a JSON object: list"
    assert reasons[2] == "not a JSON object: str"
    assert "64-bit" in reasons[6] and "64-bit" in reasons[7]


def test_decode_skips_blank_lines_and_keeps_int64_edges():
    block = _lines(b"", b"   ", b'{"max":9223372036854775807,"min":-9223372036854775808}')
    out = decode_block(block, 0, 1000)
    assert out.bad == []
    assert out.records == [{"max": 2**63 - 1, "min": -(2**63)}]


def test_decode_oversize_line_inside_block():
    long_line = b'{"a":"' + b"x" * 100 + b'"}'
    out = decode_block(_lines(b'{"a":1}', long_line), 0, 50)
    assert out.records == [{"a": 1}]
    assert len(out.bad) == 1 and out.bad[0].offset == 8 and "max_line_bytes" in out.bad[0].reason
    assert out.bad[0].raw == long_line[:50]


def test_decode_oversize_reason_names_the_setting_and_the_cr_is_not_counted():
    exact = b'{"a":"' + b"x" * 12 + b'"}'  # 20 bytes
    out = decode_block(_lines(exact + b"\r", exact + b"x\r", exact + b"xy"), 5, 20,
                       "max_frame_bytes")
    assert out.raws == [exact + b"\r"]
    assert [(b.offset, b.reason, b.raw) for b in out.bad] == [
        (27, "line of 21 bytes exceeds max_frame_bytes (20); raw holds its first 20 bytes",
         exact),
        (50, "line of 22 bytes exceeds max_frame_bytes (20); raw holds its first 20 bytes",
         exact)]
    # the last line of a finite stream may end with its CR alone
    assert decode_block(exact + b"\r", 0, 20).raws == [exact + b"\r"]


def test_decode_deep_nesting_is_dead_lettered_not_raised():
    deep = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
    out = decode_block(_lines(deep, b'{"b":2}'), 0, 10**6)
    assert out.records == [{"b": 2}]
    assert len(out.bad) == 1


def test_long_digit_run():
    assert has_long_digit_run(b'{"a":1234567890123456789}')
    assert not has_long_digit_run(b'{"a":123456789012345678, "b": 1}')
    assert not has_long_digit_run(b"")


@given(st.lists(st.sampled_from([b"0", b"9", b"5", b"a", b" ", b"\n", b"\xff", b"-"]),
                max_size=300).map(b"".join))
def test_long_digit_run_is_exactly_nineteen_digits_in_a_row(data):
    expected = re.search(rb"[0-9]{19}", data) is not None
    assert has_long_digit_run(data) == expected
    # Hyperscan where it is installed, the translate fallback where it is not
    assert long_digit_run_by_hyperscan(data) == long_digit_run_by_translate(data) == expected


@given(st.lists(st.sampled_from([b"0", b"9", b"5", b"1" * 19, b"a", b" ", b"\n", b"\n" * 3,
                                 b"\xff", b"-"]), max_size=200).map(b"".join))
def test_the_lines_holding_nineteen_digits_in_a_row(data):
    expected = [index for index, line in enumerate(data.split(b"\n"))
                if re.search(rb"[0-9]{19}", line)]
    assert long_digit_run_lines_by_hyperscan(data) == expected
    assert long_digit_run_lines_by_translate(data) == expected


def test_a_block_of_long_digit_runs_is_scanned_line_by_line_with_the_same_answer():
    # each end of 19 digits is a call back: past MAX_DIGIT_RUN_ENDS the scan stops
    lines = [b'{"n":"%s"}' % (b"7" * 200) if i % 3 else b'{"n":1}' for i in range(60)]
    block = _lines(*lines)
    expected = [i for i in range(60) if i % 3]
    assert ndjson.MAX_DIGIT_RUN_ENDS < 60 * 182
    assert long_digit_run_lines_by_hyperscan(block) == expected
    assert long_digit_run_lines_by_translate(block) == expected
    out = decode_block(_lines(*lines[:30], b'{"n":%d}' % 2**64, *lines[30:]), 0, 10_000)
    assert out.raws == lines and [b.raw for b in out.bad] == [b'{"n":%d}' % 2**64]


def test_the_fast_guard_is_hyperscan_where_it_is_installed():
    assert has_long_digit_run is long_digit_run_by_hyperscan
    assert long_digit_run_lines is long_digit_run_lines_by_hyperscan


def test_only_the_lines_with_a_digit_run_are_parsed_again(monkeypatch):
    parsed = []
    reason = ndjson._huge_int_reason
    monkeypatch.setattr(ndjson, "_huge_int_reason", lambda line: parsed.append(line) or
                        reason(line))
    ids = [b'{"n":%d,"id":"%s"}' % (i, b"7" * (19 + i % 2) if i % 10 == 3 else b"ab")
           for i in range(40)]
    huge = b'{"n":99999999999999999999}'
    block = _lines(*ids[:25], huge, *ids[25:])
    out = decode_block(block, 0, 10_000)
    assert out.raws == ids
    assert [(b.offset, b.raw) for b in out.bad] == [(block.index(huge), huge)]
    assert parsed == [line for line in ids[:25] if b"7" * 19 in line] + [huge] + \
        [line for line in ids[25:] if b"7" * 19 in line]


def test_huge_ints_in_a_block_with_bad_lines_and_a_nul_hole():
    # not a whole block: its records are checked line by line, and a NUL hole
    # makes the record after it a new object, found all the same
    good = b'{"s":"%s"}' % (b"1" * 25)
    huge = b'{"n":-9223372036854775809}'
    block = _lines(good, b"not json", huge, b"\0" * 5 + huge, good, b'{"u":18446744073709551616}')
    out = decode_block(block, 1000, 10_000)
    assert out.raws == [good, good]
    at = [1000 + offset for offset in (0, len(good) + 1)]
    at.append(at[1] + len(b"not json") + 1)
    at += [at[2] + len(huge) + 1, at[2] + len(huge) + 6]
    at.append(at[4] + len(huge) + 1 + len(good) + 1)
    assert [(b.offset, b.raw) for b in out.bad] == [
        (at[1], b"not json"), (at[2], huge), (at[3], b""), (at[4], huge),
        (at[5], b'{"u":18446744073709551616}')]
    assert out.bad[2].reason == nul_hole_reason(5)
    assert all("64-bit" in b.reason for b in (out.bad[1], out.bad[3], out.bad[4]))


def test_without_hyperscan_the_fallback_guards_decode_block(monkeypatch):
    monkeypatch.setattr(ndjson, "has_long_digit_run", long_digit_run_by_translate)
    monkeypatch.setattr(ndjson, "long_digit_run_lines", long_digit_run_lines_by_translate)
    block = _lines(b'{"n":1}', b'{"n":9223372036854775808}', b'{"n":-9223372036854775808}')
    out = decode_block(block, 0, 1000)
    assert out.raws == [b'{"n":1}', b'{"n":-9223372036854775808}']
    assert [(b.offset, b.raw) for b in out.bad] == [(8, b'{"n":9223372036854775808}')]


def test_ndjson_imports_and_checks_without_hyperscan():
    code = ("import sys; sys.modules['hyperscan'] = None\n"
            "from streamer.core import ndjson\n"
            "assert ndjson.hyperscan is None\n"
            "assert ndjson.has_long_digit_run is ndjson.long_digit_run_by_translate\n"
            "assert ndjson.long_digit_run_lines is ndjson.long_digit_run_lines_by_translate\n"
            "out = ndjson.decode_block(b'{\"n\":18446744073709551615}\\n{\"n\":2}\\n', 0, 99)\n"
            "assert out.raws == [b'{\"n\":2}'] and '64-bit' in out.bad[0].reason\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_integers_between_int64_and_uint64_are_dead_lettered_from_a_good_block():
    # simdjson takes these (as unsigned 64-bit), so only the digit-run guard
    # stops them on the fast path
    good = [b'{"n":%d,"s":"%s"}' % (i, b"1" * 30) for i in range(50)]
    over = [b'{"n":9223372036854775808}', b'{"n":18446744073709551615}']
    block = _lines(*good[:20], over[0], *good[20:], over[1])
    out = decode_block(block, 7, 10_000)
    assert out.raws == good
    assert [b.raw for b in out.bad] == over
    assert [b.offset for b in out.bad] == [7 + block.index(o) for o in over]
    assert all("64-bit" in b.reason for b in out.bad)
