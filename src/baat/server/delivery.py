"""Envelope routing: push to online devices, group-commit the rest, forget what is acked.

The path (docs/ARCHITECTURE.md, "Delivery"):

1. ``accept_send`` checks each recipient device and either pushes the envelope to its live
   session or queues it for the writer.
2. The writer commits, in one transaction per pass (group commit), every envelope whose
   recipient is offline and every pushed envelope not acknowledged within ``ack_grace``
   seconds. An envelope acknowledged before its pass never touches the disk.
3. The sender's ``SendResult`` resolves once every envelope is acknowledged ("delivered")
   or committed ("stored").
4. An acknowledgement of a stored envelope becomes a batched ``DELETE``.

Ordering per recipient device holds because a device is "online" only after its queue has
been drained with nothing left unflushed for it, and a device that goes away has all of its
unacknowledged envelopes flushed before anything sent later.

The router's records and frames are in ``routed.py``; what it does with other nodes over
the bus (presence, forwards, catch-up, erasure and device changes everywhere) is the
``NodeLinks`` mixin in ``node_links.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from baat.proto import (
    ErrorCode,
    OutgoingEnvelope,
    QueueDrained,
    RecipientResult,
    SendResult,
    TokenBucket,
    encode,
)
from baat.server.bus import (
    Bus,
    BusUnavailable,
    Forward,
    LocalBus,
)
from baat.server.counters import COUNTS
from baat.server.errors import SendRefused
from baat.server.fairness import DeviceListLoader, SenderShares
from baat.server.fanout import HOLD_S, FanoutHold
from baat.server.guids import GuidPool
from baat.server.node_links import NodeLinks
from baat.server.quotas import QuotaExceeded, SendQuotas
from baat.server.routed import (
    DELIVERED,
    DUPLICATE,
    STORED,
    DeviceKey,
    Entry,
    Outlet,
    RouterStats,
    Waiter,
    address,
    check_devices,
    deliver_frame,
    entry_dest,
    entry_order,
    forward_of,
    remember_sent,
)
from baat.server.storage.base import QueuedEnvelope, StorageUnavailable
from baat.server.storage.sql import SqlStore

if TYPE_CHECKING:
    from baat.server.regions.links import Regions

log = logging.getLogger("baat.delivery")

ENVELOPE_TTL_MS = 30 * 86_400 * 1000
RECENT_SEND_TTL_MS = 24 * 3600 * 1000
RECENT_SEND_MAX = 1_000_000
# Acknowledged stored envelopes are deleted in batches: after at most this many seconds, or
# as soon as this many are waiting (one DELETE statement's worth, see SqlStore.write_batch).
DELETE_DELAY = 0.1
DELETE_BATCH = 500


@dataclass
class Router(NodeLinks):
    store: SqlStore
    ack_grace: float = 0.005
    envelopes_per_second: float = 5000.0
    envelope_burst: float = 10_000.0
    clock: Callable[[], float] = time.monotonic
    stats: RouterStats = field(default_factory=RouterStats)
    bus: Bus | None = None
    node_id: str = "node-1"
    # Other storage regions: envelopes for their accounts are handed to them (regions/).
    regions: Regions | None = None
    # Per-recipient quotas (baat.server.quotas), checked before anything is accepted.
    quotas: SendQuotas | None = None
    # How long online members of a fan-out may take to acknowledge before their envelopes
    # are committed (server/fanout.py); 0 gives fan-outs the ordinary ack_grace.
    fanout_hold: float = HOLD_S

    def __post_init__(self) -> None:
        if self.bus is None:
            self.bus = LocalBus(self.node_id)
        self.node_id = self.bus.node_id
        # Guids of stored envelopes already pushed to each device (by the drain, a forward
        # or a catch-up), so that none is pushed twice however they race. Bounded.
        self._sent: dict[DeviceKey, OrderedDict[bytes, None]] = {}
        # Forwards leave in the order their batches were committed (one task, one queue).
        self._forwards: asyncio.Queue[list[Forward]] = asyncio.Queue()
        self._held_forwards: dict[DeviceKey, list[Forward]] = {}
        self._missed_nodes: set[str] = set()
        # A forward whose target could not even be looked up: every node must catch up.
        self._missed_all = False
        self._background: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._forwarder: asyncio.Task[None] | None = None
        # Accounts the operator suspended (baat.server.operator_admin): refused at
        # authentication, read from the database once a second.
        self.suspended: frozenset[str] = frozenset()
        self.online: dict[DeviceKey, Outlet] = {}
        self.draining: dict[DeviceKey, Outlet] = {}
        self._inflight: dict[bytes, Entry] = {}
        self._pushed: deque[Entry] = deque()
        # What the next pass writes first, in acceptance order: a failed pass's batch, then
        # pushed entries past their grace, taken off the head of ``_pushed`` between writer
        # passes (``_trim_pushed``).
        self._due: deque[Entry] = deque()
        self._unpushed: list[Entry] = []
        self._unflushed: dict[DeviceKey, int] = {}
        self._deletes: dict[DeviceKey, list[bytes]] = {}
        self._delete_count = 0
        self._delete_timer: asyncio.TimerHandle | None = None
        self._recent: OrderedDict[tuple[str, int, str], int] = OrderedDict()
        self._recent_sweep_ms = 0
        self._devices: dict[str, frozenset[int]] = {}
        self._device_loader = DeviceListLoader(self.store.device_ids_of)
        self.shares = SenderShares()
        self._buckets: dict[str, TokenBucket] = {}
        self._wake = asyncio.Event()
        self._hold: FanoutHold[Entry] = FanoutHold(self._wake.set, self.fanout_hold)
        self._order = 0
        self._guids = GuidPool()
        # Devices gone with held envelopes: those (only) are committed in the next pass.
        self._leaving: set[DeviceKey] = set()
        self._force = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.storage_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        now_ms = int(time.time() * 1000)
        for a, d, m, x in sorted(await self.store.load_recent_sends(now_ms), key=lambda r: r[3]):
            self._recent[(a, d, m)] = x
        self._writer = asyncio.create_task(self._write_loop(), name="baat-writer")
        assert self.bus is not None
        await self.bus.start(self._on_bus, self._on_bus_recovered)
        self._refresher = asyncio.create_task(self._refresh_loop(), name="baat-presence")
        self._forwarder = asyncio.create_task(self._forward_loop(), name="baat-forwarder")

    async def stop(self) -> None:
        """Flush every accepted envelope and remember recent sends; loses nothing."""
        self._closing = True
        await self.flush_now()
        for task in (self._refresher, self._forwarder):
            if task is not None:
                task.cancel()
        bus = self.bus
        assert bus is not None
        for key in list(self.online) + list(self.draining):
            with contextlib.suppress(BusUnavailable):
                await bus.release(key)
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        assert self.bus is not None
        await self.bus.stop()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._hold.cancel()
        now_ms = int(time.time() * 1000)
        # Senders of other regions are remembered in memory only: their account ids are not
        # stored in this region beyond the envelopes in transit (docs/DEPLOY.md, "Regions").
        regions = self.regions
        keep = [
            (a, d, m, x)
            for (a, d, m), x in self._recent.items()
            if x >= now_ms and (not a or regions is None or regions.home(a) is None)
        ]
        # An account erased while the bus could not tell this node stays out of the table.
        # Sealed sends are remembered as ("", 0, message id): no sender to check.
        alive = await self.store.existing_accounts(a for a, _, _, _ in keep if a)
        await self.store.save_recent_sends(r for r in keep if not r[0] or r[0] in alive)

    def queue_depth(self) -> tuple[int, int]:
        """(accepted envelopes the writer will commit, pushed envelopes not yet
        acknowledged). Walks the pushed entries: called at scrape time, not per envelope."""
        pending = sum(1 for e in self._pushed if not e.acked) + sum(
            1 for e in self._due if not e.acked
        )
        return len(self._unpushed) + pending, len(self._inflight)

    def forget_devices(self, account_id: str) -> None:
        """Drop the cached device list of an account (a device was added or removed)."""
        self._devices.pop(account_id, None)

    # -- erasure (baat.privacy.erasure) ------------------------------------------------------

    async def close_account(self, account_id: str) -> int:
        """Before an account is erased: close its live sessions here, so nothing new comes
        from them, and write out what was accepted, so the erasure finds it in the database.
        Returns the number of sessions closed."""
        keys = [k for k in (*self.online, *self.draining) if k[0] == account_id]
        for key in keys:
            outlet = self.online.get(key) or self.draining.get(key)
            if outlet is not None:
                outlet.close_removed()
        await self.flush_now()
        return len(keys)

    async def close_suspended(self, account_id: str) -> int:
        """The operator suspended the account: close its sessions on this node with
        ``account_suspended`` and write out what they had sent. Returns the number closed."""
        keys = [k for k in (*self.online, *self.draining) if k[0] == account_id]
        for key in keys:
            outlet = self.online.get(key) or self.draining.get(key)
            if outlet is not None:
                outlet.close_suspended()
        await self.flush_now()
        return len(keys)

    def expire_recent(self, now_ms: int) -> int:
        """Forget remembered sends past their 24 hours (also done on every send)."""
        count = 0
        while self._recent and next(iter(self._recent.values())) < now_ms:
            self._recent.popitem(last=False)
            count += 1
        return count

    def learn_devices(self, account_id: str, ids: frozenset[int]) -> None:
        """The account's device ids, just read (at authentication): cache them."""
        if ids:
            self._devices[account_id] = ids

    def knows_devices(self, account_id: str) -> bool:
        """True when the account's device list is cached (a send to it needs no storage)."""
        return account_id in self._devices

    async def _device_ids(self, account_id: str) -> frozenset[int]:
        ids = self._devices.get(account_id)
        if ids is None:
            # Misses of one loop turn share one read (server/fairness.py, item 3).
            ids = await self._device_loader.load(account_id)
            if ids and account_id not in self._devices:
                self._devices[account_id] = ids
        return ids

    # -- sending -----------------------------------------------------------------------------

    async def accept_send(
        self,
        sender: DeviceKey,
        message_id: str,
        envelopes: list[OutgoingEnvelope],
        callback: Callable[[SendResult], None],
        *,
        rate_key: str | None = None,
    ) -> None:
        """Accept one send; ``callback`` receives its ``SendResult`` when final.

        A sealed send has the sender ``("", 0)`` and a ``rate_key`` (server/sealed.py): its
        rate and quotas are counted under that key, never under a sender.

        Raises:
            SendRefused: rate limit or shutdown; the send was not accepted at all.
        """
        now = self.clock()
        if not self._admit(sender, message_id, envelopes, callback, rate_key, now):
            return
        results, elsewhere, addressed = address(envelopes, self.regions)
        unknown: set[str] = set()
        for account_id in addressed:
            if account_id not in self._devices:
                # Every cold list of this send joins the same read (a group's members).
                self._device_loader.load(account_id)
        for account_id, ids in addressed.items():
            current = await self._device_ids(account_id)
            check_devices(sender, account_id, ids, current, unknown)
        for index, env in enumerate(envelopes):
            if env.recipient_account in unknown:
                results[index] = RecipientResult(
                    env.recipient_account, env.recipient_device, "unknown_account"
                )
        if self.quotas is not None:
            await self._check_quotas(rate_key or sender[0], envelopes, addressed, unknown)
        if elsewhere:
            # Local checks passed (nothing is accepted yet); the other regions accept theirs
            # before any local envelope is, so that a refusal there refuses the whole send.
            # A retry after a partial success is dropped there as a duplicate.
            assert self.regions is not None
            for region, indexes in sorted(elsewhere.items()):
                remote = await self.regions.forward_send(
                    region, sender, message_id, [envelopes[i] for i in indexes]
                )
                for i, result in zip(indexes, remote, strict=True):
                    results[i] = result
        self._accept(sender, message_id, envelopes, results, callback, now)

    def try_accept_send(
        self,
        sender: DeviceKey,
        message_id: str,
        envelopes: list[OutgoingEnvelope],
        callback: Callable[[SendResult], None],
    ) -> bool:
        """``accept_send`` without any await, for the socket path's hot case: every
        recipient's device list cached, every quota decidable from memory, no other region.
        Returns False, having done nothing at all, when the send needs storage or another
        region: then call ``accept_send``.

        Why a second entry: a send to online devices is most of a server's work, and
        ``accept_send`` makes, steps and finishes up to eight coroutines per send with the
        quota check's (docs/PERFORMANCE.md, "Issue 18 on a quiet machine").

        Raises:
            SendRefused: as ``accept_send``.
        """
        if self.regions is not None:
            return False
        devices = self._devices
        for env in envelopes:
            if env.recipient_account not in devices:
                return False
        quotas = self.quotas
        plan = None
        if quotas is not None:
            plan = quotas.plan(envelopes, self.online)
            if plan is None:
                return False
        now = self.clock()
        if not self._admit(sender, message_id, envelopes, callback, None, now):
            return True
        results, _, addressed = address(envelopes, self.regions)
        for account_id, ids in addressed.items():
            # Cached lists are never empty (``learn_devices``, ``_device_ids``).
            check_devices(sender, account_id, ids, devices[account_id], set())
        if quotas is not None and plan is not None:
            try:
                quotas.charge(sender[0], plan, self.online)
            except QuotaExceeded as exc:
                raise SendRefused(ErrorCode(exc.code), exc.message, exc.retry_after_ms) from exc
        self._accept(sender, message_id, envelopes, results, callback, now)
        return True

    def _admit(
        self,
        sender: DeviceKey,
        message_id: str,
        envelopes: list[OutgoingEnvelope],
        callback: Callable[[SendResult], None],
        rate_key: str | None,
        now: float,
    ) -> bool:
        """The checks before any recipient's: shutdown, storage, duplicate, sender rate.
        False when the send was a duplicate (answered here)."""
        if self._closing:
            raise SendRefused(ErrorCode.SHUTTING_DOWN, "server is shutting down")
        if self.storage_error is not None:
            # Accepted envelopes wait in memory for the database; new ones are refused so
            # that the sender retries instead of waiting without bound.
            raise SendRefused(
                ErrorCode.STORAGE_UNAVAILABLE,
                f"storage unavailable: {self.storage_error}",
                retry_after_ms=1000,
            )
        if (sender[0], sender[1], message_id) in self._recent:
            callback(
                SendResult(
                    message_id,
                    [
                        RecipientResult(e.recipient_account, e.recipient_device, DUPLICATE)
                        for e in envelopes
                    ],
                )
            )
            return False
        if rate_key is None:
            # A sealed send was rated by its access key and connection already.
            bucket = self._buckets.get(sender[0])
            if bucket is None:
                bucket = TokenBucket(self.envelopes_per_second, self.envelope_burst, now)
                self._buckets[sender[0]] = bucket
            wait = bucket.take(now, len(envelopes))
            if wait:
                raise SendRefused(
                    ErrorCode.RATE_LIMITED, "account send rate exceeded", int(wait * 1000) + 1
                )
        return True

    def _accept(
        self,
        sender: DeviceKey,
        message_id: str,
        envelopes: list[OutgoingEnvelope],
        results: list[RecipientResult | None],
        callback: Callable[[SendResult], None],
        now: float,
    ) -> None:
        """Every check passed: remember the send, push or queue each envelope."""
        stored_at = int(time.time() * 1000)
        self._remember((sender[0], sender[1], message_id), stored_at)
        waiter = Waiter(message_id, results, callback, sender, self.shares)
        if waiter.remaining == 0:
            waiter.fire()
            return
        count = waiter.remaining
        # One fan-out, one batch: one call for every guid, one hold decision (fanout.py).
        guids = self._guids.take(count)
        hold = count >= 2 and self._hold.admits(
            count, sum(len(envelopes[i].content) for i, r in enumerate(results) if r is None)
        )
        order = self._order
        self._order += count
        g = 0
        online = self.online
        for index, env in enumerate(envelopes):
            if results[index] is not None:
                continue
            queued = QueuedEnvelope(
                guids[g : g + 16],
                env.recipient_account,
                env.recipient_device,
                sender[0],
                sender[1],
                message_id,
                env.content,
                stored_at,
            )
            g += 16
            entry = Entry(queued, waiter, index, order=order)
            order += 1
            self.stats.accepted += 1
            dest = (env.recipient_account, env.recipient_device)
            outlet = online.get(dest)
            if outlet is not None:
                self._inflight[queued.guid] = entry
                self._unflushed[dest] = self._unflushed.get(dest, 0) + 1
                if hold:
                    self._hold.add(entry, now)
                    outlet.push(deliver_frame(queued))
                    continue
                entry.deadline = now + self.ack_grace
                self._trim_pushed(now)
                self._pushed.append(entry)
                outlet.push(deliver_frame(queued))
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(
                        self.ack_grace, self._on_timer
                    )
            else:
                self._unpushed.append(entry)
                self._unflushed[dest] = self._unflushed.get(dest, 0) + 1
                self._wake.set()

    async def _check_quotas(
        self,
        sender_account: str,
        envelopes: list[OutgoingEnvelope],
        addressed: dict[str, set[int]],
        unknown: set[str],
    ) -> None:
        assert self.quotas is not None
        local = [
            e
            for e in envelopes
            if e.recipient_account in addressed and e.recipient_account not in unknown
        ]
        try:
            await self.quotas.check(sender_account, local, self.online)
        except QuotaExceeded as exc:
            raise SendRefused(ErrorCode(exc.code), exc.message, exc.retry_after_ms) from exc
        except StorageUnavailable as exc:
            raise SendRefused(
                ErrorCode.STORAGE_UNAVAILABLE, f"storage unavailable: {exc}", 1000
            ) from exc

    def _remember(self, key: tuple[str, int, str], now_ms: int) -> None:
        recent = self._recent
        recent[key] = now_ms + RECENT_SEND_TTL_MS
        if len(recent) <= RECENT_SEND_MAX and now_ms < self._recent_sweep_ms:
            return  # expired entries are swept once a second, not on every send
        self._recent_sweep_ms = now_ms + 1000
        # Insertion order is expiry order: forget what is past its TTL, and bound the rest.
        while recent and (len(recent) > RECENT_SEND_MAX or next(iter(recent.values())) < now_ms):
            recent.popitem(last=False)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake.set()

    def _trim_pushed(self, now: float) -> None:
        """Drop acknowledged entries off the head of ``_pushed`` and move due ones to
        ``_due``, without waiting for the writer.

        Why: while a writer pass waits for the database, sends keep arriving; before this,
        every envelope pushed meanwhile stayed in ``_pushed`` (with its content, waiter and
        callback) until the next pass, tens of thousands under load, which made every full
        garbage collection walk them (pauses of 175 ms, the 500-user p99 in
        docs/PERFORMANCE.md). Acknowledged entries also leave the head of ``_due``.
        Amortised O(1): each entry leaves each head once.
        """
        due = self._due
        while due and due[0].acked:
            due.popleft()
        pushed = self._pushed
        while pushed:
            head = pushed[0]
            if head.acked:
                pushed.popleft()
            elif head.deadline <= now:
                due.append(pushed.popleft())
                self._wake.set()
            else:
                return

    # -- acknowledgements --------------------------------------------------------------------

    def ack(self, device: DeviceKey, guids: list[bytes]) -> None:
        """The device stored these envelopes. Foreign or unknown guids are ignored."""
        for guid in guids:
            entry = self._inflight.get(guid)
            if entry is not None:
                env = entry.env
                if (env.recipient_account, env.recipient_device) != device:
                    continue
                del self._inflight[guid]
                entry.acked = True
                if entry.held:
                    self._hold.release(entry)
                if not entry.stored and not entry.writing:
                    self._settled_unflushed(device)
                    self.stats.delivered_unstored += 1
                    entry.waiter.settle(entry.index, entry.result(DELIVERED))
                    continue
                if entry.writing:
                    # The writer deletes it after its commit.
                    continue
            self._queue_delete(device, guid)

    def _queue_delete(self, device: DeviceKey, guid: bytes) -> None:
        self._deletes.setdefault(device, []).append(guid)
        # Counted as unflushed for its device until committed: a reconnecting device has
        # its deletes committed before its queue is drained (``attach``), and a leaving
        # one forces them out (``detach``), so an acknowledged envelope is not sent again.
        self._unflushed[device] = self._unflushed.get(device, 0) + 1
        self._delete_count += 1
        # Nobody waits for a delete: gather them for DELETE_DELAY (or DELETE_BATCH of
        # them) so that acknowledgements trickling in one by one, as from a group's
        # members, cost one transaction per batch rather than one each.
        if self._delete_count >= DELETE_BATCH:
            self._wake.set()
        elif self._delete_timer is None:
            self._delete_timer = asyncio.get_running_loop().call_later(
                DELETE_DELAY, self._on_delete_timer
            )

    def _on_delete_timer(self) -> None:
        self._delete_timer = None
        self._wake.set()

    def _settled_deletes(self, deletes: dict[DeviceKey, list[bytes]]) -> None:
        for device, guids in deletes.items():
            n = self._unflushed.get(device, 0) - len(guids)
            if n <= 0:
                self._unflushed.pop(device, None)
            else:
                self._unflushed[device] = n

    def _settled_unflushed(self, device: DeviceKey) -> None:
        n = self._unflushed.get(device, 0) - 1
        if n <= 0:
            self._unflushed.pop(device, None)
        else:
            self._unflushed[device] = n

    # -- the writer (group commit) -------------------------------------------------------------

    async def flush_now(self) -> None:
        """Commit everything accepted so far, pushed or not, and wait for it."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(fut)
        self._force = True
        self._wake.set()
        if self._writer is None or self._writer.done():
            await self._write_pass()
            return
        await fut

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - logged, retried on the next wake
                log.exception("writer pass failed")
                await asyncio.sleep(0.1)
                self._wake.set()

    async def _write_pass(self) -> None:
        waiters, self._flush_waiters = self._flush_waiters, []
        force, self._force = self._force, False
        now = self.clock()
        # Pushed entries first: they were accepted before any unpushed entry for the same
        # device (see the module docstring), so the commit keeps per-device order; ``_due``
        # came off the head of ``_pushed``, so it goes first.
        batch = [e for e in self._due if not e.acked]
        self._due = deque()
        while self._pushed and (force or self._pushed[0].deadline <= now):
            entry = self._pushed.popleft()
            if not entry.acked:
                batch.append(entry)
        batch.extend(self._unpushed)
        self._unpushed = []
        # Held fan-out envelopes that are due, and any held for a device in this batch, so
        # that each device's envelopes are committed in the order they were pushed.
        hold = self._hold
        leaving, self._leaving = self._leaving, set()
        devices = ({e.device for e in batch} | leaving) if hold.by_device else ()
        # A device leaving forces its own held envelopes out, not every fan-out's; only
        # flush_now (shutdown, erasure, a reconnect's drain) takes the whole hold.
        held = hold.take(now, bool(waiters), devices) if len(hold) else []
        if held:
            batch.extend(held)
            batch.sort(key=entry_order)
        deletes, self._deletes = self._deletes, {}
        self._delete_count = 0
        if self._delete_timer is not None:
            self._delete_timer.cancel()
            self._delete_timer = None
        for entry in batch:
            entry.writing = True
        try:
            acknowledged = [(d[0], d[1], g) for d, guids in deletes.items() for g in guids]
            started = time.perf_counter()
            seqs, deleted = await self.store.write_batch([e.env for e in batch], acknowledged)
            COUNTS.observe_pass(time.perf_counter() - started)
            self.stats.deleted += deleted
            self._settled_deletes(deletes)
            if batch:
                self.stats.flushes += 1
            self.storage_error = None
        except Exception as exc:
            # Keep everything in memory and retry; senders wait (their result is pending).
            # Any failure, not only a recognised outage: an accepted envelope is never
            # dropped from memory before its commit.
            self.storage_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.stats.write_errors += 1
            if isinstance(exc, StorageUnavailable):
                log.warning("storage unavailable, will retry: %s", exc)
            else:
                log.exception("write failed, will retry")
            restored: list[Entry] = []
            for entry in batch:
                entry.writing = False
                if entry.acked:
                    # Acknowledged while the commit was out: delivered, nothing to write.
                    self._settled_unflushed(entry.device)
                    self.stats.delivered_unstored += 1
                    entry.waiter.settle(entry.index, entry.result(DELIVERED))
                else:
                    restored.append(entry)
            # First in the next pass, ahead of everything accepted since: per-device order.
            restored.extend(self._due)
            self._due = deque(restored)
            for device, guids in deletes.items():
                # Still counted in ``_unflushed``: only the list is restored.
                self._deletes.setdefault(device, []).extend(guids)
                self._delete_count += len(guids)
            self._flush_waiters = waiters + self._flush_waiters
            self._force = self._force or force
            await asyncio.sleep(0.2)
            self._wake.set()
            return
        late_deletes: dict[DeviceKey, list[bytes]] = {}
        remote: list[Forward] = []
        for entry in batch:
            entry.writing = False
            entry.stored = True
            env = entry.env
            device = (env.recipient_account, env.recipient_device)
            self._settled_unflushed(device)
            self.stats.stored += 1
            seq = seqs.get(env.guid)
            if seq is None:
                # The same (sender device, message id) was already stored for this device,
                # e.g. a retry that reached another node: it is delivered once, from there.
                entry.waiter.settle(entry.index, entry.result(DUPLICATE))
                continue
            if device not in self.online and device not in self.draining and not entry.acked:
                remote.append(forward_of(env, seq))
            if device not in self.online:
                # Stored and its device gone: the next drain re-sends it from the database.
                self._inflight.pop(env.guid, None)
            if entry.acked:
                late_deletes.setdefault(device, []).append(env.guid)
            entry.waiter.settle(entry.index, entry.result(STORED))
        for device, guids in late_deletes.items():
            for guid in guids:
                self._queue_delete(device, guid)
        if remote:
            self._forwards.put_nowait(remote)
        if self._pushed and self._timer is None:
            delay = max(0.0, self._pushed[0].deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
        self._hold.rearm(self.clock())
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- presence ------------------------------------------------------------------------------

    async def attach(self, outlet: Outlet) -> int:
        """Drain the device's queue to it in order, then mark it online.

        Returns the number of queued envelopes sent.
        """
        key = outlet.key
        old = self.online.pop(key, None) or self.draining.pop(key, None)
        if old is not None and old is not outlet:
            old.close_superseded()
        self.draining[key] = outlet
        self._held_forwards[key] = []
        await self._claim(key)
        cursor = 0
        count = 0
        while True:
            if self._unflushed.get(key):
                await self.flush_now()
            rows = await self.store.pending(key[0], key[1], after_seq=cursor)
            if self.draining.get(key) is not outlet:
                self._held_forwards.pop(key, None)
                return count
            sent = self._sent.setdefault(key, OrderedDict())
            for row in rows:
                outlet.push(deliver_frame(row))
                remember_sent(sent, row.guid)
                cursor = row.seq
                count += 1
            if rows:
                await outlet.wait_writable()
                continue
            if self._unflushed.get(key):
                continue
            # No await between the last check and this line: nothing can slip in between.
            del self.draining[key]
            self.online[key] = outlet
            for fwd in sorted(self._held_forwards.pop(key, []), key=lambda f: f.seq):
                self._push_forward(key, outlet, fwd)
            outlet.push(encode(QueueDrained(count=count)))
            return count

    def detach(self, outlet: Outlet) -> None:
        key = outlet.key
        gone = False
        if self.online.get(key) is outlet:
            del self.online[key]
            gone = True
        if self.draining.get(key) is outlet:
            del self.draining[key]
            self._held_forwards.pop(key, None)
            gone = True
        if gone:
            self._sent.pop(key, None)
            self.shares.forget(key)
            self._spawn(self._release(key))
        for guid in [g for g, e in self._inflight.items() if e.stored and entry_dest(e) == key]:
            del self._inflight[guid]
        if self._unflushed.get(key):
            # Its unacknowledged envelopes must reach the disk before anything sent later.
            self._force = True
            self._leaving.add(key)
            self._wake.set()

    async def expire(self, now_ms: int | None = None) -> int:
        """Delete envelopes undelivered for 30 days."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return await self.store.expire_envelopes(now_ms - ENVELOPE_TTL_MS)
