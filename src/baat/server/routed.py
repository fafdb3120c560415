"""What the router keeps per send and per envelope, and the frames it makes of them.

Split from ``delivery.py`` (the router) so that the router's file holds its decisions: the
records (``Waiter``, ``Entry``), the ``Outlet`` a live session is to it, the device-list
check of a send, and the ``Deliver`` and ``Forward`` built from a queued envelope.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from baat.proto import Deliver, ErrorCode, OutgoingEnvelope, RecipientResult, SendResult, encode
from baat.server.bus import Forward
from baat.server.errors import SendRefused
from baat.server.fairness import SenderShares
from baat.server.storage.base import QueuedEnvelope

if TYPE_CHECKING:
    from baat.server.regions.links import Regions

DeviceKey = tuple[str, int]

DELIVERED = "delivered"
STORED = "stored"
DUPLICATE = "duplicate"


class Outlet(Protocol):
    """A live device session as the router sees it."""

    key: DeviceKey

    def push(self, data: bytes) -> None: ...

    async def wait_writable(self) -> None: ...

    def close_superseded(self) -> None: ...

    def close_removed(self) -> None: ...

    def close_suspended(self) -> None: ...


class Waiter:
    """Collects per-recipient statuses of one send and fires once all are final."""

    __slots__ = ("callback", "counted", "message_id", "remaining", "results", "sender", "shares")

    def __init__(
        self,
        message_id: str,
        results: list[RecipientResult | None],
        callback: Callable[[SendResult], None],
        sender: DeviceKey = ("", 0),
        shares: SenderShares | None = None,
    ) -> None:
        self.message_id = message_id
        self.results = results
        self.remaining = results.count(None)
        self.callback = callback
        self.sender = sender
        # Counted against the sender's share until the SendResult (server/fairness.py).
        self.shares = shares
        self.counted = self.remaining
        if shares is not None and self.remaining:
            shares.add(sender, self.remaining)

    def settle(self, index: int, result: RecipientResult) -> None:
        if self.results[index] is not None:
            return
        self.results[index] = result
        self.remaining -= 1
        if self.remaining == 0:
            self.fire()

    def fire(self) -> None:
        if self.shares is not None:
            self.shares.settle(self.sender, self.counted)
            self.shares = None
        done = [r for r in self.results if r is not None]
        self.callback(SendResult(message_id=self.message_id, results=done))


@dataclass(slots=True)
class Entry:
    env: QueuedEnvelope
    waiter: Waiter
    index: int
    deadline: float = 0.0
    acked: bool = False
    stored: bool = False
    writing: bool = False
    held: bool = False  # in the fan-out hold (server/fanout.py)
    order: int = 0  # acceptance order: a commit writes its batch in this order

    def result(self, status: str) -> RecipientResult:
        return RecipientResult(self.env.recipient_account, self.env.recipient_device, status)

    @property
    def device(self) -> DeviceKey:
        return (self.env.recipient_account, self.env.recipient_device)

    @property
    def size(self) -> int:
        return len(self.env.content)


@dataclass
class RouterStats:
    accepted: int = 0
    delivered_unstored: int = 0
    stored: int = 0
    flushes: int = 0
    deleted: int = 0
    # Failed writer passes and failed bus operations (baat.server.metrics).
    write_errors: int = 0
    bus_errors: int = 0


SENT_MEMORY = 2048


def drop_account(table: dict[DeviceKey, Any], account_id: str) -> int:
    keys = [k for k in table if k[0] == account_id]
    for key in keys:
        del table[key]
    return len(keys)


def remember_sent(sent: OrderedDict[bytes, None], guid: bytes) -> None:
    sent[guid] = None
    if len(sent) > SENT_MEMORY:
        sent.popitem(last=False)


def forward_of(env: QueuedEnvelope, seq: int) -> Forward:
    return Forward(
        seq=seq,
        guid=env.guid,
        recipient_account=env.recipient_account,
        recipient_device=env.recipient_device,
        sender_account=env.sender_account,
        sender_device=env.sender_device,
        message_id=env.message_id,
        content=env.content,
        stored_at=env.stored_at,
    )


def entry_order(entry: Entry) -> int:
    return entry.order


def entry_dest(entry: Entry) -> DeviceKey:
    return (entry.env.recipient_account, entry.env.recipient_device)


def deliver_frame(env: QueuedEnvelope | Forward) -> bytes:
    return encode(
        Deliver(
            guid=env.guid,
            sender_account=env.sender_account,
            sender_device=env.sender_device,
            message_id=env.message_id,
            content=env.content,
            server_time_ms=env.stored_at,
        )
    )


def address(
    envelopes: list[OutgoingEnvelope], regions: Regions | None
) -> tuple[list[RecipientResult | None], dict[str, list[int]], dict[str, set[int]]]:
    """A send's per-envelope results (none yet), its envelopes for accounts stored in
    another region by region (indexes into ``envelopes``), and this region's devices by
    account."""
    results: list[RecipientResult | None] = [None] * len(envelopes)
    elsewhere: dict[str, list[int]] = {}
    addressed: dict[str, set[int]] = {}
    for index, env in enumerate(envelopes):
        home = regions.home(env.recipient_account) if regions else None
        if home is not None:
            elsewhere.setdefault(home, []).append(index)
        else:
            addressed.setdefault(env.recipient_account, set()).add(env.recipient_device)
    return results, elsewhere, addressed


def check_devices(
    sender: DeviceKey,
    account_id: str,
    ids: set[int],
    current: frozenset[int],
    unknown: set[str],
) -> None:
    if not current:
        unknown.add(account_id)  # reported per envelope by the caller
        return
    if account_id == sender[0]:
        expected: frozenset[int] | set[int] = current - {sender[1]}
    else:
        expected = current
    if ids != expected:
        # The sender's view of this account's devices is out of date: refuse the
        # whole send so that it refreshes the list and encrypts for every device.
        raise SendRefused(
            ErrorCode.STALE_DEVICES,
            f"device list of {account_id} changed: current devices "
            f"{sorted(expected)}, addressed {sorted(ids)}",
        )
