"""Group fan-out at routing cost: the in-memory hold for online members (issue 18, item 4).

A one-to-one envelope that its device does not acknowledge within ``ack_grace`` (5 ms) is
committed, so that its sender gets a ``SendResult`` soon. A group send is different: its
envelopes go to every member at once, and a member acknowledges only after it has checked,
decrypted and stored the message, 40-60 ms later on this machine and far more on a phone
network. With the 5 ms grace nearly every group envelope was inserted and deleted again,
which made a fan-out cost 3.4x a one-to-one envelope (docs/PERFORMANCE.md, "Groups").

The rule, which keeps "a ``SendResult`` only once every envelope is acknowledged or durably
stored" (docs/ARCHITECTURE.md, "Delivery"):

1. A send with two or more envelopes for this node is a fan-out. Its envelopes for online
   devices are pushed at once and *held* in memory for up to ``HOLD_S`` instead of the
   grace: each one a member acknowledges in that time never touches the disk.
2. Its envelopes for offline devices are committed in the writer's next pass, all in one
   transaction (group commit of the fan-out), as before.
3. When the hold expires, every envelope of it still unacknowledged is committed in one
   pass; a device that disconnects, and shutdown, commit its held envelopes at once, like
   any pushed envelope (nothing held is lost to a graceful restart; a ``kill -9`` loses
   only sends whose sender has no ``SendResult`` yet, and those senders retry).
4. The hold is bounded: at most ``HOLD_BUDGET_BYTES`` of ciphertext held at once. A
   fan-out that does not fit gets the ordinary grace.
5. Per-device order survives: when the writer commits any envelope for a device, it
   commits that device's held envelopes with it, and a batch is written in acceptance
   order, so a redelivery after a reconnect comes in the order of the first delivery.

The sender's ``SendResult`` thus waits for the slowest member's acknowledgement, at most
``HOLD_S`` plus one commit; the per-sender share (``server/fairness.py``) bounds how many
such sends one device can have outstanding.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection
from typing import Generic, Protocol, TypeVar

HOLD_S = 2.0
HOLD_BUDGET_BYTES = 64 * 1024 * 1024

DeviceKey = tuple[str, int]


class Held(Protocol):
    deadline: float
    acked: bool
    held: bool

    @property
    def device(self) -> DeviceKey: ...

    @property
    def size(self) -> int: ...


E = TypeVar("E", bound=Held)


class FanoutHold(Generic[E]):
    """The held envelopes of fan-outs, oldest first (one hold time: deadline order)."""

    __slots__ = ("_entries", "_timer", "_wake", "budget", "by_device", "bytes", "hold_s")

    def __init__(
        self,
        wake: Callable[[], None],
        hold_s: float = HOLD_S,
        budget: int = HOLD_BUDGET_BYTES,
    ) -> None:
        self._wake = wake
        self.hold_s = hold_s
        self.budget = budget
        self._entries: deque[E] = deque()
        self.bytes = 0
        # Unacknowledged held envelopes per device (rule 5 looks here first).
        self.by_device: dict[DeviceKey, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def admits(self, envelopes: int, size: int) -> bool:
        """Rule 1 and 4: a fan-out that fits in what may be held."""
        return envelopes >= 2 and self.hold_s > 0 and self.bytes + size <= self.budget

    def add(self, entry: E, now: float) -> None:
        entry.deadline = now + self.hold_s
        entry.held = True
        self._entries.append(entry)
        self.bytes += entry.size
        device = entry.device
        self.by_device[device] = self.by_device.get(device, 0) + 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.hold_s, self._fire)

    def release(self, entry: E) -> None:
        """The entry was acknowledged or is being committed: it no longer counts."""
        if not entry.held:
            return
        entry.held = False
        self.bytes -= entry.size
        device = entry.device
        n = self.by_device.get(device, 0) - 1
        if n <= 0:
            self.by_device.pop(device, None)
        else:
            self.by_device[device] = n

    def take(self, now: float, force: bool, devices: Collection[DeviceKey]) -> list[E]:
        """What the writer commits now: every held envelope past its deadline (or all, when
        forced), and any held for one of ``devices`` (rule 5). Acknowledged ones are dropped."""
        out: list[E] = []
        entries = self._entries
        while entries and (force or entries[0].deadline <= now or entries[0].acked):
            entry = entries.popleft()
            if not entry.acked:
                self.release(entry)
                out.append(entry)
        if devices and entries and any(d in self.by_device for d in devices):
            keep: deque[E] = deque()
            for entry in entries:
                if entry.acked:
                    continue
                if entry.device in devices:
                    self.release(entry)
                    out.append(entry)
                else:
                    keep.append(entry)
            self._entries = keep
        return out

    def rearm(self, now: float) -> None:
        """After a writer pass: wake it again when the oldest held envelope is due."""
        if self._timer is not None or not self._entries:
            return
        delay = max(0.0, self._entries[0].deadline - now)
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._wake()
