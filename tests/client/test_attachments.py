"""Attachment encryption, pointers and image preparation, on the device (no server)."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baat.client import attachments as att
from baat.client.attachments import (
    CHUNK,
    TAG,
    AttachmentPointer,
    Encryptor,
    IntegrityError,
    InvalidPointer,
    ciphertext_size,
    decode_pointer,
    decrypt_bytes,
    decrypt_file,
    encode_pointer,
    encrypt_bytes,
    encrypt_file,
    make_pointer,
    padded_size,
    prepare_image,
    safe_file_name,
)

BLOB_ID = "b" * 32


def pointer_for(data: bytes) -> tuple[bytes, AttachmentPointer]:
    blob, result = encrypt_bytes(data)
    return blob, make_pointer(BLOB_ID, result, "application/pdf", "report.pdf")


@pytest.mark.parametrize(
    "size", [0, 1, 540, 541, 542, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1_000_003]
)
def test_round_trip_and_exact_lengths(size: int) -> None:
    data = os.urandom(size)
    blob, pointer = pointer_for(data)
    assert len(blob) == ciphertext_size(size)
    assert pointer.digest == hashlib.sha256(blob).digest() and len(pointer.key) == 32
    assert decrypt_bytes(blob, pointer) == data


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5 * CHUNK), st.lists(st.integers(1, 2 * CHUNK), max_size=8))
def test_pieces_of_any_size_give_the_same_ciphertext(size: int, cuts: list[int]) -> None:
    data = os.urandom(size)
    whole = Encryptor(size)
    expected = whole.update(data) + whole.finalize()
    enc = Encryptor(size, key=whole.key)
    out, pos = b"", 0
    for cut in cuts:
        out += enc.update(data[pos : pos + cut])
        pos = min(pos + cut, size)
    out += enc.update(data[pos:]) + enc.finalize()
    assert out == expected and enc.digest == whole.digest


def test_padding_hides_the_exact_size_within_five_percent() -> None:
    sizes = [1, 541, 542, 10_000, 10_001, 1 << 20, 20 << 20, 100 << 20]
    for size in sizes:
        assert size <= padded_size(size) <= max(541, size * 1.05 + 1)
    # Nearby sizes share a bucket: the server cannot tell them apart.
    assert padded_size(1_000_000) == padded_size(1_010_000)


def test_each_attachment_gets_a_fresh_key() -> None:
    keys = {encrypt_bytes(b"same bytes")[1].key for _ in range(10)}
    assert len(keys) == 10


def test_misuse_of_the_encryptor_is_an_error() -> None:
    enc = Encryptor(3)
    with pytest.raises(ValueError):
        enc.update(b"four")
    with pytest.raises(RuntimeError):
        _ = enc.digest
    enc.update(b"ab")
    with pytest.raises(ValueError):
        enc.finalize()


def flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


@pytest.mark.parametrize("where", ["start", "middle", "tag", "end"])
def test_a_flipped_byte_is_refused(where: str) -> None:
    blob, pointer = pointer_for(os.urandom(3 * CHUNK))
    at = {"start": 0, "middle": len(blob) // 2, "tag": CHUNK + 3, "end": len(blob) - 1}[where]
    with pytest.raises(IntegrityError, match="digest"):
        decrypt_bytes(flip(blob, at), pointer)


def test_truncated_or_extended_blobs_are_refused() -> None:
    blob, pointer = pointer_for(os.urandom(2 * CHUNK))
    for bad in (blob[:-1], blob[: CHUNK + TAG], b"", blob + b"\x00"):
        with pytest.raises(IntegrityError, match="bytes, expected"):
            decrypt_bytes(bad, pointer)


def test_chunk_order_and_the_last_chunk_are_authenticated() -> None:
    # A sender-side attacker who could also rewrite the pointer's digest and size (it
    # cannot: the pointer is end-to-end encrypted) still fails on the chunk nonces.
    data = os.urandom(4 * CHUNK)
    blob, pointer = pointer_for(data)
    sealed = CHUNK + TAG
    swapped = blob[sealed : 2 * sealed] + blob[:sealed] + blob[2 * sealed :]
    forged = msgspec.structs.replace(pointer, digest=hashlib.sha256(swapped).digest())
    with pytest.raises(IntegrityError, match="chunk 0"):
        decrypt_bytes(swapped, forged)
    # Cut after whole chunks and claim a matching smaller size: the cut chunk was not last.
    size = next(n for n in range(CHUNK, 0, -1) if ciphertext_size(n) <= 2 * sealed)
    cut = blob[: ciphertext_size(size)]
    forged = msgspec.structs.replace(pointer, size=size, digest=hashlib.sha256(cut).digest())
    with pytest.raises(IntegrityError, match="authentication"):
        decrypt_bytes(cut, forged)


def test_a_wrong_key_is_refused() -> None:
    blob, pointer = pointer_for(b"secret")
    with pytest.raises(IntegrityError):
        decrypt_bytes(blob, msgspec.structs.replace(pointer, key=os.urandom(32)))


def test_files_decrypt_to_a_temporary_then_rename(tmp_path: Path) -> None:
    src = tmp_path / "plain.bin"
    src.write_bytes(os.urandom(5 * CHUNK + 17))
    enc_path = tmp_path / "blob"
    with enc_path.open("wb") as out:
        result = encrypt_file(src, out)
    pointer = make_pointer(BLOB_ID, result)
    dst = tmp_path / "out" / "plain.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"an older file of that name")
    blob = enc_path.read_bytes()
    # Tampered or truncated: a typed error, the old file intact, no temporary left behind.
    for bad in (flip(blob, 100), blob[:-10]):
        enc_path.write_bytes(bad)
        with pytest.raises(IntegrityError):
            decrypt_file(enc_path, dst, pointer)
        assert list(dst.parent.iterdir()) == [dst]
        assert dst.read_bytes() == b"an older file of that name"
    enc_path.write_bytes(blob)
    assert decrypt_file(enc_path, dst, pointer) == dst
    assert dst.read_bytes() == src.read_bytes()
    assert list(dst.parent.iterdir()) == [dst]


def test_a_failed_decrypt_after_the_digest_check_leaves_nothing(tmp_path: Path) -> None:
    blob, pointer = pointer_for(os.urandom(2 * CHUNK))
    # The digest matches, the key does not: the failure comes while decrypting.
    forged = msgspec.structs.replace(pointer, key=os.urandom(32))
    (tmp_path / "blob").write_bytes(blob)
    with pytest.raises(IntegrityError, match="authentication"):
        decrypt_file(tmp_path / "blob", tmp_path / "out.pdf", forged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob"]


def test_large_files_stream_in_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "big"
    with src.open("wb") as f:
        for _ in range(24):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        with (tmp_path / "blob").open("wb") as out:
            pointer = make_pointer(BLOB_ID, encrypt_file(src, out))
        _, enc_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decrypt_file(tmp_path / "blob", tmp_path / "big.out", pointer)
        _, dec_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert enc_peak < 6 << 20 and dec_peak < 6 << 20, (enc_peak, dec_peak)
    assert (
        hashlib.sha256((tmp_path / "big.out").read_bytes()).digest()
        == hashlib.sha256(src.read_bytes()).digest()
    )


def test_stream_reads_in_bounded_pieces() -> None:
    reads: list[int] = []

    class Recording(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return super().read(n)

    size = 3 * att.READ_BYTES + 5
    enc = Encryptor(size)
    pieces = list(enc.stream(Recording(os.urandom(size))))
    assert max(reads) == att.READ_BYTES and -1 not in reads
    assert max(len(p) for p in pieces) <= att.READ_BYTES + 16 * TAG
    assert sum(map(len, pieces)) == ciphertext_size(size)


def test_pointers_round_trip_and_refuse_nonsense() -> None:
    _, pointer = pointer_for(b"x")
    pointer = msgspec.structs.replace(pointer, thumbnail=b"\xff\xd8" * 10, width=4, height=3)
    assert decode_pointer(encode_pointer(pointer)) == pointer
    raw: dict[str, Any] = msgspec.to_builtins(pointer)
    assert "scheme" not in raw  # scheme 1 is implied, so old pointers stay valid
    for change in [
        {"key": b"short"},
        {"digest": b"d" * 31},
        {"blob_id": "../../etc"},
        {"size": -1},
        {"scheme": 2},
        {"thumbnail": b"t" * (att.THUMBNAIL_MAX_BYTES + 1)},
        {"width": 0},
    ]:
        with pytest.raises(InvalidPointer):
            decode_pointer(msgspec.msgpack.encode({**raw, **change}))
    with pytest.raises(InvalidPointer):
        decode_pointer(b"\xc1 not msgpack")


def test_the_largest_pointer_fits_in_a_message() -> None:
    _, pointer = pointer_for(b"x")
    big = msgspec.structs.replace(
        pointer, thumbnail=b"t" * att.THUMBNAIL_MAX_BYTES, file_name="n" * 255, width=1, height=1
    )
    assert len(encode_pointer(big)) < 20 * 1024  # envelopes carry up to 64 KiB


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("\x00evil\n.txt", "evil.txt"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        (None, "attachment"),
        ("photo 1.jpg", "photo 1.jpg"),
    ],
)
def test_received_file_names_are_made_safe(name: str | None, safe: str) -> None:
    assert safe_file_name(name) == safe


# -- images ------------------------------------------------------------------------------

GPS = b"GPS 48.8584N 2.2945E"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(with_metadata: bool = True) -> bytes:
    """A valid 2x1 RGB PNG made by hand, with EXIF and text chunks carrying a location."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff"))
    meta = png_chunk(b"eXIf", b"MM\x00*" + GPS) + png_chunk(b"tEXt", b"Location\x00" + GPS)
    return (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + (meta if with_metadata else b"")
        + idat
        + png_chunk(b"IEND", b"")
    )


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def marker_jpeg() -> bytes:
    """The marker structure of a JPEG (the scan data is not a real image): JFIF, EXIF with
    orientation 6 and a location, XMP, a comment, a frame header of 40x30."""
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    tiff += struct.pack("<I", 0) + GPS
    return (
        b"\xff\xd8"
        + jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + jpeg_segment(0xE1, b"Exif\x00\x00" + tiff)
        + jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + GPS)
        + jpeg_segment(0xFE, b"shot at " + GPS)
        + jpeg_segment(0xC0, b"\x08" + struct.pack(">HH", 30, 40) + b"\x03" + b"\x00" * 9)
        + jpeg_segment(0xDA, b"\x03" + b"\x00" * 10)
        + b"\x12\x34\xff\x00\x56"
        + b"\xff\xd9"
    )


