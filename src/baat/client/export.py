"""Writing everything a profile holds to an open format other software can read.

A zip of JSON Lines plus the media files, described field by field in docs/EXPORT.md. It is
for reading elsewhere, not for restoring Baat (that is ``baat.client.backup``), so it holds
no keys, prekeys, ratchet state or credentials: only chats, messages, contacts and files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, cast

import msgspec
from sqlalchemy import select

from baat import __version__
from baat.client import schema as s
from baat.client.attachments import AttachmentError, safe_file_name
from baat.client.importing import imported_chats, read_media
from baat.client.store import Store

FORMAT = "baat-export"
VERSION = 1

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases ``messages`` (records) and ``media`` (files)."""


class ExportError(Exception):
    """The export cannot be written (the file exists, the disk is full)."""


@dataclass
class ExportCounts:
    chats: int = 0
    messages: int = 0
    contacts: int = 0
    media_files: int = 0
    media_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # files named but not readable


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass
class _Chat:
    id: str
    messages: int = 0
    first: int | None = None
    last: int | None = None
    peer: str | None = None

    def count(self, sent_at: int, peer: str | None) -> None:
        self.messages += 1
        self.first = sent_at if self.first is None else min(self.first, sent_at)
        self.last = sent_at if self.last is None else max(self.last, sent_at)
        self.peer = self.peer or peer


def write_export(store: Store, out: Path, progress: Progress | None = None) -> ExportCounts:
    """Write the export to ``out`` (which must not exist) and return what it holds.

    The zip is written beside ``out`` under a temporary name and renamed at the end, so a
    failure never leaves a partial export behind.

    Raises:
        ExportError: ``out`` exists or cannot be written.
        CorruptValue: a stored value does not authenticate.
    """
    if out.exists():
        raise ExportError(f"{out} already exists; choose another file name")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            counts = _write(store, zf, progress)
        os.chmod(tmp, 0o600)  # every chat in clear: readable by the owner only
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return counts


def _line(f: IO[bytes], record: dict[str, Any]) -> None:
    f.write(msgspec.json.encode(record))
    f.write(b"\n")


def _write(store: Store, zf: zipfile.ZipFile, progress: Progress | None) -> ExportCounts:
    counts = ExportCounts()
    contacts = store.contacts()
    names = {c.account_id: c.username for c in contacts}
    imported = {c.id: c for c in imported_chats(store)}
    with zf.open("contacts.jsonl", "w") as f:
        for c in contacts:
            _line(
                f,
                {
                    "account_id": c.account_id,
                    "username": c.username,
                    "verified": c.verified,
                    "identity_changed": c.identity_changed,
                },
            )
            counts.contacts += 1
    with store.transaction() as tx:
        rows = tx.execute(
            select(s.messages).order_by(s.messages.c.chat, s.messages.c.sent_at, s.messages.c.id)
        ).all()
    chats: dict[str, _Chat] = {}  # by conversation
    origins: dict[str, _Chat] = {}  # imported messages by imported chat
    media: dict[str, _Media] = {}  # by path in the zip
    total = len(rows)
    with zf.open("messages.jsonl", "w") as f:
        for done, r in enumerate(rows, 1):
            body = msgspec.json.decode(store.sealer.open(f"messages.{r.message_id}", r.body_blob))
            _line(f, _message_record(r, body, imported, media))
            chats.setdefault(r.chat, _Chat(r.chat)).count(r.sent_at, body.get("peer"))
            if r.sender_account in imported:
                origins.setdefault(r.sender_account, _Chat(r.chat)).count(r.sent_at, None)
            if progress is not None and (done % 2000 == 0 or done == total):
                progress("messages", done, total)
    counts.messages = total
    with zf.open("chats.jsonl", "w") as f:
        for chat in chats.values():
            if chat.id in imported:
                continue  # written below with its import record
            _line(
                f,
                {
                    "id": chat.id,
                    "kind": "native",
                    "name": names.get(chat.id) or chat.peer or chat.id,
                    "contact": chat.id if chat.id in names else None,
                    **_span(chat),
                },
            )
            counts.chats += 1
        for ic in imported.values():
            d = ic.details
            _line(
                f,
                {
                    "id": ic.id,
                    "kind": "imported",
                    "name": ic.name,
                    "source": ic.source,
                    "messages_in": ic.target_chat,
                    "imported_at": iso(ic.imported_at * 1000),
                    "me": d.get("me"),
                    "mapped": d.get("map", {}),
                    "authors": d.get("authors", []),
                    "imports": [
                        {**i, "at": iso(int(i.get("at", 0)) * 1000)} for i in d.get("imports", [])
                    ],
                    **_span(origins.get(ic.id, _Chat(ic.id))),
                },
            )
            counts.chats += 1
    _write_media(store, zf, media, counts, progress)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": f"baat {__version__}",
        "account": None
        if store.info is None
        else {
            "username": store.info.username,
            "account_id": store.info.account_id,
            "server": store.info.server_url,
        },
        "counts": {
            "chats": counts.chats,
            "messages": counts.messages,
            "contacts": counts.contacts,
            "media_files": counts.media_files,
            "media_bytes": counts.media_bytes,
            "media_missing": len(counts.missing),
        },
        "files": ["manifest.json", "chats.jsonl", "messages.jsonl", "contacts.jsonl", "media/"],
    }
    zf.writestr("manifest.json", msgspec.json.format(msgspec.json.encode(manifest)))
    return counts


