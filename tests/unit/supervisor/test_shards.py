import pytest

from streamer.supervisor.shards import Shard


@pytest.mark.parametrize("bad", ["4/4", "-1/2", "x/2", "1"])
def test_shard_parse_refuses(bad):
    with pytest.raises(ValueError):
        Shard.parse(bad)


def test_shard_parse():
    assert Shard.parse("1/4") == Shard(1, 4)
