"""The exactly-once stage's files (issue #19): one stream per file, whole chunks in
order, more streams than `max_open_files`, and completion records that tile each
input file from 0 to its end."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import orjson

from tests.helpers import (
    assert_stage_equals,
    base_config,
    file_source,
    make_records,
    parse_csv,
    run_cli,
    stage_sink,
    write_config,
    write_ndjson,
)

FILES = 10


def test_more_streams_than_open_files_each_file_holds_one_stream_in_order(
        tmp_path: Path) -> None:
    records = make_records(20_000)
    (tmp_path / "in").mkdir()
    sizes, owner = {}, {}
    for index in range(FILES):  # interleaved ids: a file's own ids ascend
        mine = records[index::FILES]
        path = tmp_path / "in" / f"f{index}.log"
        sizes[path.name] = write_ndjson(path, mine)
        owner.update((r["id"], path.name) for r in mine)
    config = write_config(tmp_path, base_config(tmp_path)
                          + file_source(str(tmp_path / "in" / "*.log"), follow=False,
                                        extra="read_bytes = 16384")
                          + stage_sink(tmp_path, max_file_age_s=None,
                                       extra="exactly_once = true\nmax_open_files = 3\n"
                                             "max_file_records = 700"))

    done = run_cli("run", "-c", str(config))

    assert done.code == 0, done.stderr[-3000:]
    assert_stage_equals(tmp_path / "stage", records)
    staged = sorted((tmp_path / "stage").glob("*/part-s*.csv"))
    by_stream: dict[str, list[int]] = defaultdict(list)
    for path in staged:
        start = path.stem.rsplit("-", 1)[1]
        ids = [int(row[0]) for row in parse_csv(path.read_bytes())[1:]]
        assert ids == sorted(ids) and len({owner[i] for i in ids}) == 1, path
        by_stream[owner[ids[0]]].append(int(start))
    assert sorted(by_stream) == sorted(sizes)
    # each file's completion records tile it: start 0, each start the end before, its size
    journal = tmp_path / "data" / "journal" / "stage.ndjson"
    completed = [orjson.loads(line)["completed"] for line in journal.read_bytes().splitlines()
                 if b'"completed"' in line]
    assert len(completed) == len(staged)
    names = {path.name: owner[int(parse_csv(path.read_bytes())[1][0])] for path in staged}
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for done_file in completed:
        spans[names[done_file["file"]]].append((done_file["start"], done_file["end"]))
    for name, ranges in spans.items():
        ranges.sort()
        assert ranges[0][0] == 0 and ranges[-1][1] == sizes[name], name
        assert all(a[1] == b[0] for a, b in pairwise(ranges)), name
    assert sorted(start for starts in by_stream.values() for start in starts) == sorted(
        start for ranges in spans.values() for start, _ in ranges)
