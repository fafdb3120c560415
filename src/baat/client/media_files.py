"""Files of attachments on this device: what is sent, and the local encrypted copies.

``inspect_file`` sniffs and prepares a file before it is sent. ``encrypt_twice`` and
``reencrypt`` write the local copies under ``PROFILE/media/``: scheme 1 of
``attachments.py`` under a key of this device's own, which ``media.py`` seals in the
message body. Blocking file work: ``media.py`` runs these in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import io
import mimetypes
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from baat.client.attachments import (
    READ_BYTES,
    AttachmentError,
    AttachmentPointer,
    EncryptedBlob,
    Encryptor,
    PreparedImage,
    _check_digest,
    _decrypt_chunks,
    prepare_image,
    safe_file_name,
    sniff_image_type,
)

# prepare_image decodes the whole image in memory; past this it is sent as a plain file.
MAX_IMAGE_BYTES = 64 << 20
# What sniff_image_type recognises: a file named like one of these must also look like it.
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A file about to be sent, as it will be encrypted."""

    path: Path
    file_name: str
    content_type: str
    size: int
    image: PreparedImage | None  # its ``data`` is what is sent instead of the file
    notes: tuple[str, ...]  # what the user should be told (metadata kept, no thumbnail)


def inspect_file(path: Path, strip_metadata: bool = True) -> Outgoing:
    """Sniff the type of the file at ``path`` and prepare it if it is an image.

    Raises:
        AttachmentError: no such file, a directory, or unreadable.
    """
    try:
        if path.is_dir():
            raise AttachmentError(f"{path} is a directory, not a file")
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
    except FileNotFoundError as exc:
        raise AttachmentError(f"no such file: {path}") from exc
    except OSError as exc:
        raise AttachmentError(f"cannot read {path}: {exc.strerror or exc}") from exc
    name = safe_file_name(path.name)
    guessed = mimetypes.guess_type(name, strict=False)[0]
    sniffed = sniff_image_type(head)
    if sniffed is not None and size <= MAX_IMAGE_BYTES:
        image = prepare_image(path.read_bytes(), strip_metadata=strip_metadata)
        return Outgoing(path, name, image.content_type, len(image.data), image, image.notes)
    notes: tuple[str, ...] = ()
    if sniffed is not None:
        notes = (f"too large ({human_size(size)}) to remove its metadata; sent as it is",)
    elif guessed and guessed.startswith("image/"):
        # Named like an image but not one of those prepare_image reads (HEIC, SVG, ...), or
        # not an image at all: never claim a type the bytes do not bear out.
        notes = ("its metadata (a location, for one) could not be checked; sent as it is",)
        if guessed in _IMAGE_TYPES:
            guessed = None
    content_type = sniffed or guessed or "application/octet-stream"
    return Outgoing(path, name, content_type, size, None, notes if strip_metadata else ())


def describe(pointer: AttachmentPointer) -> dict[str, Any]:
    """What the message body says about an attachment (no key: that is sealed apart)."""
    out: dict[str, Any] = {
        "file_name": safe_file_name(pointer.file_name),
        "content_type": pointer.content_type,
        "size": pointer.size,
        "blob_id": pointer.blob_id,
    }
    if pointer.width and pointer.height:
        out["width"], out["height"] = pointer.width, pointer.height
    if pointer.thumbnail:
        out["thumbnail"] = base64.b64encode(pointer.thumbnail).decode()
    return out


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _local_id() -> str:
    # Hex, so that no name starts with "-" for the shell tools that list the directory;
    # 32 characters also fit AttachmentPointer's blob_id, which names the local copy.
    return secrets.token_hex(16)


def create_file(directory: Path, suffix: str) -> Path:
    """A new empty file only this user can read."""
    path = directory / f".{secrets.token_hex(8)}{suffix}"
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return path


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[IO[bytes]]:
    with path.open("r+b") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def encrypt_twice(out: Outgoing, directory: Path) -> tuple[EncryptedBlob, Path, AttachmentPointer]:
    """One read of the file: the upload's ciphertext into a spool file (what is sent
    matches the local copy even if the file changes meanwhile), the local copy into
    ``media/``. Returns the upload's blob, the spool path and the local pointer."""
    sending, keeping = Encryptor(out.size), Encryptor(out.size)
    local_id = _local_id()
    spool, part = create_file(directory, ".upload"), create_file(directory, ".part")
    try:
        src: IO[bytes] = io.BytesIO(out.image.data) if out.image else out.path.open("rb")
        with src, spool.open("r+b") as up, _writing(part) as keep:
            left = out.size
            while left:
                data = src.read(min(READ_BYTES, left))
                if not data:
                    raise AttachmentError(f"{out.path} became shorter while it was read")
                left -= len(data)
                up.write(sending.update(data))
                keep.write(keeping.update(data))
            up.write(sending.finalize())
            keep.write(keeping.finalize())
        os.replace(part, directory / local_id)
    except BaseException:
        remove(spool)
        remove(part)
        raise
    local = AttachmentPointer(
        blob_id=local_id, key=keeping.key, digest=keeping.digest, size=out.size
    )
    return sending.result(), spool, local


def reencrypt(src: Path, pointer: AttachmentPointer, directory: Path) -> AttachmentPointer:
    """Check a downloaded blob, decrypt it and encrypt it under a local key into
    ``media/``. Raises IntegrityError with nothing left behind.

    attachments.py's own digest check and chunk decryptor are used here, rather than
    decrypt_file, so that the plaintext goes from the blob to the local encryption without
    ever being written to disk."""
    keeping = Encryptor(pointer.size)
    local_id = _local_id()
    part = create_file(directory, ".part")
    try:
        with src.open("rb") as blob, _writing(part) as keep:
            _check_digest(blob, pointer)
            blob.seek(0)
            for plain in _decrypt_chunks(blob, pointer):
                keep.write(keeping.update(plain))
            keep.write(keeping.finalize())
        os.replace(part, directory / local_id)
    except BaseException:
        remove(part)
        raise
    return AttachmentPointer(
        blob_id=local_id,
        key=keeping.key,
        digest=keeping.digest,
        size=pointer.size,
        content_type=pointer.content_type,
    )
