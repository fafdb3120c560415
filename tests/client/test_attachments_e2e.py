"""Attachments cross between two devices through a real ``baat serve``: encrypted on the
sender, uploaded in resumable pieces, stored as ciphertext only, fetched once, decrypted."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from baat.client.attachments import (
    AttachmentPointer,
    Encryptor,
    IntegrityError,
    PreparedImage,
    decode_pointer,
    decrypt_file,
    encode_pointer,
    make_pointer,
    prepare_image,
    safe_file_name,
)
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
PATCH_BYTES = 4 << 20
GPS = b"GPS 12.9716N 77.5946E"


def auth(device: DeviceUnderTest) -> dict[str, str]:
    return {"Authorization": device.creds.header()}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def create(
    http: httpx.AsyncClient, base: str, who: DeviceUnderTest, enc: Encryptor, fetches: int
) -> tuple[str, str]:
    body = {"length": enc.ciphertext_size, "fetches_allowed": fetches}
    r = await http.post(base + "/v1/blobs", json=body, headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()["id"], base + r.json()["url"]


async def send(
    http: httpx.AsyncClient,
    base: str,
    sender: DeviceUnderTest,
    data: bytes,
    fetches: int = 1,
    file_name: str = "file.bin",
    image: PreparedImage | None = None,
) -> bytes:
    """Encrypt and upload in PATCH_BYTES pieces; returns the pointer as it travels inside
    the end-to-end encrypted message."""
    enc = Encryptor(len(data))
    blob_id, url = await create(http, base, sender, enc, fetches)
    offset, pending = 0, bytearray()
    for piece in enc.stream(io.BytesIO(data)):
        pending += piece
        while len(pending) >= PATCH_BYTES or (
            pending and enc.ciphertext_size - offset == len(pending)
        ):
            part = bytes(pending[:PATCH_BYTES])
            del pending[:PATCH_BYTES]
            r = await http.patch(
                url, content=part, headers={**auth(sender), "Upload-Offset": str(offset)}
            )
            assert r.status_code == 204, r.text
            offset = int(r.headers["upload-offset"])
    assert offset == enc.ciphertext_size
    return encode_pointer(make_pointer(blob_id, enc.result(), file_name=file_name, image=image))


async def receive(
    http: httpx.AsyncClient, base: str, recipient: DeviceUnderTest, message: bytes, into: Path
) -> Path:
    """Download the ciphertext beside the destination, then check and decrypt it."""
    pointer = decode_pointer(message)
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
    blob_path = into / f".{pointer.blob_id}.blob"
    async with http.stream(
        "GET", f"{base}/v1/blobs/{pointer.blob_id}", headers=auth(recipient)
    ) as r:
        assert r.status_code == 200
        with blob_path.open("wb") as f:
            async for data in r.aiter_bytes():
                f.write(data)
    try:
        return decrypt_file(blob_path, into / safe_file_name(pointer.file_name), pointer)
    finally:
        blob_path.unlink()


def stored_bytes(data_dir: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(data_dir.rglob("*")) if p.is_file()]


def assert_no_plaintext(data_dir: Path, plain: bytes) -> None:
    step = max(len(plain) // 8, 1)
    needles = {plain[i : i + 48] for i in range(0, max(len(plain) - 48, 1), step)}
    for path, content in stored_bytes(data_dir):
        for needle in needles:
            assert needle not in content, f"plaintext found in the server's {path}"


async def test_a_20_mib_file_crosses_and_is_gone_once_fetched(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    plain = os.urandom(20 << 20)
    message = await send(http, server.url, alice, plain, file_name="../../holiday.mov")
    pointer = decode_pointer(message)
    assert len(list((server.data_dir / "blobs").rglob(pointer.blob_id))) == 1
    assert_no_plaintext(server.data_dir, plain)
    got = await receive(http, server.url, bob, message, tmp_path / "bob")
    assert got == tmp_path / "bob" / "holiday.mov" and got.read_bytes() == plain
    # Bob was the one device allowed: the server forgot the blob.
    r = await http.get(f"{server.url}/v1/blobs/{pointer.blob_id}", headers=auth(bob))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_blob"
    assert not list((server.data_dir / "blobs").rglob(pointer.blob_id))
    assert_no_plaintext(server.data_dir, plain)


def hand_made_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes([x * 16, 255 - x * 16, 90]) * 16 for x in range(16))
    return b"\x89PNG\r\n\x1a\n" + b"".join([
        chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)),
        chunk(b"tEXt", b"Location\x00" + GPS),
        chunk(b"IDAT", zlib.compress(rows)),
        chunk(b"IEND", b""),
    ])  # fmt: skip


def photo() -> bytes:
    """A JPEG with a location in its EXIF when Pillow is here, else a hand-made PNG."""
    try:
        from PIL import ExifTags, Image
    except ImportError:
        return hand_made_png()
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    exif[ExifTags.Base.ImageDescription] = GPS.decode()
    out = io.BytesIO()
    Image.new("RGB", (1200, 900), (20, 120, 200)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


async def cross_photo(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> AttachmentPointer:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    original = photo()
    image = prepare_image(original)
    assert image.metadata_stripped and GPS not in image.data
    message = await send(http, server.url, alice, image.data, file_name="IMG_0001", image=image)
    assert_no_plaintext(server.data_dir, image.data)
    got = await receive(http, server.url, bob, message, tmp_path / "bob")
    assert got.read_bytes() == image.data
    pointer = decode_pointer(message)
    assert pointer.content_type == image.content_type and pointer.size == len(image.data)
    assert (pointer.width, pointer.height) == (image.width, image.height) != (None, None)
    return pointer


async def test_a_photo_crosses_without_its_location(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await cross_photo(server, http, tmp_path)


async def test_a_photo_crosses_with_its_thumbnail(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="Pillow is not installed: no thumbnails")
    pointer = await cross_photo(server, http, tmp_path)
    assert (pointer.width, pointer.height) == (1200, 900) and pointer.thumbnail
    with image_mod.open(io.BytesIO(pointer.thumbnail)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 160


async def drop_midway(
    server: ServerProcess, who: DeviceUnderTest, path: str, blob: bytes, sent: int
) -> None:
    """Start a PATCH of the whole blob, send ``sent`` bytes, then drop the connection."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {who.creds.header()}\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {len(blob)}\r\n\r\n"
    )
    writer.write(head.encode() + blob[:sent])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()
    writer.close()


