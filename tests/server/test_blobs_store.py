"""The blob store on both byte backends (files, database chunks) and both engines."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from sqlalchemy import select

from baat.server.storage import blob_store as bs
from baat.server.storage.blob_store import (
    BLOB_TTL_S,
    BlobStore,
    BlobTooLarge,
    FileBlobStore,
    OffsetMismatch,
    SqlBlobStore,
    UnknownBlob,
)
from baat.server.storage.schema import blob_chunks, blobs
from baat.server.storage.sql import SqlStore

NOW = 1_800_000_000.0


@pytest.fixture(params=["files", "chunks"])
def blob_store(request: pytest.FixtureRequest, store: SqlStore, tmp_path: Path) -> BlobStore:
    if request.param == "files":
        return FileBlobStore(store, tmp_path / "blobs")
    return SqlBlobStore(store)


async def body(*pieces: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
    if fail:
        raise ConnectionResetError("the connection dropped")


async def read_all(store: BlobStore, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
    info = await store.info(blob_id, NOW)
    return b"".join([c async for c in store.read(info, start, info.length if end is None else end)])


async def upload(
    store: BlobStore, data: bytes, fetches: int = 1, pieces: Iterable[int] = ()
) -> str:
    info = await store.create("alice", 1, len(data), fetches, NOW)
    offset = 0
    for cut in [*pieces, len(data)]:
        offset = await store.append(info.blob_id, "alice", 1, offset, body(data[offset:cut]), NOW)
    assert offset == len(data)
    return info.blob_id


async def test_upload_in_pieces_then_read_whole_and_ranges(blob_store: BlobStore) -> None:
    data = os.urandom(3 * bs.PIECE_BYTES + 12345)
    blob_id = await upload(blob_store, data, pieces=[10, bs.PIECE_BYTES + 7, 2 * bs.PIECE_BYTES])
    info = await blob_store.info(blob_id, NOW)
    assert info.complete and info.length == len(data) and info.fetched == 0
    assert await read_all(blob_store, blob_id) == data
    for start, end in [(0, 1), (5, bs.PIECE_BYTES + 9), (len(data) - 3, len(data))]:
        assert await read_all(blob_store, blob_id, start, end) == data[start:end]


async def test_ids_are_unguessable_and_urlsafe(blob_store: BlobStore) -> None:
    ids = {(await blob_store.create("alice", 1, 10, 1, NOW)).blob_id for _ in range(20)}
    assert len(ids) == 20
    for blob_id in ids:
        assert len(blob_id) == 32 and set(blob_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


async def test_a_dropped_body_keeps_what_arrived(blob_store: BlobStore) -> None:
    data = os.urandom(2 * bs.PIECE_BYTES)
    info = await blob_store.create("alice", 1, len(data), 1, NOW)
    with pytest.raises(ConnectionResetError):
        await blob_store.append(
            info.blob_id, "alice", 1, 0, body(data[:700_000], data[700_000:1_100_000], fail=True),
            NOW,
        )  # fmt: skip
    resumed = (await blob_store.info(info.blob_id, NOW)).received
    assert resumed == 1_100_000
    with pytest.raises(OffsetMismatch) as exc:
        await blob_store.append(info.blob_id, "alice", 1, 0, body(data), NOW)
    assert exc.value.expected == resumed
    await blob_store.append(info.blob_id, "alice", 1, resumed, body(data[resumed:]), NOW)
    assert await read_all(blob_store, info.blob_id) == data


async def test_only_the_uploader_appends(blob_store: BlobStore) -> None:
    info = await blob_store.create("alice", 1, 10, 1, NOW)
    for account, device in [("mallory", 1), ("alice", 2)]:
        with pytest.raises(UnknownBlob):
            await blob_store.append(info.blob_id, account, device, 0, body(b"x" * 10), NOW)
    assert (await blob_store.info(info.blob_id, NOW)).received == 0


async def test_bytes_past_the_declared_length_are_refused(blob_store: BlobStore) -> None:
    info = await blob_store.create("alice", 1, 10, 1, NOW)
    with pytest.raises(BlobTooLarge):
        await blob_store.append(info.blob_id, "alice", 1, 0, body(b"12345", b"678901"), NOW)
    # The piece that would overflow is not stored; what came before it is.
    assert (await blob_store.info(info.blob_id, NOW)).received == 5


async def test_concurrent_appends_at_one_offset_store_one(blob_store: BlobStore) -> None:
    info = await blob_store.create("alice", 1, 6, 1, NOW)
    results = await asyncio.gather(
        blob_store.append(info.blob_id, "alice", 1, 0, body(b"aaa"), NOW),
        blob_store.append(info.blob_id, "alice", 1, 0, body(b"bbb"), NOW),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["OffsetMismatch", "int"]
    await blob_store.append(info.blob_id, "alice", 1, 3, body(b"ccc"), NOW)
    assert await read_all(blob_store, info.blob_id) in (b"aaaccc", b"bbbccc")


async def test_each_device_counts_once_and_the_last_fetch_deletes(blob_store: BlobStore) -> None:
    blob_id = await upload(blob_store, b"ciphertext", fetches=2)
    assert await blob_store.record_fetch(blob_id, "bob", 1) is False
    assert await blob_store.record_fetch(blob_id, "bob", 1) is False  # again: not counted
    assert (await blob_store.info(blob_id, NOW)).fetched == 1
    assert await blob_store.record_fetch(blob_id, "bob", 2) is True
    with pytest.raises(UnknownBlob):
        await blob_store.info(blob_id, NOW)
    await assert_no_bytes(blob_store, blob_id)


async def test_concurrent_fetches_by_distinct_devices_all_count(blob_store: BlobStore) -> None:
    blob_id = await upload(blob_store, b"ciphertext", fetches=6)
    done = await asyncio.gather(*(blob_store.record_fetch(blob_id, "bob", d) for d in range(6)))
    assert done.count(True) == 1
    with pytest.raises(UnknownBlob):
        await blob_store.info(blob_id, NOW)


async def test_the_fetch_record_names_no_device(blob_store: BlobStore) -> None:
    blob_id = await upload(blob_store, b"ciphertext", fetches=3)
    await blob_store.record_fetch(blob_id, "bobaccountid", 7)
    async with blob_store.store.engine.connect() as conn:
        marks = (
            await conn.execute(select(blobs.c.fetched_by).where(blobs.c.blob_id == blob_id))
        ).scalar_one()
    assert len(marks) == 16 and b"bobaccountid" not in marks
    assert marks != bs.fetch_mark("another-blob-id-xxxxxxxxxxxxxxxxxxx", "bobaccountid", 7)


async def test_expired_blobs_are_unknown_then_deleted(blob_store: BlobStore) -> None:
    old = await upload(blob_store, b"old ciphertext")
    half = (await blob_store.create("alice", 1, 100, 1, NOW)).blob_id  # never completed
    later = NOW + BLOB_TTL_S
    fresh = (await blob_store.create("alice", 1, 5, 1, later - 10)).blob_id
    with pytest.raises(UnknownBlob):
        await blob_store.info(old, later)
    assert await blob_store.expire(later) == 2
    for blob_id in (old, half):
        await assert_no_bytes(blob_store, blob_id)
    assert (await blob_store.info(fresh, later)).length == 5
    assert await blob_store.expire(later) == 0


async def assert_no_bytes(store: BlobStore, blob_id: str) -> None:
    async with store.store.engine.connect() as conn:
        rows = await conn.execute(
            select(blob_chunks.c.position).where(blob_chunks.c.blob_id == blob_id)
        )
        assert rows.all() == []
    if isinstance(store, FileBlobStore):
        assert not store.path(blob_id).exists()


async def test_files_left_by_a_crash_are_swept(store: SqlStore, tmp_path: Path) -> None:
    files = FileBlobStore(store, tmp_path / "blobs")
    kept = await upload(files, b"kept")
    orphan = files.path("zz" + "x" * 30)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"row deleted, file not")
    assert await files.expire(NOW) == 0
    assert not orphan.exists() and files.path(kept).exists()


async def test_bytes_written_but_not_counted_before_a_crash_are_dropped(
    store: SqlStore, tmp_path: Path
) -> None:
    files = FileBlobStore(store, tmp_path / "blobs")
    info = await files.create("alice", 1, 8, 1, NOW)
    await files.append(info.blob_id, "alice", 1, 0, body(b"good"), NOW)
    with files.path(info.blob_id).open("ab") as f:
        f.write(b"junk")  # written, then the process died before recording the offset
    await files.append(info.blob_id, "alice", 1, 4, body(b"more"), NOW)
    assert files.path(info.blob_id).read_bytes() == b"goodmore"


async def test_two_nodes_racing_at_one_offset_store_one(store: SqlStore) -> None:
    node1, node2 = SqlBlobStore(store), SqlBlobStore(store)  # separate in-process locks
    info = await node1.create("alice", 1, 6, 1, NOW)
    results = await asyncio.gather(
        node1.append(info.blob_id, "alice", 1, 0, body(b"aaa"), NOW),
        node2.append(info.blob_id, "alice", 1, 0, body(b"bbb"), NOW),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["OffsetMismatch", "int"]
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(blob_chunks.c.position).where(blob_chunks.c.blob_id == info.blob_id)
        )
        assert [r[0] for r in rows] == [0]


def test_the_store_follows_the_database(tmp_path: Path) -> None:
    class Fake:
        dialect = "postgresql"

    assert isinstance(bs.open_blob_store(Fake(), tmp_path), SqlBlobStore)  # type: ignore[arg-type]
    Fake.dialect = "sqlite"
    chosen = bs.open_blob_store(Fake(), tmp_path)  # type: ignore[arg-type]
    assert isinstance(chosen, FileBlobStore) and chosen.root == tmp_path / "blobs"
