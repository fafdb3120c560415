"""The fairness mechanisms alone (``baat.server.fairness``); the e2e test runs them together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from baat.server.fairness import DeviceListLoader, RoundRobin, SenderShares
from baat.server.storage.base import StorageUnavailable
from baat.server.storage.sql import SqlStore
from support.devices import registration_body


class Conn:
    def __init__(self, name: str, backlog: int, log: list[str]) -> None:
        self.name, self.backlog, self.log = name, backlog, log

    def take_turn(self, quantum: int) -> bool:
        n = min(quantum, self.backlog)
        self.backlog -= n
        self.log.extend([self.name] * n)
        return self.backlog > 0


async def test_round_robin_gives_each_backlog_one_quantum_per_turn() -> None:
    log: list[str] = []
    ring = RoundRobin(quantum=4)
    big, small = Conn("big", 100, log), Conn("small", 6, log)
    ring.defer(big)
    ring.defer(small)
    ring.defer(big)  # already queued: once per round
    # Another callback scheduled meanwhile (a socket read) runs between the rounds.
    loop = asyncio.get_running_loop()
    loop.call_soon(log.append, "read")
    for _ in range(100):  # one round per loop turn: step the loop turn by turn
        if not len(ring):
            break
        await asyncio.sleep(0)
    assert log[:9] == ["big"] * 4 + ["small"] * 4 + ["read"]
    assert log.count("small") == 6 and log.count("big") == 100
    # The small backlog was done in two rounds, long before the big one.
    last_small = max(i for i, x in enumerate(log) if x == "small")
    assert last_small < 16
    assert ring.rounds == 25


def test_shares_hold_only_the_sender_over_its_share() -> None:
    shares = SenderShares(budget=100, min_share=10)
    greedy, modest = ("a", 1), ("b", 1)
    assert not shares.add(modest, 5)
    assert shares.share() == 100  # one sender: the whole budget
    assert shares.add(greedy, 60)  # two senders now: 50 each
    assert shares.share() == 50
    resumed: list[str] = []
    shares.hold(greedy, lambda: resumed.append("greedy"))
    assert shares.is_held(greedy) and not shares.is_held(modest)
    shares.settle(greedy, 20)  # 40 left: under its share, not yet under half
    assert resumed == []
    shares.settle(greedy, 15)  # 25: half of 50
    assert resumed == ["greedy"] and not shares.is_held(greedy)
    shares.settle(greedy, 25)
    shares.settle(modest, 5)
    assert shares.total == 0 and shares.outstanding(greedy) == 0


def test_shares_floor_and_immediate_resume() -> None:
    shares = SenderShares(budget=100, min_share=40)
    for i in range(10):
        shares.add((f"s{i}", 1), 1)
    assert shares.share() == 40  # 100 / 10 would be 10: the floor applies
    resumed: list[int] = []
    shares.hold(("s0", 1), lambda: resumed.append(1))  # already under half: resumes at once
    assert resumed == [1]
    shares.add(("x", 1), 50)
    shares.hold(("x", 1), lambda: resumed.append(2))
    shares.forget(("x", 1))
    shares.settle(("x", 1), 50)
    assert resumed == [1]  # a forgotten connection is not resumed


async def test_loader_coalesces_one_turn_of_misses_into_one_read() -> None:
    reads: list[list[str]] = []

    async def read(ids: Sequence[str]) -> dict[str, frozenset[int]]:
        reads.append(list(ids))
        await asyncio.sleep(0)
        return {i: frozenset({1, 2}) for i in ids if i != "nobody"}

    loader = DeviceListLoader(read)
    futs = [loader.load(a) for a in ("a", "b", "a", "nobody")]
    assert futs[0] is futs[2]
    assert await asyncio.gather(*futs) == [frozenset({1, 2})] * 3 + [frozenset()]
    assert reads == [["a", "b", "nobody"]]
    assert await loader.load("c") == frozenset({1, 2})
    assert reads[-1] == ["c"] and loader.reads == 2


async def test_loader_passes_an_outage_to_every_waiter() -> None:
    async def read(ids: Sequence[str]) -> dict[str, frozenset[int]]:
        raise StorageUnavailable("down")

    loader = DeviceListLoader(read)
    a, b = loader.load("a"), loader.load("b")
    for fut in (a, b):
        with pytest.raises(StorageUnavailable):
            await fut
    loader.load("c")  # nobody awaits this one: no "exception never retrieved" warning
    await asyncio.sleep(0.01)


async def test_store_reads_device_ids_of_many_accounts(store: SqlStore) -> None:
    from baat.server.accounts import register

    regs = [await register(store, registration_body(f"dl{i}"), "local") for i in range(3)]
    ids = [r.account_id for r in regs]
    found = await store.device_ids_of([*ids, "missing"])
    assert found == {r.account_id: frozenset({r.device_id}) for r in regs}
    assert await store.device_ids_of([]) == {}
