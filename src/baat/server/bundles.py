"""Handing out prekey bundles and public account details, to local devices and to the other
regions alike.

One-time prekeys cannot be drained (docs/PROTOCOL.md, "Prekeys"; THREAT_MODEL.md):

1. A requesting account gets at most :data:`DRAIN_LIMIT` one-time prekeys of one target
   device per :data:`DRAIN_WINDOW_S`; past that the bundle comes without one-time keys
   (signed prekey and last-resort KEM key only, PQXDH section 3.2 allows it).
2. When a fetch leaves a device fewer than :data:`LOW_PREKEYS` of a kind, the device is
   told at once if it is connected to this node (``PrekeysLow``) and uploads more.
3. An account stores at most :data:`ONE_TIME_PREKEY_CAP` one-time prekeys of each kind;
   an upload beyond it is refused with ``too_many_prekeys``.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Final

from baat.proto import DeviceBundleRecord, ErrorCode, PrekeyRecord
from baat.server.storage.base import Account, Prekey
from baat.server.storage.sql import SqlStore

DRAIN_LIMIT: Final = 5
DRAIN_WINDOW_S: Final = 3600.0
LOW_PREKEYS: Final = 10
# MAX_DEVICES (6) devices, each holding up to a batch (40) plus the refill threshold (10).
ONE_TIME_PREKEY_CAP: Final = 300
_MAX_TRACKED: Final = 100_000

OnLow = Callable[[str, int, dict[int, int]], None]


class DrainLimiter:
    """Counts one-time prekeys handed out per (requesting account, target device) in a
    sliding window. Per node and in memory: behind several nodes a requester can take up to
    ``limit`` per node it reaches, which the low-prekey push then refills."""

    def __init__(
        self,
        limit: int = DRAIN_LIMIT,
        window: float = DRAIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._taken: OrderedDict[tuple[str, str, int], deque[float]] = OrderedDict()

    def allow(self, requester: str, account_id: str, device_id: int) -> bool:
        """Whether ``requester`` may take one more one-time prekey of that device now (and
        count it). Raises: nothing."""
        key = (requester, account_id, device_id)
        now = self.clock()
        times = self._taken.pop(key, None) or deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        allowed = len(times) < self.limit
        if allowed:
            times.append(now)
        self._taken[key] = times  # most recently used last
        while len(self._taken) > _MAX_TRACKED:
            self._taken.popitem(last=False)
        return allowed


class NoSuchDevice(LookupError):
    """The account, or the one device asked for, does not exist."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def claim_bundles(
    store: SqlStore,
    account_id: str,
    device_id: int,
    *,
    requester: str = "",
    limiter: DrainLimiter | None = None,
    on_low: OnLow | None = None,
) -> list[DeviceBundleRecord]:
    """One bundle per device of ``account_id`` (or only ``device_id`` when not 0), each taking
    a one-time prekey of each kind if any is left and ``limiter`` lets ``requester`` have
    one; ``on_low(account, device, counts)`` runs when a device is left with few.

    Raises:
        NoSuchDevice: unknown account or device.
    """
    if device_id:
        if await store.device(account_id, device_id) is None:
            raise NoSuchDevice(
                ErrorCode.UNKNOWN_DEVICE, f"no such account or device: {account_id}/{device_id}"
            )
        ids = [device_id]
    else:
        ids = [d.device_id for d in await store.devices(account_id)]
        if not ids:
            raise NoSuchDevice(ErrorCode.UNKNOWN_ACCOUNT, f"no such account: {account_id}")
    records = []
    for one in ids:
        allowed = limiter is None or limiter.allow(requester, account_id, one)
        b = await store.claim_bundle(account_id, one, one_time=allowed)
        if on_low is not None and (b.one_time_curve or b.one_time_kem):
            counts = await store.prekey_counts(account_id, one)
            if min(counts.values()) < LOW_PREKEYS:
                on_low(account_id, one, counts)
        records.append(
            DeviceBundleRecord(
                device_id=one,
                identity_key=b.device.identity_key,
                identity_dh_key=b.device.identity_dh_key,
                identity_dh_sig=b.device.identity_dh_sig,
                signed_prekey=_record(b.signed_prekey),
                kem_last_resort=_record(b.kem_last_resort),
                one_time_curve=_record(b.one_time_curve),
                one_time_kem=_record(b.one_time_kem),
            )
        )
    return records


def _record(key: Prekey | None) -> PrekeyRecord | None:
    if key is None:
        return None
    return PrekeyRecord(key.kind, key.key_id, key.public_key, key.signature)


async def public_details(store: SqlStore, account: Account) -> dict[str, Any]:
    """What a lookup of ``account`` by username answers: id, name, devices, signed list."""
    devices = await store.devices(account.account_id)
    signed = await store.device_list(account.account_id)
    return {
        "account_id": account.account_id,
        "username": account.username,
        "devices": [d.device_id for d in devices],
        "device_list": None
        if signed is None
        else {"version": signed[0], "signed_list": base64.b64encode(signed[1]).decode()},
    }
