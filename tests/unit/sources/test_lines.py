from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.ndjson import UTF8_BOM
from streamer.sources.lines import LineSplitter


def feed_all(chunks, max_line=100, start=0):
    splitter = LineSplitter(start, max_line)
    blocks, bad = [], []
    for chunk in chunks:
        block, offset, oversize = splitter.feed(chunk)
        blocks.append((offset, block))
        bad.extend(oversize)
    block, offset, oversize = splitter.finish()
    blocks.append((offset, block))
    bad.extend(oversize)
    return blocks, bad, splitter.offset


def test_blocks_hold_whole_lines_with_offsets():
    blocks, bad, end = feed_all([b"ab", b"c\nde\nf", b"g\n"])
    assert [b for b in blocks if b[1]] == [(0, b"abc\nde\n"), (7, b"fg\n")]
    assert bad == [] and end == 10


def test_last_line_without_newline_is_flushed_by_finish():
    blocks, _, end = feed_all([b"a\nlast"])
    assert blocks[-1] == (2, b"last") and end == 6


def test_bom_at_stream_start_is_skipped():
    blocks, _, end = feed_all([UTF8_BOM + b"x\n"])
    assert blocks[0] == (3, b"x\n") and end == 5
    blocks, _, _ = feed_all([UTF8_BOM + b"x\n"], start=10)
    assert blocks[0][1].startswith(UTF8_BOM)


def test_oversize_line_across_reads_is_sampled_and_skipped():
    chunks = [b"ok\n", b"x" * 60, b"x" * 60, b"x" * 60 + b"\nnext\n"]
    blocks, bad, end = feed_all(chunks, max_line=100)
    assert len(bad) == 1 and bad[0].offset == 3 and bad[0].raw == b"x" * 100
    assert b"".join(b for _, b in blocks) == b"ok\nnext\n"
    assert end == sum(map(len, chunks))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), max_size=20),
       st.lists(st.integers(1, 40), max_size=30))
def test_any_chunking_gives_the_same_lines_and_offsets(lines, cuts):
    data = b"".join(line + b"\n" for line in lines)
    if data.startswith(UTF8_BOM):
        return
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(data[pos:pos + cut])
        pos += cut
    chunks.append(data[pos:])
    blocks, bad, end = feed_all(chunks, max_line=1000)
    joined = b"".join(b for _, b in blocks)
    assert joined == data and bad == [] and end == len(data)
    for offset, block in blocks:
        assert data[offset:offset + len(block)] == block
