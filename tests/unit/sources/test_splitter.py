"""LineSplitter: the one set of line rules of the file, stdin and newline socket
sources (BOM, CR, blank lines, oversize lines, the unterminated last line)."""

from __future__ import annotations

import tracemalloc
from itertools import accumulate, pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.deadletter import BadInput
from streamer.core.ndjson import UTF8_BOM, decode_block, nul_hole_reason, oversize_reason
from streamer.sources.splitter import LineSplitter


def feed_all(chunks: list[bytes], limit: int = 100, start: int = 0,
             limit_name: str = "max_line_bytes", reused: bool = False
             ) -> tuple[list[tuple[int, bytes]], list[bytes], list[BadInput], int]:
    """Every chunk, then the end of the stream: the (offset, block) pairs, the
    records' bytes, the bad input, and where the splitter ended.  `reused`: each
    chunk is read into one buffer (`feed_from`), scribbled over before the next."""
    splitter = LineSplitter(start, limit, limit_name)
    blocks, raws, bad = [], [], []
    buffer = bytearray(max(map(len, chunks), default=0) + 3)
    for chunk in [*chunks, None]:
        if chunk is None:
            decoded, offset = splitter.finish()
        elif reused:
            buffer[:] = b"#" * len(buffer)
            buffer[:len(chunk)] = chunk
            decoded, offset = splitter.feed_from(buffer, len(chunk))
        else:
            decoded, offset = splitter.feed(chunk)
        if decoded.block:
            blocks.append((offset, decoded.block))
        raws.extend(decoded.raws)
        bad.extend(decoded.bad)
    return blocks, raws, bad, splitter.offset


def test_blocks_hold_whole_lines_with_offsets() -> None:
    blocks, raws, bad, end = feed_all([b'{"a"', b':1}\n{"b":2}\n{', b'"c":3}\n'])
    assert blocks == [(0, b'{"a":1}\n{"b":2}\n'), (16, b'{"c":3}\n')]
    assert raws == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert bad == [] and end == 24


def test_last_line_without_newline_is_a_record_at_the_end() -> None:
    blocks, raws, _, end = feed_all([b'{"a":1}\n{"last":', b"true}"])
    assert blocks[-1] == (8, b'{"last":true}') and end == 21
    assert raws == [b'{"a":1}', b'{"last":true}']


def test_bom_at_stream_start_is_skipped_even_cut_across_reads() -> None:
    stream = UTF8_BOM + b'{"x":1}\n'
    for cut in range(len(stream) + 1):
        blocks, raws, bad, end = feed_all([stream[:cut], stream[cut:]])
        assert blocks == [(3, b'{"x":1}\n')], cut
        assert raws == [b'{"x":1}'] and bad == [] and end == len(stream)
    assert feed_all([stream[i:i + 1] for i in range(len(stream))])[1] == [b'{"x":1}']


def test_bom_elsewhere_is_part_of_its_line() -> None:
    _, raws, bad, _ = feed_all([UTF8_BOM + b'{"x":1}\n'], start=10)
    assert raws == [] and [(b.offset, b.raw) for b in bad] == [(10, UTF8_BOM + b'{"x":1}')]
    _, raws, bad, _ = feed_all([b'{"a":1}\n' + UTF8_BOM + b'{"x":1}\n'])
    assert raws == [b'{"a":1}'] and [b.offset for b in bad] == [8]
    # what looked like the start of a BOM is a line of its own at the end
    _, raws, bad, end = feed_all([b"\xef", b"\xbb"])
    assert raws == [] and [(b.offset, b.raw) for b in bad] == [(0, b"\xef\xbb")] and end == 2


def test_crlf_lines_keep_their_cr_and_blank_lines_are_skipped() -> None:
    _, raws, bad, _ = feed_all([b'{"a":1}\r', b'\n\n\r\n  \t\r\n{"b":2}\r\n'])
    assert raws == [b'{"a":1}\r', b'{"b":2}\r'] and bad == []
    assert decode_block(b"".join(r + b"\n" for r in raws), 0, 100).records == [{"a": 1},
                                                                               {"b": 2}]


