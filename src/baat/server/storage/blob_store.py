"""Storage of attachment blobs: ciphertext only, held until fetched or expired.

One interface, two places for the bytes:

- ``FileBlobStore``: one file per blob under ``data_dir/blobs/`` (the default, SQLite);
- ``SqlBlobStore``: rows of ``blob_chunks`` (PostgreSQL), so that several nodes behind one
  database serve the same blobs.

Either way the ``blobs`` row is the truth about a blob: who uploads it, its declared
length, how many bytes are durably stored (``received``), who fetched it. Bytes are made
durable before ``received`` moves past them, so after a crash the row never claims bytes
that are not there, and ``received == length`` is the only way a blob becomes readable.

Errors::

    BlobError
    ├── UnknownBlob      no such blob, expired, or not the caller's upload
    ├── OffsetMismatch   an append at the wrong offset (carries the current one)
    └── BlobTooLarge     bytes beyond the declared length
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.server.regions.ids import region_of
from baat.server.storage.base import StorageUnavailable
from baat.server.storage.schema import blob_chunks, blobs
from baat.server.storage.sql import SqlStore

BLOB_TTL_S = 30 * 86_400
# Bytes written (a file write or a chunk row) at a time: large enough that per-write costs
# (a thread hop, a transaction) vanish against the copy, small enough to bound memory.
PIECE_BYTES = 1 << 20
_FETCH_HASH = 16
_ID_CHARS = re.compile(r"[A-Za-z0-9_-]{16,64}")


class BlobError(Exception):
    code = "blob_error"


class UnknownBlob(BlobError):
    code = "unknown_blob"


class OffsetMismatch(BlobError):
    code = "offset_mismatch"

    def __init__(self, expected: int) -> None:
        super().__init__(f"the upload is at offset {expected}")
        self.expected = expected


class BlobTooLarge(BlobError):
    code = "blob_too_large"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    blob_id: str
    uploader_account: str
    uploader_device: int
    length: int
    received: int
    fetches_allowed: int
    fetched: int
    expires_at: int

    @property
    def complete(self) -> bool:
        return self.received == self.length

    def uploaded_by(self, account_id: str, device_id: int) -> bool:
        return (self.uploader_account, self.uploader_device) == (account_id, device_id)


def new_blob_id(uploader_account: str = "") -> str:
    """192 random bits, urlsafe: unguessable, so the id itself is the fetch capability.

    An uploader whose account id names its home region gets a blob id that names it too
    (``in_Xk2…``, at least 140 random bits left), so that a device of another region can
    fetch it through its own server (``baat.server.regions``).
    """
    token = secrets.token_urlsafe(24)
    region = region_of(uploader_account)
    return f"{region}_{token}"[: len(token)] if region else token


def fetch_mark(blob_id: str, account_id: str, device_id: int) -> bytes:
    # Keyed by the blob id so that the marks of one device differ from blob to blob: the
    # table cannot be joined on them to list what one device received.
    msg = f"{account_id}.{device_id}".encode()
    return hmac.new(blob_id.encode(), msg, hashlib.sha256).digest()[:_FETCH_HASH]


class BlobStore:
    """Blob metadata in SQL; subclasses say where the bytes go."""

    def __init__(self, store: SqlStore, ttl_s: int = BLOB_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        # One upload at a time per blob in this process; the compare-and-set on ``received``
        # covers writers on other nodes.
        self._locks = _KeyedLocks()

    # -- metadata ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.store.engine.begin() as conn:
                yield conn
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
            raise StorageUnavailable(str(exc).splitlines()[0]) from exc

    async def _column(self, query: Any) -> list[Any]:
        async with self._tx() as conn:
            return list((await conn.execute(query)).scalars())

    async def create(
        self, account_id: str, device_id: int, length: int, fetches_allowed: int, now: float
    ) -> BlobInfo:
        info = BlobInfo(
            new_blob_id(account_id), account_id, device_id, length, 0, fetches_allowed, 0,
            int(now) + self.ttl_s,
        )  # fmt: skip
        async with self._tx() as conn:
            await conn.execute(
                insert(blobs).values(
                    blob_id=info.blob_id,
                    uploader_account=account_id,
                    uploader_device=device_id,
                    length=length,
                    received=0,
                    fetches_allowed=fetches_allowed,
                    fetched_by=b"",
                    expires_at=info.expires_at,
                )
            )
        await self._created(info.blob_id)
        return info

    async def info(self, blob_id: str, now: float) -> BlobInfo:
        """The blob's row.

        Raises:
            UnknownBlob: no such blob, or expired (even before the sweep removed it).
        """
        async with self._tx() as conn:
            row = (await conn.execute(select(blobs).where(blobs.c.blob_id == blob_id))).first()
        if row is None or row.expires_at <= now:
            raise UnknownBlob("no such blob (never uploaded, fetched by all, or expired)")
        return BlobInfo(
            row.blob_id, row.uploader_account, row.uploader_device, row.length, row.received,
            row.fetches_allowed, len(row.fetched_by) // _FETCH_HASH, row.expires_at,
        )  # fmt: skip

    async def _advance(self, conn: AsyncConnection, blob_id: str, old: int, new: int) -> None:
        # Compare-and-set: of two writers racing at one offset, exactly one moves it.
        moved = await conn.execute(
            update(blobs)
            .where(blobs.c.blob_id == blob_id, blobs.c.received == old)
            .values(received=new)
        )
        if moved.rowcount != 1:
            raise OffsetMismatch(old)

    # -- upload ------------------------------------------------------------------------

    async def append(
        self,
        blob_id: str,
        account_id: str,
        device_id: int,
        offset: int,
        body: AsyncIterator[bytes],
        now: float,
        declared: int | None = None,
    ) -> int:
        """Append ``body`` (``declared`` bytes long, if known) at ``offset`` and return the
        new offset.

        What arrived before the body failed (a dropped connection) is kept and counted, so
        the uploader resumes from the offset a HEAD reports; the body's error is re-raised.

        Raises:
            UnknownBlob: no such blob, expired, or another device's upload.
            OffsetMismatch: ``offset`` is not the stored offset.
            BlobTooLarge: the body goes past the declared length (the bytes before that
                piece are kept).
        """
        async with self._locks.hold(blob_id):
            info = await self.info(blob_id, now)
            if not info.uploaded_by(account_id, device_id):
                raise UnknownBlob("no such upload")
            if offset != info.received:
                raise OffsetMismatch(info.received)
            if declared is not None and offset + declared > info.length:
                # Refused before reading a byte when the request says it is too long.
                raise BlobTooLarge(f"the blob was declared as {info.length} bytes")
            sink = await self._open_sink(info)
            try:
                failure = await _copy(body, sink, info.length)
            finally:
                await sink.close()
            if failure is not None:
                raise failure
            return sink.pos

    # -- download and fetch accounting -------------------------------------------------

    async def record_fetch(self, blob_id: str, account_id: str, device_id: int) -> bool:
        """Count one complete fetch by a device (each device once); True if that was the
        last allowed fetch and the blob is now deleted."""
        mark = fetch_mark(blob_id, account_id, device_id)
        query = select(blobs.c.fetched_by, blobs.c.fetches_allowed).where(
            blobs.c.blob_id == blob_id
        )
        for _ in range(32):
            async with self._tx() as conn:
                row = (await conn.execute(query)).first()
                if row is None:
                    return True
                old: bytes = row.fetched_by
                if any(old[i : i + _FETCH_HASH] == mark for i in range(0, len(old), _FETCH_HASH)):
                    return False
                last = bool(len(old) // _FETCH_HASH + 1 >= row.fetches_allowed)
                # Compare-and-set on the marks: of two devices finishing at once, one retries.
                same = (blobs.c.blob_id == blob_id, blobs.c.fetched_by == old)
                if last:
                    stmt: Any = delete(blobs).where(*same)
                else:
                    stmt = update(blobs).where(*same).values(fetched_by=old + mark)
                if (await conn.execute(stmt)).rowcount != 1:
                    continue
                if last:
                    await self._delete_rows(conn, [blob_id])
            if last:
                await self._remove_bytes([blob_id])
            return last
        raise StorageUnavailable("too many concurrent fetches of one blob; retry")

    async def delete(self, blob_ids: list[str]) -> None:
        async with self._tx() as conn:
            await conn.execute(delete(blobs).where(blobs.c.blob_id.in_(blob_ids)))
            await self._delete_rows(conn, blob_ids)
        await self._remove_bytes(blob_ids)

    async def expire(self, now: float | None = None) -> int:
        """Delete every blob past its 30 days (complete or not); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        while True:
            ids = await self._column(
                select(blobs.c.blob_id).where(blobs.c.expires_at <= now).limit(500)
            )
            if not ids:
                break
            await self.delete(ids)
            removed += len(ids)
        await self._sweep()
        return removed

    # -- where the bytes go (subclasses) -------------------------------------------------

    async def _created(self, blob_id: str) -> None:
        """Prepare storage for a new blob (its row exists already)."""

    async def _open_sink(self, info: BlobInfo) -> Sink:
        raise NotImplementedError

    def read(self, info: BlobInfo, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of a complete blob, in pieces."""
        raise NotImplementedError

    async def _delete_rows(self, conn: AsyncConnection, blob_ids: list[str]) -> None:
        """Delete bytes kept in the database, in the caller's transaction."""

    async def _remove_bytes(self, blob_ids: list[str]) -> None:
        """Delete bytes kept outside the database, after their rows are gone."""

    async def _sweep(self) -> None:
        """Remove bytes left behind by a crash between deleting a row and its bytes."""


async def _copy(body: AsyncIterator[bytes], sink: Sink, length: int) -> Exception | None:
    """Copy ``body`` into ``sink`` in pieces of ``PIECE_BYTES``; returns the body's own
    error, if it failed (a dropped connection), after storing what did arrive."""
    buf = bytearray()
    failure: Exception | None = None
    chunks = aiter(body)
    while True:
        try:
            data = await anext(chunks)
        except StopAsyncIteration:
            break
        except Exception as exc:
            failure = exc
            break
        if sink.pos + len(buf) + len(data) > length:
            if buf:
                await sink.write(buf)
            raise BlobTooLarge(f"the blob was declared as {length} bytes")
        buf += data
        if len(buf) >= PIECE_BYTES:
            await sink.write(buf)
            buf.clear()
    if buf:
        await sink.write(buf)
    return failure


class _KeyedLocks:
    """asyncio locks by key, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Sink:
    """Writes pieces of one upload from ``start``; ``pos`` is where the next piece goes.
    ``close`` makes the pieces durable and records the offset."""

    def __init__(self, blob_id: str, start: int) -> None:
        self.blob_id = blob_id
        self.start = self.pos = start

    async def write(self, data: bytearray) -> None:
        """Store ``data``; the caller reuses the buffer once this returns."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


# -- files ------------------------------------------------------------------------------


class FileBlobStore(BlobStore):
    def __init__(self, store: SqlStore, root: Path, ttl_s: int = BLOB_TTL_S) -> None:
        super().__init__(store, ttl_s)
        self.root = root

    def path(self, blob_id: str) -> Path:
        # Ids are made by new_blob_id(); anything else must never become a path.
        if not _ID_CHARS.fullmatch(blob_id):
            raise UnknownBlob("not a blob id")
        # Two-character fan-out keeps directories small with many blobs.
        return self.root / blob_id[:2] / blob_id

    async def _created(self, blob_id: str) -> None:
        await asyncio.to_thread(self._create_file, self.path(blob_id))

    @staticmethod
    def _create_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.close(fd)

    async def _open_sink(self, info: BlobInfo) -> Sink:
        return await asyncio.to_thread(_FileSink, self, info)

    async def read(self, info: BlobInfo, start: int, end: int) -> AsyncIterator[bytes]:
        # Opened before the first byte goes out: a deletion racing with this download
        # unlinks the name, and this open file stays readable to the end.
        f = await asyncio.to_thread(self.path(info.blob_id).open, "rb")
        try:
            f.seek(start)
            pos = start
            while pos < end:
                data = await asyncio.to_thread(f.read, min(PIECE_BYTES, end - pos))
                if not data:
                    raise UnknownBlob("the blob's file is shorter than its record")
                pos += len(data)
                yield data
        finally:
            f.close()

    async def _remove_bytes(self, blob_ids: list[str]) -> None:
        def remove() -> None:
            for blob_id in blob_ids:
                self.path(blob_id).unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def _sweep(self) -> None:
        # Files first, rows second: a file exists only after its row was inserted, so a
        # file listed here without a row read afterwards is an orphan.
        files = await asyncio.to_thread(
            lambda: [p.name for p in self.root.glob("*/*") if _ID_CHARS.fullmatch(p.name)]
        )
        for i in range(0, len(files), 500):
            batch = files[i : i + 500]
            known = set(
                await self._column(select(blobs.c.blob_id).where(blobs.c.blob_id.in_(batch)))
            )
            await self._remove_bytes([b for b in batch if b not in known])


class _FileSink(Sink):
    def __init__(self, owner: FileBlobStore, info: BlobInfo) -> None:
        super().__init__(info.blob_id, info.received)
        self.owner = owner
        path = owner.path(info.blob_id)
        self.f = path.open("r+b")
        # Bytes past the recorded offset were written before a crash and never counted;
        # they are dropped so the file and the row agree.
        self.f.truncate(self.start)
        self.f.seek(self.start)

    async def write(self, data: bytearray) -> None:
        await asyncio.to_thread(self.f.write, data)
        self.pos += len(data)

    async def close(self) -> None:
        def sync() -> None:
            try:
                self.f.flush()
                os.fsync(self.f.fileno())
            finally:
                self.f.close()

        await asyncio.to_thread(sync)
        # Only after fsync: the row never counts bytes a power loss could take back.
        if self.pos != self.start:
            async with self.owner._tx() as conn:
                await self.owner._advance(conn, self.blob_id, self.start, self.pos)


# -- database chunks ----------------------------------------------------------------------


class SqlBlobStore(BlobStore):
    async def _open_sink(self, info: BlobInfo) -> Sink:
        return _ChunkSink(self, info.blob_id, info.received)

    async def read(self, info: BlobInfo, start: int, end: int) -> AsyncIterator[bytes]:
        c = blob_chunks.c
        # The chunk holding ``start``, then each next one: a few rows per query, never the
        # whole blob in memory.
        first = await self._column(
            select(c.position)
            .where(c.blob_id == info.blob_id, c.position <= start)
            .order_by(c.position.desc())
            .limit(1)
        )
        pos = first[0] - 1 if first else -1
        while True:
            async with self._tx() as conn:
                rows = (
                    await conn.execute(
                        select(c.position, c.data)
                        .where(c.blob_id == info.blob_id, c.position > pos, c.position < end)
                        .order_by(c.position)
                        .limit(4)
                    )
                ).all()
            if not rows:
                return
            for position, data in rows:
                lo, hi = max(start - position, 0), min(end - position, len(data))
                if lo < hi:
                    yield bytes(data[lo:hi])
                pos = position

    async def _delete_rows(self, conn: AsyncConnection, blob_ids: list[str]) -> None:
        await conn.execute(delete(blob_chunks).where(blob_chunks.c.blob_id.in_(blob_ids)))


class _ChunkSink(Sink):
    def __init__(self, owner: SqlBlobStore, blob_id: str, start: int) -> None:
        super().__init__(blob_id, start)
        self.owner = owner

    async def write(self, data: bytearray) -> None:
        # The chunk and the offset move in one transaction: a crash keeps both or neither.
        # The offset first: a node racing at the same offset waits on the row lock, then
        # finds the offset moved, instead of colliding on the chunk's key.
        async with self.owner._tx() as conn:
            await self.owner._advance(conn, self.blob_id, self.pos, self.pos + len(data))
            await conn.execute(
                insert(blob_chunks).values(
                    blob_id=self.blob_id, position=self.pos, data=bytes(data)
                )
            )
        self.pos += len(data)


def open_blob_store(store: SqlStore, data_dir: Path) -> BlobStore:
    """Chunks in PostgreSQL when the server's database is PostgreSQL (shared by every
    node), files under ``data_dir/blobs/`` otherwise."""
    if store.dialect == "postgresql":
        return SqlBlobStore(store)
    return FileBlobStore(store, data_dir / "blobs")
