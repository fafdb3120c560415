"""The bus between server nodes: presence (which node holds a device) and node-to-node
delivery. Two implementations share one test suite: ``LocalBus`` (in-process, the default
for a single node and for tests) and ``RedisBus`` (several processes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from baat.server.bus.messages import NodeMessage

DeviceKey = tuple[str, int]
Handler = Callable[[list[NodeMessage]], Coroutine[Any, Any, None]]
# Called when the bus comes back after an outage: nodes re-announce presence and drain.
RecoveryHandler = Callable[[], Awaitable[None]]

PRESENCE_TTL_S = 30
PRESENCE_REFRESH_S = 10


class BusUnavailable(Exception):
    """The bus cannot be reached right now."""


class Bus(Protocol):
    node_id: str

    @property
    def healthy(self) -> bool: ...

    async def start(self, on_messages: Handler, on_recovered: RecoveryHandler) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, device: DeviceKey) -> str | None:
        """Record that this node holds ``device``; return the node that held it before."""
        ...

    async def release(self, device: DeviceKey) -> None:
        """Forget the presence, if it is still this node's."""
        ...

    async def locate(self, devices: list[DeviceKey]) -> dict[DeviceKey, str]:
        """The nodes holding those devices (absent: nowhere, or unknown)."""
        ...

    async def refresh(self, devices: list[DeviceKey]) -> None:
        """Extend the expiry of this node's presence records."""
        ...

    async def publish(self, node_id: str, messages: list[NodeMessage]) -> None:
        """Send messages to one node; best effort (see ``messages``)."""
        ...

    async def broadcast(self, messages: list[NodeMessage]) -> None:
        """Send messages to every other node; best effort."""
        ...

    async def forget(self, account_id: str) -> int:
        """Delete every presence record of the account's devices, whichever node wrote
        it (erasure); returns how many there were.

        Raises:
            BusUnavailable: the bus cannot be reached.
        """
        ...
