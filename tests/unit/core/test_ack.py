import pytest

from streamer.core.ack import Ack, OrderedCommitter


def test_ordered_committer_only_moves_over_finished_prefix():
    seen = []
    committer = OrderedCommitter(0, seen.append)
    a, b, c = (committer.track(end, 2) for end in (10, 20, 30))
    for ack in (b, b, c, c):
        ack.release()
    assert committer.committed == 0
    a.release()
    assert committer.committed == 0
    a.release()
    assert committer.committed == 30 and seen == [30]


def test_zero_sink_ack_finishes_at_once():
    committer = OrderedCommitter(5)
    committer.track(9, 0)
    assert committer.committed == 9


@pytest.mark.parametrize("sinks", [1, 3])
def test_ack_release_count(sinks):
    done = []
    ack = Ack(sinks, lambda: done.append(1))
    ack.retain(2)
    for _ in range(sinks + 1):
        ack.release()
    assert not done
    ack.release()
    assert done == [1]
