"""Quotas: what one account may make the server hold or carry (docs/PROTOCOL.md, "Quotas").

Checked when a send is accepted (``Router.accept_send``, before anything is queued), and
when a blob upload is created:

1. Envelopes a second from one account to one device (``recipient_rate_limited``): a token
   bucket per (sending account, recipient device), so that one sender cannot flood one
   person while the account-wide rate still allows it.
2. Envelopes and bytes waiting for one device that is not connected to this node
   (``recipient_queue_full``): the queue's size as last read from the database (in one
   query for all devices of a send) plus what this node accepted since. That sum can only
   be too high (acknowledgements shrink the queue), except for what other nodes added, so
   it is read again only every ``USAGE_TTL_S`` per device, and before a refusal if the last
   read is older than ``RECHECK_S``. A device connected here drains as fast as it
   acknowledges, so it is not checked.
3. Blobs and blob bytes one account has stored at once (``blob_quota_exceeded``).

Every refusal refuses the whole send, nothing of it is queued, and the code is retryable:
the sender keeps the message in its outbox and sends it again later, once the queue has
drained or the rate allows. Other senders, and this sender's other recipients in other
sends, are not affected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from baat.proto import ErrorCode, OutgoingEnvelope
from baat.server.storage.base import StorageUnavailable
from baat.server.storage.schema import blobs, envelopes

DeviceKey = tuple[str, int]

USAGE_TTL_S = 10.0
RECHECK_S = 1.0
# How long a sender refused for a full queue is asked to wait before trying again.
QUEUE_FULL_RETRY_MS = 30_000
# Memory bounds: caches and buckets are dropped oldest first past these sizes.
MAX_USAGE_ENTRIES = 100_000
MAX_BUCKETS = 200_000


class QuotaExceeded(Exception):
    """A quota refused a send or an upload; ``code`` is stable, ``retry_after_ms`` a hint."""

    def __init__(self, code: ErrorCode | str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


async def queue_usage(
    engine: AsyncEngine, devices: Sequence[DeviceKey]
) -> dict[DeviceKey, tuple[int, int]]:
    """(envelopes, ciphertext bytes) queued for each of ``devices``, in one query.

    Raises:
        StorageUnavailable: the database cannot be reached.
    """
    if not devices:
        return {}
    e = envelopes
    query = (
        select(
            e.c.recipient_account,
            e.c.recipient_device,
            func.count(),
            func.coalesce(func.sum(func.length(e.c.content)), 0),
        )
        .where(tuple_(e.c.recipient_account, e.c.recipient_device).in_(list(devices)))
        .group_by(e.c.recipient_account, e.c.recipient_device)
    )
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except (sa_exc.DBAPIError, OSError) as exc:
        raise StorageUnavailable(str(exc).splitlines()[0]) from exc
    found = {(str(r[0]), int(r[1])): (int(r[2]), int(r[3])) for r in rows}
    return {d: found.get(d, (0, 0)) for d in devices}


async def blob_usage(engine: AsyncEngine, account_id: str) -> tuple[int, int]:
    """(blobs, declared bytes) that ``account_id`` has stored now.

    Raises:
        StorageUnavailable: the database cannot be reached.
    """
    query = select(func.count(), func.coalesce(func.sum(blobs.c.length), 0)).where(
        blobs.c.uploader_account == account_id
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(query)).one()
    except (sa_exc.DBAPIError, OSError) as exc:
        raise StorageUnavailable(str(exc).splitlines()[0]) from exc
    return int(row[0]), int(row[1])


async def check_blob_quota(
    engine: AsyncEngine, account_id: str, length: int, max_blobs: int, max_bytes: int
) -> None:
    """Raises ``QuotaExceeded`` (``blob_quota_exceeded``) if one more blob of ``length``
    bytes would take ``account_id`` past its quota, ``StorageUnavailable`` on an outage."""
    count, used = await blob_usage(engine, account_id)
    if count + 1 > max_blobs:
        raise QuotaExceeded(
            "blob_quota_exceeded",
            f"an account may have {max_blobs} attachments stored at once; they are deleted "
            "once fetched or after 30 days",
        )
    if used + length > max_bytes:
        raise QuotaExceeded(
            "blob_quota_exceeded",
            f"an account may have {max_bytes} attachment bytes stored at once "
            f"({used} stored now); they are deleted once fetched or after 30 days",
        )


@dataclass
class SendQuotas:
    """Rules 1 and 2 of the module docstring, for one node."""

    engine: AsyncEngine
    max_queued_envelopes: int = 10_000
    max_queued_bytes: int = 256 * 1024 * 1024
    per_second: float = 50.0
    clock: Callable[[], float] = time.monotonic
    # device -> [envelopes, bytes, read at]
    _usage: OrderedDict[DeviceKey, list[float]] = field(default_factory=OrderedDict)
    # (sender account, recipient device) -> [tokens, last refill]
    _buckets: OrderedDict[tuple[str, str, int], list[float]] = field(default_factory=OrderedDict)

    @property
    def burst(self) -> float:
        return self.per_second * 10

    async def _read(self, devices: list[DeviceKey], now: float) -> dict[DeviceKey, list[float]]:
        fresh: dict[DeviceKey, list[float]] = {}
        if devices:
            for device, (count, size) in (await queue_usage(self.engine, devices)).items():
                fresh[device] = self._usage[device] = [count, size, now]
                self._usage.move_to_end(device)
        return fresh

    def _fits(self, usage: list[float], adding: tuple[int, int]) -> bool:
        return (
            usage[0] + adding[0] <= self.max_queued_envelopes
            and usage[1] + adding[1] <= self.max_queued_bytes
        )

    def answers_from_memory(
        self, envelopes: Sequence[OutgoingEnvelope], online: Container[DeviceKey]
    ) -> bool:
        """True when ``check`` for these envelopes needs no database read: every offline
        recipient device's queue size is cached, fresh, and leaves room. The socket path
        runs such a send without a task (docs/ARCHITECTURE.md, "The socket path"), where
        the database must not be touched."""
        return self.plan(envelopes, online) is not None

    def plan(
        self, envelopes: Sequence[OutgoingEnvelope], online: Container[DeviceKey]
    ) -> dict[DeviceKey, tuple[int, int]] | None:
        """What a send adds per recipient device, when ``charge`` can decide it from
        memory; None when a queue's size must be read first (then use ``check``)."""
        now = self.clock()
        added = _tally(envelopes)
        for device, adding in added.items():
            if device in online:
                continue
            usage = self._usage.get(device)
            if usage is None or now - usage[2] > USAGE_TTL_S or not self._fits(usage, adding):
                return None
        return added

    def charge(
        self,
        sender_account: str,
        added: dict[DeviceKey, tuple[int, int]],
        online: Container[DeviceKey],
    ) -> None:
        """``check`` for a ``plan`` made in the same loop turn (no await: the socket path's
        send without a task).

        Raises:
            QuotaExceeded: ``recipient_rate_limited``.
        """
        now = self.clock()
        refills = self._rate(sender_account, added, now)
        usage = self._usage
        for device, (n, size) in added.items():
            if device not in online:
                current = usage[device]  # ``plan`` found it cached, fresh and with room
                current[0] += n
                current[1] += size
        self._refill(refills, now)

    def _rate(
        self, sender_account: str, added: dict[DeviceKey, tuple[int, int]], now: float
    ) -> list[tuple[tuple[str, str, int], float]]:
        """Rule 2: the tokens each bucket keeps after this send, or a refusal."""
        wait = 0.0
        refills: list[tuple[tuple[str, str, int], float]] = []
        burst, per_second = self.burst, self.per_second
        for (account, device_id), (n, _) in added.items():
            bucket_key = (sender_account, account, device_id)
            tokens, last = self._buckets.get(bucket_key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - last) * per_second)
            if tokens < n:
                wait = max(wait, (n - tokens) / per_second)
            refills.append((bucket_key, tokens - n))
        if wait:
            raise QuotaExceeded(
                ErrorCode.RECIPIENT_RATE_LIMITED,
                f"more than {per_second:g} envelopes a second to one device",
                int(wait * 1000) + 1,
            )
        return refills

    def _refill(self, refills: list[tuple[tuple[str, str, int], float]], now: float) -> None:
        buckets = self._buckets
        for bucket_key, tokens in refills:
            buckets[bucket_key] = [tokens, now]
            buckets.move_to_end(bucket_key)
        while len(self._usage) > MAX_USAGE_ENTRIES:
            self._usage.popitem(last=False)
        while len(buckets) > MAX_BUCKETS:
            buckets.popitem(last=False)

    async def check(
        self,
        sender_account: str,
        envelopes: Sequence[OutgoingEnvelope],
        online: Container[DeviceKey],
    ) -> None:
        """Charge a send's envelopes for devices of this region to the quotas, or refuse
        the whole send without charging anything.

        Raises:
            QuotaExceeded: ``recipient_rate_limited`` or ``recipient_queue_full``.
            StorageUnavailable: the queue's size could not be read.
        """
        now = self.clock()
        added = _tally(envelopes)
        if not added:
            return
        refills = self._rate(sender_account, added, now)
        offline = [d for d in added if d not in online]
        # Local references: another send may evict entries from the cache while this one
        # waits for the database.
        usage = {d: self._usage.get(d) for d in offline}
        usage.update(
            await self._read(
                [d for d, u in usage.items() if u is None or now - u[2] > USAGE_TTL_S], now
            )
        )
        # Only a refusal needs the queue's size as it is now: acknowledgements since the
        # last read may have made room.
        usage.update(
            await self._read(
                [
                    d
                    for d, u in usage.items()
                    if u is not None and not self._fits(u, added[d]) and now - u[2] > RECHECK_S
                ],
                now,
            )
        )
        for device in offline:
            current = usage[device]
            assert current is not None
            if not self._fits(current, added[device]):
                raise QuotaExceeded(
                    ErrorCode.RECIPIENT_QUEUE_FULL,
                    f"the queue of device {device[1]} of {device[0]} is full "
                    f"({int(current[0])} envelopes, {int(current[1])} bytes waiting); "
                    "keep the message and retry later",
                    QUEUE_FULL_RETRY_MS,
                )
        # Accepted: charge everything at once.
        for device in offline:
            current = usage[device]
            assert current is not None
            current[0] += added[device][0]
            current[1] += added[device][1]
        self._refill(refills, now)


def _tally(envelopes: Sequence[OutgoingEnvelope]) -> dict[DeviceKey, tuple[int, int]]:
    """Envelopes and bytes per recipient device."""
    added: dict[DeviceKey, tuple[int, int]] = {}
    for env in envelopes:
        key = (env.recipient_account, env.recipient_device)
        n, size = added.get(key, (0, 0))
        added[key] = (n + 1, size + len(env.content))
    return added