async def test_an_interrupted_upload_resumes_from_head(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    plain = os.urandom(9 << 20)
    enc = Encryptor(len(plain))
    blob = b"".join(enc.stream(io.BytesIO(plain)))
    blob_id, url = await create(http, server.url, alice, enc, 1)
    await drop_midway(server, alice, f"/v1/blobs/{blob_id}", blob, 5 << 20)
    # The server stores what arrived; the uploader asks where to go on.
    deadline, offset = time.monotonic() + 10, 0
    while offset == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        offset = int((await http.head(url, headers=auth(alice))).headers["upload-offset"])
    assert 0 < offset <= 5 << 20
    r = await http.get(url, headers=auth(bob))
    assert r.status_code == 409 and r.json()["error"]["code"] == "incomplete_blob"
    while offset < len(blob):
        r = await http.patch(
            url, content=blob[offset:], headers={**auth(alice), "Upload-Offset": str(offset)}
        )
        assert r.status_code in (204, 409), r.text
        offset = int(r.headers["upload-offset"])
    message = encode_pointer(make_pointer(blob_id, enc.result()))
    got = await receive(http, server.url, bob, message, tmp_path / "bob")
    assert got.read_bytes() == plain


async def test_a_blob_altered_on_the_server_is_refused(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    message = await send(http, server.url, alice, os.urandom(300_000), file_name="a.pdf")
    (stored,) = (server.data_dir / "blobs").rglob(decode_pointer(message).blob_id)
    content = bytearray(stored.read_bytes())
    content[len(content) // 2] ^= 0x40
    stored.write_bytes(bytes(content))
    with pytest.raises(IntegrityError, match="digest"):
        await receive(http, server.url, bob, message, tmp_path / "bob")
    assert list((tmp_path / "bob").iterdir()) == []  # nothing decrypted, nothing kept


@pytest.mark.postgres
async def test_on_postgresql_blobs_live_in_the_database(
    pg_url: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    proc = ServerProcess(tmp_path / "server", pg_url).start()
    try:
        alice = await register(proc.url, "alice")
        bob = await register(proc.url, "bob")
        carol = await register(proc.url, "carol")
        plain = os.urandom(6 << 20)
        message = await send(http, proc.url, alice, plain, fetches=2)
        assert not (proc.data_dir / "blobs").exists() or not stored_bytes(proc.data_dir / "blobs")
        assert_no_plaintext(proc.data_dir, plain)
        for who in (bob, carol):
            got = await receive(http, proc.url, who, message, tmp_path / who.username)
            assert got.read_bytes() == plain
        r = await http.get(
            f"{proc.url}/v1/blobs/{decode_pointer(message).blob_id}", headers=auth(bob)
        )
        assert r.status_code == 404
    finally:
        proc.stop()