def test_the_cr_of_a_crlf_does_not_count_against_the_limit() -> None:
    exact = b'{"p":"' + b"x" * 12 + b'"}'  # 20 bytes
    for chunks in ([exact + b"\r\n"], [exact + b"\r", b"\n"], [exact, b"\r\n"]):
        _, raws, bad, _ = feed_all(chunks, limit=20)
        assert raws == [exact + b"\r"] and bad == [], chunks
    _, raws, bad, _ = feed_all([exact + b"x\r", b"\n"], limit=20)
    assert raws == [] and [(b.offset, b.raw) for b in bad] == [(0, exact)]


def test_oversize_line_across_reads_is_sampled_and_skipped() -> None:
    chunks = [b'{"a":1}\n', b"x" * 60, b"x" * 60, b"x" * 60 + b'\n{"b":2}\n']
    blocks, raws, bad, end = feed_all(chunks, limit=100, limit_name="max_frame_bytes")
    assert bad == [BadInput(8, oversize_reason(100, "max_frame_bytes"), b"x" * 100)]
    assert "exceeds max_frame_bytes (100); raw holds its first 100 bytes" in bad[0].reason
    assert raws == [b'{"a":1}', b'{"b":2}']
    assert b"".join(b for _, b in blocks) == b'{"a":1}\n{"b":2}\n'
    assert end == sum(map(len, chunks))


def test_oversize_line_inside_one_read_says_how_long_it_was() -> None:
    line = b"y" * 150
    _, raws, bad, _ = feed_all([b'{"a":1}\n' + line + b'\n{"b":2}\n'], limit=100)
    assert raws == [b'{"a":1}', b'{"b":2}']
    assert bad == [BadInput(8, oversize_reason(100, "max_line_bytes", 150), line[:100])]


def test_bad_lines_come_in_stream_order() -> None:
    """A block's bad lines, then the oversize line that outgrew the carry after it."""
    _, _, bad, _ = feed_all([b'nope\n{"a":1}\n' + b"z" * 120, b'\n{"b":2}\n'], limit=100)
    assert [b.offset for b in bad] == [0, 13]


def test_the_unterminated_oversize_line_at_the_end_is_dead_lettered() -> None:
    _, raws, bad, end = feed_all([b'{"a":1}\n', b"q" * 101], limit=100)
    assert raws == [b'{"a":1}'] and [(b.offset, b.raw) for b in bad] == [(8, b"q" * 100)]
    assert end == 109


# ---------------------------------------------------------------- any stream, any cut

def reference(stream: bytes, limit: int) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    """The rules applied to a whole stream at once: records and (offset, sample) of
    the bad lines."""
    start = len(UTF8_BOM) if stream.startswith(UTF8_BOM) else 0
    lines = stream[start:].split(b"\n")
    offsets = accumulate((len(line) + 1 for line in lines), initial=start)
    raws, bad = [], []
    for offset, line in zip(offsets, lines, strict=False):
        if len(line.removesuffix(b"\r")) > limit:
            bad.append((offset, line[:limit]))
            continue
        decoded = decode_block(line, offset, limit)
        raws += decoded.raws
        bad += [(b.offset, b.raw) for b in decoded.bad]
    return raws, bad


def cut(stream: bytes, cuts: list[int] | None) -> list[bytes]:
    if cuts is None:  # byte by byte
        return [stream[i:i + 1] for i in range(len(stream))]
    points = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    return [stream[a:b] for a, b in pairwise(points)]


pieces = st.sampled_from([b'{"a":1}', b'{"b":"xyz"}', b"[1]", b"nope", b"", b" ", b"\r",
                          b"\xef", b"\xbb\xbf", UTF8_BOM, b'{"long":"' + b"L" * 30 + b'"}'])
