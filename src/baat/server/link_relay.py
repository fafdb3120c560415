"""The memory of the device-linking relay (linking.py has its steps and routes).

Entries live :data:`RELAY_TTL_S` in memory on the node that took the registration, at most
``_MAX_ENTRIES`` of them, oldest dropped first; nothing is written to storage. A module of
its own so that ``ServerState`` holds a relay without importing the routes that use it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

RELAY_TTL_S: Final = 600.0
_MAX_ENTRIES: Final = 10_000


@dataclass(slots=True)
class _Exchange:
    commitment: bytes
    expires: float
    primary_nonce: bytes | None = None
    device_nonce: bytes | None = None


class LinkRelay:
    """Commitments and nonces of links under way, by (account, new device id)."""

    def __init__(self, ttl: float = RELAY_TTL_S) -> None:
        self.ttl = ttl
        self._open: OrderedDict[tuple[str, int], _Exchange] = OrderedDict()

    def start(self, account_id: str, device_id: int, commitment: bytes) -> None:
        self._expire()
        self._open[(account_id, device_id)] = _Exchange(commitment, time.monotonic() + self.ttl)
        while len(self._open) > _MAX_ENTRIES:
            self._open.popitem(last=False)

    def get(self, account_id: str, device_id: int) -> _Exchange | None:
        self._expire()
        return self._open.get((account_id, device_id))

    def _expire(self) -> None:
        now = time.monotonic()
        while self._open and next(iter(self._open.values())).expires < now:
            self._open.popitem(last=False)