@pytest.fixture
def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(att, "_pillow", lambda: None)


def test_png_metadata_is_cut_without_pillow(no_pillow: None) -> None:
    image = prepare_image(tiny_png())
    assert GPS not in image.data and b"eXIf" not in image.data
    assert image.data == tiny_png(with_metadata=False)
    assert (image.content_type, image.width, image.height) == ("image/png", 2, 1)
    assert image.metadata_stripped and image.thumbnail is None
    assert any("Pillow is not installed" in n for n in image.notes)


def test_jpeg_metadata_is_cut_without_pillow_and_stays_upright(no_pillow: None) -> None:
    image = prepare_image(marker_jpeg())
    assert GPS not in image.data and b"xmpmeta" not in image.data
    assert image.data.startswith(b"\xff\xd8\xff\xe0") and image.data.endswith(b"\xff\xd9")
    # Only the orientation survives, in an EXIF of its own; width and height as displayed.
    assert (
        image.data.count(b"Exif\x00\x00") == 1
        and att._exif_orientation(image.data[image.data.index(b"Exif") + 6 :]) == 6
    )
    assert (image.width, image.height) == (30, 40)
    assert image.metadata_stripped


def test_unknown_formats_are_sent_as_they_are_and_the_user_told(no_pillow: None) -> None:
    data = b"RIFF\x00\x00\x00\x00WEBPVP8 whatever"
    image = prepare_image(data)
    assert image.data == data and not image.metadata_stripped
    assert any("could not be removed" in n for n in image.notes)
    kept = prepare_image(marker_jpeg(), strip_metadata=False)
    assert kept.data == marker_jpeg() and not kept.metadata_stripped