lines_strategy = st.lists(pieces, max_size=4).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(bom=st.booleans(), lines=st.lists(lines_strategy, max_size=10),
       endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=10, max_size=10),
       terminated=st.booleans(), limit=st.integers(1, 40),
       cuts=st.none() | st.lists(st.integers(min_value=0), max_size=12),
       reused=st.booleans())
def test_any_chunking_takes_the_lines_the_rules_say(
        bom: bool, lines: list[bytes], endings: list[bytes], terminated: bool, limit: int,
        cuts: list[int] | None, reused: bool) -> None:
    stream = (UTF8_BOM if bom else b"") + b"".join(
        line + ending for line, ending in zip(lines, endings, strict=False))
    if lines and not terminated:
        stream = stream.removesuffix(b"\n")
    blocks, raws, bad, end = feed_all(cut(stream, cuts), limit=limit, reused=reused)
    assert (raws, [(b.offset, b.raw) for b in bad]) == reference(stream, limit)
    assert end == len(stream)
    # every block, kept while later reads overwrote the buffer, is the stream's bytes
    assert all(stream[offset:offset + len(block)] == block for offset, block in blocks)
    assert all(type(block) is bytes for _, block in blocks)


def test_an_oversize_line_is_never_held_whole() -> None:
    splitter = LineSplitter(0, 100)
    bad = splitter.feed(b'{"a":1}\nxx')[0].bad
    for _ in range(1000):
        bad += splitter.feed(b"y" * 1000)[0].bad
        assert splitter.buffered <= 101
    decoded, start = splitter.feed(b'z\r\n{"b":2}\n')
    assert [(b.offset, b.raw) for b in bad] == [(8, b"xx" + b"y" * 98)]
    assert decoded.raws == [b'{"b":2}'] and start == 8 + 2 + 1000 * 1000 + 3


def test_a_long_line_is_joined_once_not_at_every_read() -> None:
    """Its reads are held as pieces: joining them at each read copied everything
    held so far again (a 50 MB line in 1 MiB reads: 1.3 s of CPU, quadratic), and
    for a moment held it twice.  Measured by memory, not time: while the line is
    unfinished its bytes are held once."""
    read, reads = 256 << 10, 32
    splitter = LineSplitter(0, 1 << 30)
    buffer = bytearray(b"x" * read)
    tracemalloc.start()
    try:
        assert splitter.feed_from(bytearray(b'{"a":"'), 6)[0].raws == []
        for _ in range(reads):
            assert splitter.feed_from(buffer, read)[0].raws == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert splitter.buffered == 6 + read * reads
    assert peak < 1.25 * read * reads, f"{peak} bytes at peak for {read * reads} held"
    buffer[:3] = b'"}\n'
    decoded, start = splitter.feed_from(buffer, 3)
    assert start == 0 and decoded.raws == [b'{"a":"' + b"x" * (read * reads) + b'"}']
    assert splitter.finish()[0].raws == [] and splitter.offset == 6 + read * reads + 3


# a NUL hole: a crash with delayed allocation leaves a file's tail as NUL bytes, the
# newline before the next record included; the hole is reported, the record read
HOLE_STREAM = b'{"a":1}\n' + b"\0" * 500 + b'{"b":2}\n{"c":3}\n'


def test_a_nul_hole_is_one_dead_letter_and_the_record_after_it_is_read() -> None:
    for reused in (False, True):
        for size in (1, 7, 64, 99, 101, 250, len(HOLE_STREAM)):
            chunks = [HOLE_STREAM[i:i + size] for i in range(0, len(HOLE_STREAM), size)]
            _, raws, bad, end = feed_all(chunks, limit=100, reused=reused)
            assert raws == [b'{"a":1}', b'{"b":2}', b'{"c":3}'], (size, reused)
            assert bad == [BadInput(8, nul_hole_reason(500), b"")], (size, reused)
            assert end == len(HOLE_STREAM)


