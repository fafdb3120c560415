"""The device's prekeys over time: rotation with a grace period, and refills while connected.

Rotation (docs/CRYPTO.md §14, PQXDH section 4.11 "Signed prekey rotation"):

1. The signed curve prekey and the last-resort ML-KEM prekey each get a new key id every
   :data:`ROTATE_AFTER_MS`, checked at connect and every :data:`CHECK_EVERY_S` while
   connected. The new private half is stored first, the public half published second (a
   crash in between wastes an id, never publishes a key whose private half is lost).
2. The replaced private halves are kept for :data:`GRACE_MS`, so that a first message a
   peer built from an older bundle still decrypts; then they are erased. A message that
   names an erased key fails cleanly (``UnknownPrekey``) and takes the retry path.

Refills: the server pushes ``PrekeysLow`` when a bundle fetch left few one-time prekeys;
the client tops up at once instead of waiting for the next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, delete, insert, select, update

from baat.client import schema as s
from baat.client.core import ClientError
from baat.client.transport import TransportError
from baat.crypto import (
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    generate_prekeys,
)
from baat.proto import PrekeyRecord, UploadPrekeys

if TYPE_CHECKING:
    from baat.client.core import ClientCore


log = logging.getLogger("baat.client.prekeys")

DAY_MS: Final = 86_400_000
ROTATE_AFTER_MS: Final = 7 * DAY_MS
GRACE_MS: Final = 30 * DAY_MS
CHECK_EVERY_S: Final = 3600.0
ROTATING: Final = (PREKEY_KIND_CURVE_SIGNED, PREKEY_KIND_KEM_LAST_RESORT)


class PrekeyKeeper:
    """Rotates the signed prekeys and refills one-time prekeys for one client."""

    def __init__(self, client: ClientCore) -> None:
        self.client = client
        self._timer: asyncio.Task[None] | None = None
        self._refill: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- while connected ---------------------------------------------------------------

    def start(self) -> None:
        """Check rotation every :data:`CHECK_EVERY_S` until :meth:`stop`."""
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        for task in (self._timer, self._refill):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._timer = self._refill = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            await self._quietly(self.rotate_if_due)

    def refill_soon(self) -> None:
        """The server said one-time prekeys run low: top up in the background."""
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._quietly(self.client._top_up))

    async def _quietly(self, job: object) -> None:
        try:
            async with self._lock:
                await job()  # type: ignore[operator]
        except (ClientError, TransportError) as exc:
            log.warning("prekey upkeep failed: %s", exc)

    # -- rotation -------------------------------------------------------------------------

    async def rotate_if_due(self) -> list[int]:
        """Replace signed prekeys older than :data:`ROTATE_AFTER_MS`, erase replaced ones
        older than :data:`GRACE_MS`; returns the new key ids.

        Raises:
            NotConnected: a new key needs publishing and there is no connection.
            TransportError: the server refused the upload.
        """
        c = self.client
        now = c.clock()
        with c.store.transaction() as tx:
            self._adopt_untracked(tx, now)
            self.erase_expired(tx, now)
            due = [
                kind
                for kind, (key_id, created) in self.current(tx).items()
                if now - created >= ROTATE_AFTER_MS
            ]
            if not due:
                return []
            ids = c.store.allocate_prekey_ids(tx, len(due))
            pairs = []
            for kind, key_id in zip(due, ids, strict=True):
                pairs += generate_prekeys(c.identity, kind, [key_id])
            c.store.put_prekeys(
                tx, [(p.private.kind, p.private.key_id, p.private.to_bytes()) for p in pairs]
            )
            t = s.signed_prekey_times
            for kind in due:
                tx.execute(
                    update(t)
                    .where(t.c.kind == kind, t.c.retired_at.is_(None))
                    .values(retired_at=now)
                )
            for p in pairs:
                tx.execute(
                    insert(t).values(kind=p.private.kind, key_id=p.private.key_id, created_at=now)
                )
        records = [
            PrekeyRecord(p.public.kind, p.public.key_id, p.public.public_key, p.public.signature)
            for p in pairs
        ]
        await c._need().upload_prekeys(UploadPrekeys(0, records, []))
        return [p.private.key_id for p in pairs]

    def current(self, tx: Connection) -> dict[int, tuple[int, int]]:
        """Kind -> (key id, created at ms) of the signed prekeys in use."""
        t = s.signed_prekey_times
        live = select(t.c.kind, t.c.key_id, t.c.created_at).where(t.c.retired_at.is_(None))
        rows = tx.execute(live)
        return {int(r.kind): (int(r.key_id), int(r.created_at)) for r in rows}

    def erase_expired(self, tx: Connection, now: int) -> list[tuple[int, int]]:
        """Erase the private halves of signed prekeys replaced more than :data:`GRACE_MS`
        ago; returns their (kind, key id)."""
        t = s.signed_prekey_times
        rows = tx.execute(
            select(t.c.kind, t.c.key_id).where(
                t.c.retired_at.is_not(None), t.c.retired_at <= now - GRACE_MS
            )
        ).all()
        gone = [(int(r.kind), int(r.key_id)) for r in rows]
        self.client.store.drop_prekeys(tx, gone)
        for kind, key_id in gone:
            tx.execute(delete(t).where(t.c.kind == kind, t.c.key_id == key_id))
        return gone

    def _adopt_untracked(self, tx: Connection, now: int) -> None:
        """Signed prekeys made before rotation existed (key id 1 of each kind) count from
        the first check."""
        t = s.signed_prekey_times
        if tx.execute(select(t.c.kind).limit(1)).first() is not None:
            return
        rows = tx.execute(
            select(s.prekeys.c.kind, s.prekeys.c.key_id).where(s.prekeys.c.kind.in_(ROTATING))
        ).all()
        newest: dict[int, int] = {}
        for r in rows:
            newest[int(r.kind)] = max(newest.get(int(r.kind), 0), int(r.key_id))
        for kind, key_id in newest.items():
            tx.execute(insert(t).values(kind=kind, key_id=key_id, created_at=now))