def pil() -> Any:
    return pytest.importorskip(
        "PIL.Image", reason="Pillow is not installed: thumbnails and re-encoding are untested"
    )


def test_with_pillow_images_are_reencoded_upright_without_exif_and_thumbnailed() -> None:
    image_mod = pil()
    from PIL import ExifTags

    im = image_mod.new("RGB", (640, 480), (200, 30, 30))
    exif = image_mod.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 30.0)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, comment=b"shot at " + GPS, xmp=b"<x>" + GPS + b"</x>")
    original = buf.getvalue()
    assert b"PhoneCo" in original and GPS in original

    image = prepare_image(original)
    assert image.metadata_stripped and image.content_type == "image/jpeg"
    assert b"PhoneCo" not in image.data and GPS not in image.data
    assert (image.width, image.height) == (480, 640)
    with image_mod.open(io.BytesIO(image.data)) as out:
        assert out.size == (480, 640) and not dict(out.getexif())
    assert image.thumbnail is not None and len(image.thumbnail) <= att.THUMBNAIL_MAX_BYTES
    with image_mod.open(io.BytesIO(image.thumbnail)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= att.THUMBNAIL_PX


def test_with_pillow_pngs_lose_their_text_and_exif() -> None:
    image_mod = pil()
    image = prepare_image(tiny_png())
    assert GPS not in image.data and image.metadata_stripped
    assert (image.width, image.height) == (2, 1) and image.thumbnail is not None
    with image_mod.open(io.BytesIO(image.data)) as out:
        assert out.size == (2, 1) and "Location" not in out.info
