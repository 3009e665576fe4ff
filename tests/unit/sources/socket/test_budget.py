"""The bound on what a socket source's connections hold together: past it only
one connection (the owner) reads, owners take turns, and everyone reads again
below it; a lost owner never leaves the rest waiting."""

from __future__ import annotations

from streamer.sources.socket.budget import ReadBudget


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.held = 0
        self.resumed = 0

    def resume(self) -> None:
        self.resumed += 1


def hold(budget: ReadBudget, conn: FakeConnection, size: int) -> bool:
    """A read of `size` bytes arrives: may the connection read on?"""
    conn.held += size
    budget.buffered += size
    return budget.may_read(conn)


def release(budget: ReadBudget, conn: FakeConnection, size: int) -> None:
    conn.held -= size
    budget.buffered -= size
    budget.rebalance()


def test_past_the_bound_one_owner_reads_and_the_rest_wait_then_all_resume() -> None:
    budget = ReadBudget(100)
    a, b, c = FakeConnection("a"), FakeConnection("b"), FakeConnection("c")
    assert hold(budget, a, 40) and hold(budget, b, 40)
    assert hold(budget, c, 30)  # past the bound: the first to ask is the owner
    assert not hold(budget, a, 10) and not hold(budget, b, 1)
    assert hold(budget, c, 50)  # the owner finishes its frame
    release(budget, c, 60)  # emitted: 111 held, still past the bound -- owner stays
    assert (a.resumed, b.resumed) == (0, 0)
    release(budget, a, 50)  # below: everyone held back reads again
    assert (a.resumed, b.resumed, c.resumed) == (1, 1, 0)
    assert budget.may_read(b)


def test_owners_take_turns_and_a_lost_owner_is_replaced() -> None:
    budget = ReadBudget(100)
    a, b, c = FakeConnection("a"), FakeConnection("b"), FakeConnection("c")
    hold(budget, a, 60)
    hold(budget, b, 30)
    assert hold(budget, c, 20)  # owner
    assert not hold(budget, a, 5) and not hold(budget, b, 5)
    budget.frame_done(c)  # c completed one: the held-back one holding most goes next
    release(budget, c, 5)
    assert (a.resumed, b.resumed) == (1, 0)
    assert budget.may_read(a) and not budget.may_read(c)
    hold(budget, b, 40)  # b is held back already: nothing changes
    budget.forget(a)  # a is gone while owner, past the bound: b (the most held) is next
    assert (b.resumed, c.resumed) == (1, 0)
    assert budget.may_read(b) and not budget.may_read(c)
    release(budget, b, 75)  # below the bound: everyone reads
    assert c.resumed == 1
