"""The server's stores outside the inventory's SQL rows, registered with the erasure path
(baat.privacy.erasure) when the app starts.

| store              | phase  | erases                                  | retention             |
|--------------------|--------|-----------------------------------------|-----------------------|
| attachments        | before | blobs the account uploaded (files, rows)| 30 days (BlobStore)   |
| live sessions      | before | closes them, writes in-flight envelopes | (connection lifetime) |
| router memory      | after  | recent sends, device list, rate bucket, | recent sends: 24 h    |
|                    |        | pushed guids, here and on other nodes   |                       |
| presence           | after  | Redis (or in-process) presence keys     | 30 s key expiry       |
| last-seen cache    | after  | the day-of-last-connection memo         | process lifetime      |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from baat.privacy.erasure import Phase, Store
from baat.server.blobs import blob_store
from baat.server.storage.schema import blobs

if TYPE_CHECKING:
    from baat.server.state import ServerState


def register_stores(state: ServerState) -> None:
    """Register every store of this server with ``state.privacy.erasure``."""
    privacy = state.privacy
    assert privacy is not None
    router = state.router
    bus = router.bus
    assert bus is not None
    attachments = blob_store(state)

    async def erase_attachments(account_id: str) -> int:
        async with state.store.engine.connect() as conn:
            ids = [
                str(i)
                for i in await conn.scalars(
                    select(blobs.c.blob_id).where(blobs.c.uploader_account == account_id)
                )
            ]
        if ids:
            await attachments.delete(ids)
        return len(ids)

    async def expire_attachments(now: float) -> int:
        return await attachments.expire(now)

    async def close_sessions(account_id: str) -> int:
        return await router.close_account(account_id)

    async def forget_in_memory(account_id: str) -> int:
        return await router.erase_account(account_id)

    async def expire_recent_sends(now: float) -> int:
        return router.expire_recent(int(now * 1000))

    async def forget_presence(account_id: str) -> int:
        return await bus.forget(account_id)

    async def forget_last_seen(account_id: str) -> int:
        return int(state._seen.pop(account_id, None) is not None)

    blob_entries = ("blob.id", "blob.uploader", "blob.size", "blob.content")
    for store in (
        Store("attachments", Phase.BEFORE, erase_attachments, expire_attachments, blob_entries),
        Store(
            "live sessions",
            Phase.BEFORE,
            close_sessions,
            entries=("connection.session", "connection.ip_address"),
        ),
        Store(
            "router memory",
            Phase.AFTER,
            forget_in_memory,
            expire_recent_sends,
            ("envelope.recent_send", "memory.device_cache", "memory.send_rate"),
        ),
        Store("presence", Phase.AFTER, forget_presence, entries=("connection.presence",)),
        Store(
            "last-seen cache", Phase.AFTER, forget_last_seen, entries=("memory.last_seen_cache",)
        ),
    ):
        privacy.erasure.register(store)
