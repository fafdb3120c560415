"""Fairness under overload: no connection monopolises the event loop (issue 18, item 2).

Three mechanisms, each small, each aimed at one way a busy server starved some users:

1. **Bounded work per connection per loop turn** (``RoundRobin``). A connection hands at
   most ``MESSAGES_PER_TURN`` whole messages to its session per loop turn. What it read
   beyond that waits in its own backlog, reading paused, and the connection joins a ring
   that the loop serves round-robin, one quantum per connection per turn, between its
   socket callbacks. A client that pipelines thousands of frames therefore gets one share
   of the loop, not all of it, and never more buffered than one read.
2. **Senders over their share slow down, not everyone** (``SenderShares``). The router
   counts each sender device's accepted envelopes not yet settled (acknowledged or
   stored). A device holding more than its share of everything outstanding (an equal split
   of ``OUTSTANDING_BUDGET`` over the devices with something outstanding, but never less
   than ``MIN_SHARE``) has its socket's reading paused until it is back under half its
   share. Other senders, and its own receiving, are untouched.
3. **No send waits for a device list of an online account** (``DeviceListLoader``). The
   first send to an account whose device list was not cached read the database inline,
   one transaction per sender, each behind the last on SQLite's one connection: with 500
   users starting at once the last senders waited seconds (docs/PERFORMANCE.md,
   "Fairness"). Authentication now reads all of the account's devices in its one query
   and the router caches their ids (``Router.learn_devices``); the lists that are still
   cold (accounts not online here) missed in one loop turn share one ``IN (...)`` read.

Round-robin delivery to recipients follows from 1: a message's pushes happen while its
sender holds the turn, and each sender holds it for a bounded quantum, in ring order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

MESSAGES_PER_TURN = 16
OUTSTANDING_BUDGET = 65_536
MIN_SHARE = 1_024

DeviceKey = tuple[str, int]


class Backlogged(Protocol):
    """A connection with messages waiting for their turn."""

    def take_turn(self, quantum: int) -> bool:
        """Handle up to ``quantum`` waiting messages; True if some are still waiting."""
        ...


class RoundRobin:
    """The ring of connections with a backlog, served one quantum each per loop turn.

    ``call_soon`` puts each round behind the socket callbacks already due, so a round is
    one turn: the ring and fresh reads alternate, and neither starves the other.
    """

    __slots__ = ("_handle", "_queued", "_ring", "quantum", "rounds")

    def __init__(self, quantum: int = MESSAGES_PER_TURN) -> None:
        self.quantum = quantum
        self._ring: deque[Backlogged] = deque()
        self._queued: set[Backlogged] = set()
        self._handle: asyncio.Handle | None = None
        self.rounds = 0

    def __len__(self) -> int:
        return len(self._ring)

    def defer(self, conn: Backlogged) -> None:
        """``conn`` has a backlog: serve it in the next round (at most once per round)."""
        if conn not in self._queued:
            self._queued.add(conn)
            self._ring.append(conn)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._round)

    def _round(self) -> None:
        self._handle = None
        self.rounds += 1
        ring, self._ring = self._ring, deque()
        for conn in ring:
            self._queued.discard(conn)
            if conn.take_turn(self.quantum) and conn not in self._queued:
                self._queued.add(conn)
                self._ring.append(conn)
        if self._ring and self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._round)


class SenderShares:
    """Outstanding envelopes per sender device, and who is over their share."""

    __slots__ = ("_held", "_outstanding", "budget", "min_share", "total")

    def __init__(self, budget: int = OUTSTANDING_BUDGET, min_share: int = MIN_SHARE) -> None:
        self.budget = budget
        self.min_share = min_share
        self._outstanding: dict[DeviceKey, int] = {}
        self._held: dict[DeviceKey, Callable[[], None]] = {}
        self.total = 0

    def share(self) -> int:
        """What one sender may have outstanding now: an equal split, never below the floor."""
        return max(self.min_share, self.budget // max(1, len(self._outstanding)))

    def outstanding(self, sender: DeviceKey) -> int:
        return self._outstanding.get(sender, 0)

    def add(self, sender: DeviceKey, count: int) -> bool:
        """``count`` envelopes of ``sender`` were accepted; True if it is now over its share."""
        n = self._outstanding.get(sender, 0) + count
        self._outstanding[sender] = n
        self.total += count
        return n > self.share()

    def hold(self, sender: DeviceKey, resume: Callable[[], None]) -> None:
        """``sender`` stopped reading; call ``resume`` once it is under half its share."""
        if self._outstanding.get(sender, 0) * 2 <= self.share():
            resume()
        else:
            self._held[sender] = resume

    def settle(self, sender: DeviceKey, count: int = 1) -> None:
        n = self._outstanding.get(sender, 0) - count
        self.total -= count
        if n <= 0:
            self._outstanding.pop(sender, None)
            n = 0
        else:
            self._outstanding[sender] = n
        resume = self._held.get(sender)
        if resume is not None and n * 2 <= self.share():
            del self._held[sender]
            resume()

    def forget(self, sender: DeviceKey) -> None:
        """The sender's connection is gone: nothing to resume."""
        self._held.pop(sender, None)

    def is_held(self, sender: DeviceKey) -> bool:
        return sender in self._held


class DeviceListLoader:
    """Coalesces device-list reads: every account missed in one loop turn, one read."""

    __slots__ = ("_batch", "_flight", "_read", "reads")

    def __init__(
        self, read: Callable[[Sequence[str]], Awaitable[dict[str, frozenset[int]]]]
    ) -> None:
        self._read = read
        self._batch: dict[str, asyncio.Future[frozenset[int]]] | None = None
        self._flight: dict[str, asyncio.Future[frozenset[int]]] = {}
        self.reads = 0

    def load(self, account_id: str) -> asyncio.Future[frozenset[int]]:
        """A future for the account's device ids (empty if it has none).

        Raises (through the future): whatever the read raises (``StorageUnavailable``).
        """
        fut = self._flight.get(account_id)
        if fut is not None:
            return fut
        batch = self._batch
        if batch is None:
            batch = self._batch = {}
            asyncio.get_running_loop().call_soon(self._start)
        fut = batch.get(account_id)
        if fut is None:
            fut = batch[account_id] = asyncio.get_running_loop().create_future()
            self._flight[account_id] = fut
        return fut

    def _start(self) -> None:
        batch, self._batch = self._batch or {}, None
        task = asyncio.get_running_loop().create_task(self._run(batch))
        task.add_done_callback(_consume)

    async def _run(self, batch: dict[str, asyncio.Future[frozenset[int]]]) -> None:
        self.reads += 1
        try:
            found = await self._read(list(batch))
        except BaseException as exc:
            for account_id, fut in batch.items():
                self._flight.pop(account_id, None)
                if not fut.done():
                    if isinstance(exc, Exception):
                        fut.set_exception(exc)
                        fut.exception()  # retrieved here: a waiter may have gone away
                    else:
                        fut.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for account_id, fut in batch.items():
            self._flight.pop(account_id, None)
            if not fut.done():
                fut.set_result(found.get(account_id, frozenset()))


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # each waiter got it through its future