CUT_STREAM = b'{"a":1}\n{"b":"xx' + b"\0" * 500 + b'{"c":3}\n{"d":4}\n'


def test_a_nul_hole_from_the_middle_of_a_line_is_one_dead_letter_with_that_part() -> None:
    """Delayed allocation zeroes from a block boundary: the line before the hole and
    the hole are one dead letter (raw: the line's bytes), the record after it read;
    under the limit and over it, however the stream is cut."""
    for limit in (100, 1000):
        for size in (1, 7, 64, 101, len(CUT_STREAM)):
            chunks = [CUT_STREAM[i:i + size] for i in range(0, len(CUT_STREAM), size)]
            _, raws, bad, end = feed_all(chunks, limit=limit)
            assert raws == [b'{"a":1}', b'{"c":3}', b'{"d":4}'], (limit, size)
            assert bad == [BadInput(8, nul_hole_reason(500, 8), b'{"b":"xx')], (limit, size)
            assert end == len(CUT_STREAM)


def test_nuls_held_at_the_end_are_read_again_after_a_rewind() -> None:
    """A followed file's NULs written in place later: the reader asks where the first
    NUL held is, and after a rewind feeds the bytes from the offset again."""
    for hole in (50, 500):  # in the unfinished line (under the limit), or a hole
        splitter = LineSplitter(0, 100)
        splitter.feed(b'{"a":1}\n{"b":' + b"\0" * hole)
        assert splitter.nul_held_at() == 8 + 5 and splitter.offset == 8
        assert splitter.rewind() == 8 and splitter.nul_held_at() is None
        decoded, start = splitter.feed(b'{"b":2}\n' + b"\0" * 10)
        assert (decoded.raws, decoded.bad, start) == ([b'{"b":2}'], [], 8)
        assert splitter.nul_held_at() == 16
    assert LineSplitter(0, 100).nul_held_at() is None


def test_a_short_nul_hole_and_an_oversize_record_after_it() -> None:
    stream = b"\0" * 30 + b'{"long":"' + b"x" * 200 + b'"}\n{"c":3}\n'
    _, raws, bad, _ = feed_all([stream], limit=100)
    assert raws == [b'{"c":3}']
    assert [(b.offset, b.reason) for b in bad] == [
        (0, nul_hole_reason(30)), (30, oversize_reason(100, "max_line_bytes", 211))]


def test_a_nul_hole_at_the_end_is_left_for_the_next_run() -> None:
    """NULs with no record after them yet: a file being preallocated, or a crash
    that a writer has not written past; the offset stays at the hole's start."""
    for hole in (50, 500):
        splitter = LineSplitter(0, 100)
        for start in range(0, 8 + hole, 64):
            splitter.feed((b'{"a":1}\n' + b"\0" * hole)[start:start + 64])
        assert splitter.offset == 8 and splitter.cut_short(), hole
        decoded, _ = splitter.feed(b'{"b":2}\n')
        assert decoded.raws == [b'{"b":2}']
        assert decoded.bad == [BadInput(8, nul_hole_reason(hole), b"")]
        assert splitter.offset == 8 + hole + 8


def test_the_line_after_a_nul_hole_gets_every_check_at_its_own_offset() -> None:
    block = (b"\0" * 5 + b'{"n":123456789012345678901}\n' + b"\0" * 3 + b"[1]\n"
             + b"\0" * 2 + b'{"ok":1}\n')
    decoded = decode_block(block, 1000, 100)
    assert decoded.raws == [b'{"ok":1}']
    assert [(b.offset, b.reason.split(" (")[0], b.raw) for b in decoded.bad] == [
        (1000, "a hole of 5 NUL bytes", b""),
        (1005, "integer 123456789012345678901 is outside the signed 64-bit range",
         b'{"n":123456789012345678901}'),
        (1033, "a hole of 3 NUL bytes", b""),
        (1036, "not a JSON object: list", b"[1]"),
        (1040, "a hole of 2 NUL bytes", b"")]