def _span(chat: _Chat) -> dict[str, Any]:
    return {
        "messages": chat.messages,
        "first_message_at": None if chat.first is None else iso(chat.first),
        "last_message_at": None if chat.last is None else iso(chat.last),
    }


def _message_record(
    r: Any,
    body: dict[str, Any],
    imported: dict[str, Any],
    media: dict[str, _Media],
) -> dict[str, Any]:
    from_import = r.status == "imported" and r.sender_account in imported
    record: dict[str, Any] = {
        "chat": r.chat,
        "id": r.message_id,
        "direction": r.direction,
        "status": r.status,
        "sent_at": iso(r.sent_at),
        "received_at": iso(r.received_at),
        "sender": body.get("sender"),
        "sender_account": None if from_import else r.sender_account,
        "kind": body.get("kind", "text"),
        "text": body.get("text", ""),
    }
    if from_import:
        record["imported"] = {
            "chat": r.sender_account,
            "source": body.get("source"),
            "author": body.get("author"),
            "header": body.get("header"),
            "line": body.get("line"),
        }
    for key in ("edited", "poll", "location", "call", "system"):
        if key in body:
            record[key] = body[key]
    att = body.get("attachment")
    if isinstance(att, dict):
        record["attachment"] = _attachment(r, att, media)
    return record


def _attachment(r: Any, att: dict[str, Any], media: dict[str, _Media]) -> dict[str, Any]:
    """Imported files (``imported_media``) and files sent or received in Baat (kept by
    ``baat.client.media`` under ``media/``) described alike."""
    path = None
    name = att.get("name", att.get("file_name"))
    if att.get("media"):
        path = f"media/{att['media']}-{safe_file_name(name, 'file')}"
        media[path] = _Media(imported=(att["media"], int(att.get("chunks", 0))))
    elif att.get("state") == "ready" and att.get("local"):
        path = f"media/{r.message_id}-{safe_file_name(name, 'file')}"
        media[path] = _Media(native=(r.sender_account, r.sender_device, r.message_id, att))
    return {
        "name": name,
        "status": att.get("status", att.get("state")),
        "media_type": att.get("media_type"),
        "content_type": att.get("content_type"),
        "size": att.get("size"),
        "file": path,
    }


@dataclass(frozen=True)
class _Media:
    imported: tuple[str, int] | None = None  # media id, chunks
    native: tuple[str, int, str, dict[str, Any]] | None = None  # the message and its body


def _native_file(store: Store, media: _Media, dst: Path) -> None:
    """Decrypt a Baat attachment's local copy through ``baat.client.media``, which owns
    its format; it needs nothing of a client but the store."""
    from baat.client.media import Attachments
    from baat.client.store import StoredMessage

    assert media.native is not None
    account, device, message_id, att = media.native
    message = StoredMessage(account, account, device, message_id, "", "", {"attachment": att}, 0, 0)
    Attachments(cast(Any, SimpleNamespace(store=store))).save(message, dst)


def _write_media(
    store: Store,
    zf: zipfile.ZipFile,
    media: dict[str, _Media],
    counts: ExportCounts,
    progress: Progress | None,
) -> None:
    # Files are compressed already (photos, video, voice), so they are stored as they are.
    total = len(media)
    with tempfile.TemporaryDirectory(prefix="baat-export-") as tmp:
        for done, (path, item) in enumerate(media.items(), 1):
            info = zipfile.ZipInfo(path, _now_tuple())
            if item.imported is not None:
                with zf.open(info, "w", force_zip64=True) as f:
                    for piece in read_media(store, *item.imported):
                        f.write(piece)
                        counts.media_bytes += len(piece)
            else:
                plain = Path(tmp, "file")
                try:
                    _native_file(store, item, plain)
                except (ImportError, AttachmentError) as exc:
                    counts.missing.append(f"{path}: {exc}")
                    continue
                with plain.open("rb") as src, zf.open(info, "w", force_zip64=True) as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                counts.media_bytes += plain.stat().st_size
                plain.unlink()
            counts.media_files += 1
            if progress is not None:
                progress("media", done, total)


def _now_tuple() -> tuple[int, int, int, int, int, int]:
    now = datetime.now()
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)
