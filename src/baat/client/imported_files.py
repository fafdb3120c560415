"""Files of imported chats, shown like files sent with Baat (docs/IMPORT.md, "In Baat").

An imported message keeps its file in ``imported_media`` (sealed chunks, see
``client.importing``) and describes it in the body as ``attachment: {name, status, size,
media_type, media, chunks}``: another shape than a Baat attachment, which has a ``state``
and a sealed local copy. This module gives the CLI and the web app one view of both:
the same summary keys (``file_name``, ``content_type``, ``size``, ``state``) and the bytes.

``state`` is ``ready`` when the export held the file and it is stored, otherwise the
importer's status (``omitted``: exported without media, ``not-in-export``: named but absent).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from baat.client.attachments import safe_file_name
from baat.client.importing import SOURCE, read_media
from baat.client.store import Store, StoredMessage

# WhatsApp's own formats that ``mimetypes`` does not know everywhere.
_TYPES = {"opus": "audio/ogg", "webp": "image/webp", "vcf": "text/vcard", "heic": "image/heic"}


class NotImported(LookupError):
    """The message is not an imported one with a file."""


def is_imported_file(m: StoredMessage) -> bool:
    return m.body.get("source") == SOURCE and isinstance(m.body.get("attachment"), dict)


def content_type(name: str | None) -> str:
    if not name:
        return "application/octet-stream"
    ext = name.rpartition(".")[2].lower()
    return _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def summary(m: StoredMessage) -> dict[str, Any] | None:
    """The summary keys of a Baat attachment for an imported file; ``None`` without one."""
    if not is_imported_file(m):
        return None
    att: dict[str, Any] = m.body["attachment"]
    stored = bool(att.get("media"))
    name = att.get("name") or f"{att.get('media_type') or 'media'} (not in the export)"
    return {
        "file_name": name,
        "content_type": content_type(att.get("name")),
        "size": int(att.get("size") or 0),
        "state": "ready" if stored else str(att.get("status") or "omitted"),
        "imported": True,
    }


def read(store: Store, m: StoredMessage) -> bytes:
    """The bytes of an imported file.

    Raises:
        NotImported: ``m`` has no stored imported file.
        CorruptValue: a stored chunk is missing or altered.
    """
    att = m.body.get("attachment") if is_imported_file(m) else None
    if not att or not att.get("media"):
        raise NotImported(f"message {m.message_id} has no stored imported file")
    return b"".join(read_media(store, str(att["media"]), int(att.get("chunks") or 0)))


def save(store: Store, m: StoredMessage, dst: Path) -> Path:
    """Write an imported file to ``dst`` (a file, replaced) or into a directory under its
    own name, never over a file there.

    Raises:
        NotImported, CorruptValue: as ``read``; OSError: ``dst`` cannot be written.
    """
    data = read(store, m)
    if dst.is_dir():
        name = safe_file_name(m.body["attachment"].get("name"))
        stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        for n in range(10_000):
            candidate = dst / (name if n == 0 else f"{stem}-{n}{dot}{ext}")
            if not candidate.exists():
                dst = candidate
                break
    dst.write_bytes(data)
    return dst
