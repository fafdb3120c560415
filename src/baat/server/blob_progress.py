"""How much of a blob each fetching device has been served, so that a fetch counts towards
``fetches_allowed`` only once the whole blob has reached that device (docs/ATTACHMENTS.md).

A device may download in pieces (a resumed download: ``bytes=0-``, cut, then ``bytes=N-``),
so what is kept per (blob, device) is the length of the prefix served without a gap. A
range that starts beyond it (``bytes=-1``, the last byte alone) extends nothing: asking for
the end of a blob is not having fetched it, and cannot use up the fetches of the devices it
was sent to.

Kept in memory on the node that serves the bytes, bounded; a download resumed on another
node starts its count again there, which can only keep a blob longer (until its expiry),
never delete it early.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_TRACKED = 100_000

Key = tuple[str, str, int]  # blob id, fetching account, fetching device


class ServedPrefixes:
    """Per (blob, device): bytes served from offset 0 without a gap."""

    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self.max_tracked = max_tracked
        self._served: OrderedDict[Key, int] = OrderedDict()

    def served(self, key: Key) -> int:
        return self._served.get(key, 0)

    def advance(self, key: Key, start: int, end: int) -> None:
        """Bytes ``[start, end)`` have been handed to the device's connection."""
        current = self._served.get(key, 0)
        if start <= current < end:
            self._served[key] = end
            self._served.move_to_end(key)
            while len(self._served) > self.max_tracked:
                self._served.popitem(last=False)

    def complete(self, key: Key, length: int) -> bool:
        """Whether the whole blob has been served; forgets the key when it has."""
        if self._served.get(key, 0) >= length:
            del self._served[key]
            return True
        return False
