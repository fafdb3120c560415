"""Disappearing messages deleted on time by a long-running client (docs/GROUPS.md §5).

``Features.expire`` deletes what is due when it is called; a client that stays open (the
web app, ``baat sync --wait``) would otherwise keep an expired message until its next
receive. ``ExpiryTimer`` is one task that sleeps until the earliest ``expires_at`` in the
store, expires what is due, and plans the next wake-up. Storing a message that expires
sooner wakes it early (``due``), so it never polls.

Times come from ``Client.clock`` (milliseconds), the same clock that stamped
``expires_at``; the wait itself is ``sleep`` (``asyncio.sleep`` unless a test gives a
virtual one), raced against the wake-up event so that both a new message and ``stop``
interrupt it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baat.client.core import ClientCore


log = logging.getLogger("baat.client.expiry")

# The longest single wait, in seconds. asyncio measures waits on the monotonic clock, which
# on Linux stands still while the machine is suspended, whereas ``expires_at`` is wall
# time: after a resume the timer re-reads the clock within this bound instead of sleeping
# on through the time that passed.
MAX_NAP_S = 300.0

Sleep = Callable[[float], Coroutine[Any, Any, None]]


class ExpiryTimer:
    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self.sleep: Sleep = asyncio.sleep
        # The expiry time (client clock, ms) the task waits for; None when nothing expires.
        self.next_due: int | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task in the running event loop; does nothing when it runs already."""
        if not self.running:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="baat-expiry-timer")

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended."""
        task, self._task = self._task, None
        self.next_due = None
        if task is None:
            return
        task.cancel()
        # asyncio.wait, unlike awaiting the task, lets a cancellation of our caller through.
        await asyncio.wait((task,))
        if not task.cancelled() and task.exception() is not None:
            log.error("the expiry timer had failed", exc_info=task.exception())

    def due(self, expires_at: int) -> None:
        """A message expiring at ``expires_at`` was stored: plan again if it comes first."""
        if self.next_due is None or expires_at < self.next_due:
            self._wake.set()

    def wake(self) -> None:
        """Read the clock and the store again now (the clock was changed, the device
        resumed)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            # Cleared before reading the store: a message stored from here on wakes us.
            self._wake.clear()
            try:
                self.client.features.expire()
                self.next_due = self.client.features.next_expiry()
            except Exception:
                # A store error must not end the timer for the rest of the run.
                log.exception("expiring messages failed")
                self.next_due = None
                await self._nap(MAX_NAP_S)
                continue
            if self.next_due is None:
                await self._wake.wait()
            else:
                await self._nap(max(0, self.next_due - self.client.clock()) / 1000)

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` (at most ``MAX_NAP_S``) or until woken, whichever is first."""
        if self._wake.is_set():
            return
        sleeper = asyncio.create_task(self.sleep(min(seconds, MAX_NAP_S)))
        waker = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Both are ended and awaited, also when the task itself is cancelled, so that
            # no task is left pending.
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
