import os

from streamer.sources.file.stream_key import latest_generation, stream_key


def key_of(path, gen=0, complete=True):
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        return stream_key(fd, (st.st_dev, st.st_ino), gen, complete)
    finally:
        os.close(fd)


def test_the_key_survives_growth_and_rename(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b'{"a":1}\n')
    first = key_of(path)
    with open(path, "ab") as fh:
        fh.write(b'{"a":2}\n' * 100)  # the first line is all the key hashes
    renamed = tmp_path / "app.log.1"
    os.rename(path, renamed)
    assert key_of(renamed) == first


def test_a_first_line_not_written_whole_has_no_key_yet(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b'{"a":')
    assert key_of(path) is None
    assert key_of(path, complete=False) is not None  # a last line read at end of input
    path.write_bytes(b"x" * 300)  # no newline in the first 256 bytes: those bytes are fixed
    assert key_of(path) is not None


def test_a_truncation_or_other_first_line_is_another_stream(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b'{"a":1}\n')
    zero, one = key_of(path), key_of(path, gen=1)
    assert zero != one
    path.write_bytes(b'{"b":1}\n')  # same inode, other content
    assert key_of(path) != zero


def test_without_a_checkpoint_the_latest_staged_generation_is_taken():
    key = "1.2.0.abcd"
    known = ["1.2.0.abcd", "1.2.3.abcd", "1.2.5.ffff", "9.2.7.abcd"]
    assert latest_generation(key, known) == "1.2.3.abcd"
    assert latest_generation(key, []) == key
