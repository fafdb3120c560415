"""Random envelope ids, drawn from the operating system a block at a time."""

from __future__ import annotations

import os

GUID_BYTES = 16
# 256 ids per draw.
BLOCK_BYTES = 4096


class GuidPool:
    """16-byte random envelope ids (guids) from ``os.urandom``, 256 to a system call.

    Why a pool: ``os.urandom`` releases the GIL around getrandom(2). On the event loop's
    thread each release lets a database worker thread (aiosqlite, the executor) take the
    interpreter, and the loop then waits for it back, up to the switch interval (5 ms), in
    the middle of routing an envelope. One draw per 256 envelopes keeps that wait off the
    per-envelope path (docs/PERFORMANCE.md). The ids stay uniformly random: every byte
    still comes from the kernel's CSPRNG and each is handed out once.
    """

    __slots__ = ("_block", "_pos")

    def __init__(self) -> None:
        self._block = b""
        self._pos = 0

    def take(self, count: int) -> bytes:
        """``count`` ids, concatenated (``16 * count`` bytes)."""
        size = GUID_BYTES * count
        if size > BLOCK_BYTES:
            return os.urandom(size)
        pos = self._pos
        if pos + size > len(self._block):
            self._block = os.urandom(BLOCK_BYTES)
            pos = 0
        self._pos = pos + size
        return self._block[pos : pos + size]
