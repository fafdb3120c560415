"""The in-process bus: nodes in one process share a ``LocalHub``.

A single server uses it with a hub of its own (every device is local, so it never sends
anything); tests run several routers against one hub and one database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from baat.server.bus.base import DeviceKey, Handler, RecoveryHandler
from baat.server.bus.messages import NodeMessage, decode_batch, encode_batch


@dataclass
class LocalHub:
    presence: dict[DeviceKey, str] = field(default_factory=dict)
    nodes: dict[str, Handler] = field(default_factory=dict)
    up: bool = True


class LocalBus:
    def __init__(self, node_id: str, hub: LocalHub | None = None) -> None:
        self.node_id = node_id
        self.hub = hub or LocalHub()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def healthy(self) -> bool:
        return self.hub.up

    async def start(self, on_messages: Handler, on_recovered: RecoveryHandler) -> None:
        self.hub.nodes[self.node_id] = on_messages

    async def stop(self) -> None:
        self.hub.nodes.pop(self.node_id, None)
        for task in list(self._tasks):
            await task

    async def claim(self, device: DeviceKey) -> str | None:
        previous = self.hub.presence.get(device)
        self.hub.presence[device] = self.node_id
        return previous

    async def release(self, device: DeviceKey) -> None:
        if self.hub.presence.get(device) == self.node_id:
            del self.hub.presence[device]

    async def locate(self, devices: list[DeviceKey]) -> dict[DeviceKey, str]:
        found = {}
        for d in devices:
            node = self.hub.presence.get(d)
            if node is not None:
                found[d] = node
        return found

    async def refresh(self, devices: list[DeviceKey]) -> None:
        return None

    async def forget(self, account_id: str) -> int:
        keys = [d for d in self.hub.presence if d[0] == account_id]
        for d in keys:
            del self.hub.presence[d]
        return len(keys)

    async def broadcast(self, messages: list[NodeMessage]) -> None:
        for node in list(self.hub.nodes):
            if node != self.node_id:
                await self.publish(node, messages)

    async def publish(self, node_id: str, messages: list[NodeMessage]) -> None:
        handler = self.hub.nodes.get(node_id)
        if handler is None or not self.hub.up:
            return
        # Through the codec, as over Redis, so both buses carry exactly the same bytes.
        batch = decode_batch(encode_batch(messages))
        task = asyncio.create_task(handler(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
