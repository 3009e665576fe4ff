"""Lines of a staged object by number, as a Timestream error report names them."""

from streamer.loaders.timestream_report import line_starts


def test_line_starts_index_every_line_crlf_or_not():
    data = b"h1,h2\r\na,1\r\nb,2\nc,3"
    starts = line_starts(data)
    assert starts == [0, 7, 12, 16]
    assert [data[s:e].rstrip(b"\r\n") for s, e in zip(starts, [*starts[1:], len(data)],
                                                        strict=True)] == [
        b"h1,h2", b"a,1", b"b,2", b"c,3"]
