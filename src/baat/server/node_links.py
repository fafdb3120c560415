"""The router's side of several nodes: presence on the bus, forwards to the node holding a
device, catching up after the bus was down, and what every node must forget or close when
an account is erased or a device changes (docs/ARCHITECTURE.md, "Several nodes").

``NodeLinks`` is mixed into ``Router`` (``delivery.py``); it declares what of the router it
uses, so that each file stays small enough to read in one sitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from baat.server.bus import (
    PRESENCE_REFRESH_S,
    AccountErased,
    Bus,
    BusUnavailable,
    CatchUp,
    DevicesChanged,
    Forward,
    Kick,
    NodeMessage,
)
from baat.server.routed import (
    DeviceKey,
    Entry,
    Outlet,
    RouterStats,
    deliver_frame,
    drop_account,
    forward_of,
    remember_sent,
)
from baat.server.storage.sql import SqlStore

log = logging.getLogger("baat.delivery")


class NodeLinks:
    """Mixed into ``Router``: the methods that talk to the other nodes over the bus."""

    # The router's state these methods use (``Router.__post_init__`` makes it).
    bus: Bus | None
    node_id: str
    store: SqlStore
    stats: RouterStats
    online: dict[DeviceKey, Outlet]
    draining: dict[DeviceKey, Outlet]
    _sent: dict[DeviceKey, OrderedDict[bytes, None]]
    _forwards: asyncio.Queue[list[Forward]]
    _held_forwards: dict[DeviceKey, list[Forward]]
    _missed_nodes: set[str]
    _missed_all: bool
    _background: set[asyncio.Task[None]]
    _inflight: dict[bytes, Entry]
    _recent: OrderedDict[tuple[str, int, str], int]
    _devices: dict[str, frozenset[int]]
    _buckets: dict[str, Any]

    def forget_devices(self, account_id: str) -> None:
        raise NotImplementedError  # the router's

    def forget_account(self, account_id: str) -> int:
        """After an account is erased: forget everything this node holds in memory about it
        (recent sends, which ``stop`` would otherwise write to ``recent_sends``, the device
        list, the rate bucket, pushed guids). Returns the number of items forgotten."""
        gone = [k for k in self._recent if k[0] == account_id]
        for key in gone:
            del self._recent[key]
        count = len(gone)
        count += self._devices.pop(account_id, None) is not None
        count += self._buckets.pop(account_id, None) is not None
        count += drop_account(self._sent, account_id)
        count += drop_account(self._held_forwards, account_id)
        return count

    async def erase_account(self, account_id: str) -> int:
        """``forget_account`` here and on every other node (over the bus).

        Raises:
            BusUnavailable: the other nodes could not be told.
        """
        count = self.forget_account(account_id)
        assert self.bus is not None
        await self.bus.broadcast([AccountErased(account_id)])
        return count

    async def devices_changed(self, account_id: str, removed_device: int = 0) -> None:
        """A device was added or removed: every node forgets the cached list, and the
        removed device stops receiving at once wherever it is connected."""
        self._apply_devices_changed(account_id, removed_device)
        assert self.bus is not None
        try:
            await self.bus.broadcast([DevicesChanged(account_id, removed_device)])
        except BusUnavailable as exc:
            self.stats.bus_errors += 1
            log.warning("could not tell other nodes about a device change: %s", exc)

    def _apply_devices_changed(self, account_id: str, removed_device: int) -> None:
        self.forget_devices(account_id)
        if removed_device:
            key = (account_id, removed_device)
            outlet = self.online.get(key) or self.draining.get(key)
            if outlet is not None:
                outlet.close_removed()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _claim(self, key: DeviceKey) -> None:
        assert self.bus is not None
        try:
            previous = await self.bus.claim(key)
        except BusUnavailable as exc:
            self.stats.bus_errors += 1
            log.warning("presence not recorded (bus down): %s", exc)
            return
        if previous is not None and previous != self.node_id:
            await self._publish(previous, [Kick(key[0], key[1], self.node_id)])

    async def _release(self, key: DeviceKey) -> None:
        assert self.bus is not None
        if key in self.online or key in self.draining:
            return  # reconnected meanwhile
        with contextlib.suppress(BusUnavailable):
            await self.bus.release(key)

    async def _publish(self, node: str, messages: list[NodeMessage]) -> None:
        assert self.bus is not None
        try:
            await self.bus.publish(node, messages)
        except BusUnavailable as exc:
            self.stats.bus_errors += 1
            # The envelopes are in the database; the node catches up when the bus is back.
            log.warning("could not reach node %s: %s", node, exc)
            self._missed_nodes.add(node)

    async def _forward_loop(self) -> None:
        while True:
            batch = await self._forwards.get()
            # Everything committed while the last round was out goes in one round: one
            # presence lookup and one publish per node, still in commit order.
            while not self._forwards.empty():
                batch.extend(self._forwards.get_nowait())
            try:
                await self._forward_remote(batch)
            except Exception:  # pragma: no cover - logged; the database still has them
                log.exception("forwarding failed")

    async def _forward_remote(self, forwards: list[Forward]) -> None:
        """Tell the nodes holding these devices that stored envelopes wait for them."""
        assert self.bus is not None
        devices = list({(f.recipient_account, f.recipient_device) for f in forwards})
        try:
            where = await self.bus.locate(devices)
        except BusUnavailable as exc:
            self.stats.bus_errors += 1
            log.warning("could not locate devices (bus down): %s", exc)
            self._missed_all = True
            return
        by_node: dict[str, list[NodeMessage]] = {}
        for f in forwards:
            node = where.get((f.recipient_account, f.recipient_device))
            if node is not None and node != self.node_id:
                by_node.setdefault(node, []).append(f)
        # Nodes are independent; within one node the batch keeps its order.
        await asyncio.gather(*(self._publish(n, m) for n, m in by_node.items()))

    async def _on_bus(self, messages: list[NodeMessage]) -> None:
        for msg in messages:
            if isinstance(msg, Forward):
                key = (msg.recipient_account, msg.recipient_device)
                outlet = self.online.get(key)
                if outlet is not None:
                    self._push_forward(key, outlet, msg)
                elif key in self.draining:
                    self._held_forwards.setdefault(key, []).append(msg)
            elif isinstance(msg, DevicesChanged):
                self._apply_devices_changed(msg.account_id, msg.removed_device)
            elif isinstance(msg, AccountErased):
                for key in [k for k in (*self.online, *self.draining) if k[0] == msg.account_id]:
                    outlet = self.online.get(key) or self.draining.get(key)
                    if outlet is not None:
                        outlet.close_removed()
                self.forget_account(msg.account_id)
            elif isinstance(msg, CatchUp) and msg.by_node != self.node_id:
                self._spawn(self.catch_up())
            elif isinstance(msg, Kick) and msg.by_node != self.node_id:
                key = (msg.account_id, msg.device_id)
                outlet = self.online.get(key) or self.draining.get(key)
                if outlet is not None:
                    outlet.close_superseded()

    def _push_forward(self, key: DeviceKey, outlet: Outlet, fwd: Forward) -> None:
        sent = self._sent.setdefault(key, OrderedDict())
        if fwd.guid in sent:
            return  # the drain or a catch-up already sent it
        remember_sent(sent, fwd.guid)
        outlet.push(deliver_frame(fwd))

    async def _on_bus_recovered(self) -> None:
        """After a bus outage: re-announce presence, catch up on what was not forwarded."""
        assert self.bus is not None
        # Redis may have restarted empty: without our presence records nobody forwards to
        # us, so insist (a fresh Redis can refuse the first commands on old connections).
        for attempt in range(10):
            try:
                await self.bus.refresh(list(self.online) + list(self.draining))
                break
            except BusUnavailable as exc:
                self.stats.bus_errors += 1
                log.warning("presence refresh failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(0.1 * (attempt + 1))
        missed, self._missed_nodes = self._missed_nodes, set()
        await self._announce_missed(missed)
        await self.catch_up()

    async def _announce_missed(self, missed: set[str]) -> None:
        assert self.bus is not None
        if self._missed_all:
            try:
                await self.bus.broadcast([CatchUp(self.node_id)])
                self._missed_all = False
            except BusUnavailable:
                return
        for node in missed:
            await self._publish(node, [CatchUp(self.node_id)])

    async def catch_up(self) -> None:
        """Send each online device what the database holds beyond its cursor."""
        sent = 0
        for key, outlet in list(self.online.items()):
            # From the start of the queue: only unacknowledged rows are there, and a row
            # committed late may carry a lower seq than one already forwarded.
            rows = await self.store.pending(key[0], key[1])
            for row in rows:
                if row.guid in self._inflight or self.online.get(key) is not outlet:
                    continue
                self._push_forward(key, outlet, forward_of(row, row.seq))
                sent += 1
        log.info("caught up %d envelopes for %d devices", sent, len(self.online))

    async def _refresh_loop(self) -> None:
        assert self.bus is not None
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_S)
            try:
                await self.bus.refresh(list(self.online) + list(self.draining))
            except BusUnavailable as exc:
                self.stats.bus_errors += 1
                log.warning("presence refresh failed: %s", exc)
                continue
            if self._missed_nodes or self._missed_all:
                missed, self._missed_nodes = self._missed_nodes, set()
                await self._announce_missed(missed)
