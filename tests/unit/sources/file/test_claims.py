from streamer.sources.file.claims import FileClaims
from streamer.supervisor.shards import Shard


def test_one_worker_owns_everything_without_claim_files(tmp_path):
    claims = FileClaims(tmp_path / "claims", Shard(0, 1))
    assert claims.owns((1, 2)) and claims.owns((1, 3))
    assert not (tmp_path / "claims").exists()


def test_files_are_spread_and_stay_with_their_first_owner(tmp_path):
    directory = tmp_path / "claims"
    first, second = FileClaims(directory, Shard(0, 2)), FileClaims(directory, Shard(1, 2))
    # worker 0 scans first: it takes one file and leaves the rest to the idle worker
    assert [first.owns((9, i)) for i in range(4)] == [True, False, False, False]
    assert first.unclaimed == {(9, 1), (9, 2), (9, 3)}
    # worker 1 takes files while it holds no more than worker 0
    assert [second.owns((9, i)) for i in range(4)] == [False, True, True, False]
    first.unclaimed.clear()
    assert [first.owns((9, i)) for i in range(4)] == [True, False, False, True]
    assert first.unclaimed == set()
    # claims are files: a restarted worker finds its own
    again = FileClaims(directory, Shard(1, 2))
    assert [again.owns((9, i)) for i in range(4)] == [False, True, True, False]
    assert sorted(p.name for p in directory.iterdir()) == ["9-0", "9-1", "9-2", "9-3"]
