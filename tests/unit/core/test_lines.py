"""A read's block and a list of lines are the same records, however they are cut."""

from hypothesis import given
from hypothesis import strategies as st

from streamer.core.lines import Lines
from streamer.core.ndjson import decode_block

lines = st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"x")),
                 min_size=1, max_size=60)


def _joined(part: Lines) -> bytes:
    return b"".join(bytes(buffer) for buffer in part.ndjson())


def _same(block_part: Lines, list_part: Lines) -> None:
    assert block_part.raws == list_part.raws
    assert (block_part.count, block_part.nbytes) == (list_part.count, list_part.nbytes)
    assert _joined(block_part) == _joined(list_part) == b"".join(r + b"\n" for r in list_part.raws)


@given(raws=lines, cuts=st.lists(st.floats(0, 1), min_size=1, max_size=4),
       split_raws_first=st.booleans())
def test_split_block_and_split_list_hold_the_same_records(raws, cuts, split_raws_first):
    block = b"".join(r + b"\n" for r in raws)
    from_block = Lines.of_block(block, len(raws), max(map(len, raws)))
    if split_raws_first:
        assert from_block.raws == raws  # split once, then kept alongside the block
    from_list = Lines.of(raws)
    _same(from_block, from_list)
    for cut in cuts:  # cut the tail again and again, as batches and files do
        count = int(cut * from_block.count)
        block_head, from_block = from_block.split(count)
        list_head, from_list = from_list.split(count)
        _same(block_head, list_head)
        _same(from_block, from_list)


@given(raws=lines, max_bytes=st.integers(0, 2000), limit=st.integers(0, 80))
def test_fitting_counts_whole_records_within_the_bytes(raws, max_bytes, limit):
    block = b"".join(r + b"\n" for r in raws)
    from_block = Lines.of_block(block, len(raws), max(map(len, raws)))
    # a block counts each record with its newline, a list without
    sizes = {"block": [len(r) + 1 for r in raws], "list": [len(r) for r in raws]}
    for kind, part in (("block", from_block), ("list", Lines.of(raws))):
        want, total = 0, 0
        for size in sizes[kind][:limit]:
            total += size
            if total > max_bytes:
                break
            want += 1
        assert part.fitting(max_bytes, limit) == want, kind


def test_a_whole_read_stays_its_block_and_anything_else_a_list():
    good = b'{"a":1}\n{"b":"x"}\n'
    whole = decode_block(good, 0, 100)
    assert whole.whole and whole.lines().ndjson()[0].obj is good  # no copy
    for block in (good + b"\n", good + b"not json\n", good + b'{"c":1}', b'\xef\xbb\xbf' + good,
                  good + b'{"n":9223372036854775808}\n'):
        decoded = decode_block(block, 0, 100)
        assert not decoded.whole, block
        lines = decoded.lines()
        assert lines.raws == decoded.raws and lines.count == len(decoded.raws)


def test_count_of_counts_within_the_lines_only():
    block = b'{"a":[1]}\n{"b":{"c":"["}}\n{"d":2}\n'
    whole = Lines.of_block(block, 3, 16)
    head, tail = whole.split(1)
    for lines in (whole, Lines.of(whole.raws)):
        assert (lines.count_of(b"{"), lines.count_of(b"[")) == (4, 2)
    assert (head.count_of(b"["), tail.count_of(b"["), tail.count_of(b"{")) == (1, 1, 3)


def test_contains_looks_within_the_lines_only():
    block = b'{"a":1}\n{"b":[2]}\n{"c":3}\n'
    whole = Lines.of_block(block, 3, 9)
    head, rest = whole.split(1)
    middle, last = rest.split(1)
    for lines in (whole, Lines.of(whole.raws)):
        assert lines.contains(b"[") and not lines.contains(b"x")
    assert (head.contains(b"["), middle.contains(b"["), last.contains(b"[")) == (False, True, False)
    assert not Lines.of([b'{"a":1}', b'{"c":3}']).contains(b"[")
    assert not Lines.of([]).contains(b"[")
