"""Attachments in the client: send a file, fetch what arrives, keep both encrypted.

``Client.attachments`` is an ``Attachments``; ``Client.send_file`` calls its ``send``.

Sending: the type is sniffed (magic bytes for images, else the file name); images go
through ``prepare_image`` (location and other metadata stripped, thumbnail), and what it
could not do becomes an ``attachment_note`` incident. The file is read once and encrypted
twice: for the upload under a fresh key that travels in the pointer, and for the local
copy under a fresh key that never leaves this device. The upload resumes after dropped
connections (``blobs.py``); only once the server holds the whole blob is the message
stored and queued, so a failed upload sends nothing.

Receiving: ``Client._store_delivery`` stores ``incoming()``'s description in the message
body, in the same transaction as the ratchet state. The blob is fetched afterwards, once
the message is stored and acknowledged, in a background task: a slow download never holds
up the frame pump. It is checked against the pointer's digest and re-encrypted under a
local key as it is decrypted, so the plaintext never touches the disk. An expired or
altered blob leaves the message with ``state: "failed"`` and an ``attachment_failed``
incident; a server out of reach leaves it ``pending`` for the next ``wait()``.

Local copies live in ``PROFILE/media/<random id>``, in scheme 1 of ``attachments.py``;
the key, digest and size are sealed under the profile key inside the message body::

    "attachment": {"file_name", "content_type", "size", "blob_id",
                   "width"?, "height"?, "thumbnail"? (base64 JPEG),
                   "state": "pending" | "ready" | "failed", "error"? (when failed),
                   "pointer"? (pending: the received pointer, sealed),
                   "local"? (ready: the local copy's pointer, sealed)}

Errors: ``attachments.AttachmentError`` and its subclasses (``IntegrityError``,
``blobs.TransferError``, ``blobs.BlobTooLarge``, ``blobs.BlobGone``); contacts and
connections fail as for text (``UnknownContact``, ``IdentityChanged``, ``NotConnected``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, select, update

from baat.client import schema as s
from baat.client.attachments import (
    AttachmentError,
    AttachmentPointer,
    IntegrityError,
    InvalidPointer,
    ciphertext_size,
    decode_pointer,
    decrypt_file,
    encode_pointer,
    make_pointer,
    safe_file_name,
)
from baat.client.blobs import BlobClient, BlobGone, BlobTooLarge, Progress, TransferError
from baat.client.core import Content, IdentityChanged, Incident
from baat.client.media_files import (
    create_file,
    describe,
    encrypt_twice,
    human_size,
    inspect_file,
    reencrypt,
    remove,
)
from baat.client.store import StoredMessage

if TYPE_CHECKING:
    from baat.client.core import ClientCore
    from baat.proto import Deliver

__all__ = ["Attachments", "Progress"]

log = logging.getLogger("baat.client.media")

MEDIA_DIR = "media"
PARALLEL_DOWNLOADS = 3


class Attachments:
    """The attachment half of a ``Client``: sending, background fetching, local copies."""

    def __init__(self, client: ClientCore) -> None:
        self.client = client
        # Background fetches by (sender account, sender device, message id).
        self._tasks: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        # Fetches past the download, storing what the server has already forgotten:
        # stop() lets these finish rather than lose the file.
        self._finishing: set[asyncio.Task[Any]] = set()
        self._slots: asyncio.Semaphore | None = None
        # Told (message, bytes done, bytes in all) as background fetches download.
        self.progress_listeners: list[Callable[[StoredMessage, int, int], None]] = []

    @property
    def directory(self) -> Path:
        return self.client.store.directory / MEDIA_DIR

    def _media_dir(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.directory

    def _blobs(self) -> BlobClient:
        return BlobClient(self.client.info.server_url, self.client.credentials)

    def _where(self, m: StoredMessage | Deliver, kind: str) -> str:
        # Binds a sealed value to its message: it cannot be moved to another undetected.
        return f"attachments.{m.sender_account}.{m.sender_device}.{m.message_id}.{kind}"

    def _seal(self, m: StoredMessage | Deliver, kind: str, value: bytes) -> str:
        return base64.b64encode(self.client.store.sealer.seal(self._where(m, kind), value)).decode()

    def _open(self, m: StoredMessage, kind: str, value: str) -> bytes:
        return self.client.store.sealer.open(self._where(m, kind), base64.b64decode(value))

    def _incident(self, kind: str, account_id: str, detail: str) -> None:
        self.client._incident(Incident(kind, account_id, detail))

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        username: str,
        path: Path,
        caption: str | None = None,
        progress: Progress | None = None,
        *,
        strip_metadata: bool = True,
    ) -> str:
        """Upload ``path`` encrypted, then store and queue a message carrying its pointer
        and ``caption``; returns the message id. ``progress(done, total)`` follows the
        upload in ciphertext bytes.

        Raises:
            AttachmentError: no such file or unreadable.
            BlobTooLarge: over the server's limit; nothing is sent.
            TransferError: the upload failed after retries; nothing is sent.
            UnknownContact, IdentityChanged, NotConnected: as for ``send_text``.
        """
        client = self.client
        out = await asyncio.to_thread(inspect_file, Path(path), strip_metadata)
        name = username.strip().casefold()
        contact = client.store.contact_by_name(name)
        if contact is not None and contact.identity_changed:
            raise IdentityChanged(
                f"{contact.username}'s safety number changed; compare it and run 'baat verify'"
            )
        # Always asked, known contact or not: the blob's fetch count is their device count.
        account_id, canonical, devices = await client.lookup(name)
        if contact is None:
            client._names[account_id] = canonical
        else:
            canonical = contact.username
        for note in out.notes:
            self._incident("attachment_note", account_id, f"{out.file_name}: {note}")
        directory = self._media_dir()
        pointer, local = await self._upload(out, len(devices), directory, progress)
        text = caption or ""
        now = int(time.time() * 1000)
        content = Content(
            v=1,
            type="file",
            sender_name=client.info.username,
            sent_at=now,
            text=text,
            attachment=encode_pointer(pointer),
        )
        message = StoredMessage(
            chat=account_id,
            sender_account=client.info.account_id,
            sender_device=client.info.device_id,
            message_id=secrets.token_hex(16),
            direction="out",
            status="sending",
            body={"text": text, "peer": canonical, "sender": client.info.username},
            sent_at=now,
            received_at=now,
        )
        return await self._queue(message, content, account_id, pointer, local, directory)

    async def send_to_group(
        self,
        chat: str,
        path: Path,
        caption: str | None = None,
        progress: Progress | None = None,
        *,
        strip_metadata: bool = True,
    ) -> str:
        """As ``send``, into the group chat ``chat``: the blob may be fetched once by every
        device of every other member (and our other devices), and the message goes out
        with the group's sender key like any group message (docs/GROUPS.md §5).

        Raises:
            AttachmentError: no such file, unreadable, or not a member of ``chat``.
            BlobTooLarge, TransferError, NotConnected: as for ``send``.
        """
        client = self.client
        me, my_device = client.info.account_id, client.info.device_id
        with client.store.transaction() as tx:
            members = client.groups.members_in(tx, chat)
            name = client.groups.name_of(tx, chat)
        if me not in members or name is None:
            raise AttachmentError(f"not a member of the group {chat!r}")
        out = await asyncio.to_thread(inspect_file, Path(path), strip_metadata)
        readers = 0
        for member in members:
            devices = await client.devices.devices_of(member)
            readers += sum(1 for d in devices if (member, d) != (me, my_device))
        directory = self._media_dir()
        pointer, local = await self._upload(out, readers, directory, progress)
        text = caption or ""
        now = int(time.time() * 1000)
        timer = int(client.store.setting(f"timer:{chat}", 0))
        content = Content(
            v=1,
            type="file",
            sender_name=client.info.username,
            sent_at=now,
            text=text,
            attachment=encode_pointer(pointer),
            to=chat,
            expire=timer,
        )
        message = StoredMessage(
            chat=chat,
            sender_account=me,
            sender_device=my_device,
            message_id=secrets.token_hex(16),
            direction="out",
            status="sending",
            body={
                "text": text,
                "peer": name,
                "group": name,
                "sender": client.info.username,
                "recipients": [m for m in members if m != me],
            },
            sent_at=now,
            received_at=now,
        )
        return await self._queue(message, content, chat, pointer, local, directory)

    async def _upload(
        self, out: Any, readers: int, directory: Path, progress: Progress | None
    ) -> tuple[Any, Any]:
        """Encrypt ``out`` twice (for the wire and for our own copy), upload the wire copy for
        ``readers`` fetches; returns the pointer and our local copy's key record."""
        async with self._blobs() as blobs:
            try:
                blob_id = await blobs.create(ciphertext_size(out.size), max(1, readers))
            except BlobTooLarge as exc:
                raise BlobTooLarge(
                    f"{out.file_name} is too large to send ({human_size(out.size)}): {exc}"
                ) from exc
            sent, spool, local = await asyncio.to_thread(encrypt_twice, out, directory)
            try:
                with spool.open("rb") as f:  # not in a thread: see fetch()
                    await blobs.upload(blob_id, f, sent.ciphertext_size, progress)
            except BaseException:
                remove(directory / local.blob_id)
                raise
            finally:
                remove(spool)
        pointer = make_pointer(blob_id, sent, out.content_type, out.file_name, out.image)
        return pointer, local

    async def _queue(
        self,
        message: StoredMessage,
        content: Content,
        to: str,
        pointer: Any,
        local: Any,
        directory: Path,
    ) -> str:
        """Store ``message`` with its attachment and queue ``content`` to ``to`` in one
        transaction; our local copy goes if that fails. Returns the message id."""
        client = self.client
        message.body["attachment"] = {
            **describe(pointer),
            "state": "ready",
            "local": self._seal(message, "local", encode_pointer(local)),
        }
        try:
            with client.store.transaction() as tx:
                client.store.add_message(tx, message)
                client.store.queue_out(tx, message.message_id, to, _encode(content))
        except BaseException:
            remove(directory / local.blob_id)
            raise
        if client.transport is not None:
            await client.flush_outbox()
        return message.message_id

    # -- receiving -------------------------------------------------------------------------

    def incoming(self, d: Deliver, content: Content) -> dict[str, Any]:
        """Fields for the body of a message just decrypted: {} without an attachment."""
        if content.attachment is None:
            return {}
        try:
            pointer = decode_pointer(content.attachment)
        except InvalidPointer as exc:
            self._incident(
                "attachment_failed",
                d.sender_account,
                f"the attachment of message {d.message_id} is unreadable: {exc}",
            )
            failed = {"file_name": "attachment", "content_type": "application/octet-stream"}
            return {"attachment": {**failed, "size": 0, "state": "failed", "error": str(exc)}}
        sealed = self._seal(d, "pointer", content.attachment)
        return {"attachment": {**describe(pointer), "state": "pending", "pointer": sealed}}

    def delivered(self, message: StoredMessage) -> None:
        """Start fetching the attachment of a message stored and acknowledged just now."""
        if _state(message) == "pending" and message.direction == "in":
            self._schedule(message)

    def pending(self) -> list[StoredMessage]:
        """Received messages whose attachment is still to be fetched."""
        return [
            m
            for m in self.client.store.messages()
            if m.direction == "in" and _state(m) == "pending"
        ]

    async def wait(self) -> None:
        """Fetch every pending attachment (those left by earlier runs too) and wait until
        all fetches have finished; failures are incidents."""
        for m in self.pending():
            self._schedule(m)
        while busy := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.gather(*busy, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel fetches still downloading (they stay pending); let those storing finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            if task not in self._finishing:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def fetch(
        self, message: StoredMessage, progress: Progress | None = None
    ) -> StoredMessage:
        """Fetch, check and store one attachment now; returns the message as stored.

        Raises:
            BlobGone: expired or already fetched (the message is marked failed).
            IntegrityError: altered on the way (the message is marked failed).
            TransferError: unreachable; it stays pending.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(PARALLEL_DOWNLOADS)
        async with self._slots:
            current = self._load(message)
            att = current.body.get("attachment") or {}
            if att.get("state") != "pending":
                return current
            pointer = decode_pointer(self._open(current, "pointer", att["pointer"]))
            directory = self._media_dir()
            download = create_file(directory, ".download")
            try:
                try:
                    # Opened here, not in a thread: a cancellation while a thread opens
                    # it would leave the file open.
                    async with self._blobs() as blobs:
                        with download.open("r+b") as f:
                            await blobs.download(pointer.blob_id, f, progress)
                except BlobGone as exc:
                    self._settle(current, error=str(exc))
                    raise
                task = asyncio.current_task()
                if task is not None:
                    self._finishing.add(task)
                try:
                    local = await asyncio.to_thread(reencrypt, download, pointer, directory)
                except IntegrityError as exc:
                    self._settle(current, error=f"refused, the file was altered: {exc}")
                    raise
                finally:
                    self._finishing.discard(task)
                return self._settle(current, local=local)
            finally:
                remove(download)

    def _schedule(self, message: StoredMessage) -> None:
        key = (message.sender_account, message.sender_device, message.message_id)
        if key in self._tasks and not self._tasks[key].done():
            return
        task = asyncio.create_task(self._fetch_in_background(message))
        self._tasks[key] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(key, None) if self._tasks.get(key) is t else None
        )

    async def _fetch_in_background(self, message: StoredMessage) -> None:
        def progress(done: int, total: int) -> None:
            for listener in self.progress_listeners:
                listener(message, done, total)

        try:
            await self.fetch(message, progress)
        except (BlobGone, IntegrityError):
            pass  # recorded on the message and reported by _settle
        except TransferError as exc:
            name = (message.body.get("attachment") or {}).get("file_name", "attachment")
            self._incident(
                "attachment_delayed",
                message.sender_account,
                f"{name} from {message.body.get('sender')} could not be fetched yet ({exc}); "
                "it is tried again on the next sync",
            )
        except Exception:  # a background task has nobody else to tell
            log.exception("fetching the attachment of %s failed", message.message_id)

    def _settle(
        self,
        m: StoredMessage,
        *,
        local: AttachmentPointer | None = None,
        error: str | None = None,
    ) -> StoredMessage:
        """Record the outcome of a fetch; returns the message as now stored."""
        try:
            with self.client.store.transaction() as tx:
                row_id, body = self._row(tx, m)
                att = dict(body["attachment"])
                if att.get("state") != "pending":  # another process got there first
                    if local is not None:
                        remove(self.directory / local.blob_id)
                    return dataclasses.replace(m, body=body, row_id=row_id)
                del att["pointer"]  # the blob is gone from the server: its key is no use
                if local is not None:
                    att.update(state="ready", local=self._seal(m, "local", encode_pointer(local)))
                else:
                    att.update(state="failed", error=error)
                body["attachment"] = att
                sealed = self.client.store.sealer.seal(
                    f"messages.{m.message_id}", msgspec.json.encode(body)
                )
                tx.execute(
                    update(s.messages).where(s.messages.c.id == row_id).values(body_blob=sealed)
                )
        except BaseException:
            if local is not None:
                remove(self.directory / local.blob_id)
            raise
        updated = dataclasses.replace(m, body=body, row_id=row_id)
        if error is not None:
            self._incident(
                "attachment_failed",
                m.sender_account,
                f"{att['file_name']} from {body.get('sender')} could not be received: {error}",
            )
        for listener in self.client.attachment_listeners:
            listener(updated)
        return updated

    def _row(self, tx: Connection, m: StoredMessage) -> tuple[int, dict[str, Any]]:
        q = select(s.messages.c.id, s.messages.c.body_blob)
        if m.row_id:
            q = q.where(s.messages.c.id == m.row_id)
        else:
            q = q.where(
                s.messages.c.chat == m.chat,
                s.messages.c.sender_account == m.sender_account,
                s.messages.c.sender_device == m.sender_device,
                s.messages.c.message_id == m.message_id,
            )
        row = tx.execute(q).one()
        body = msgspec.json.decode(
            self.client.store.sealer.open(f"messages.{m.message_id}", row.body_blob)
        )
        return int(row.id), body

    def _load(self, m: StoredMessage) -> StoredMessage:
        with self.client.store.transaction() as tx:
            row_id, body = self._row(tx, m)
        return dataclasses.replace(m, body=body, row_id=row_id)

    # -- local copies ----------------------------------------------------------------------

    def find(self, message_id: str) -> StoredMessage:
        """The message ``message_id`` (sent or received) that carries an attachment.

        Raises:
            AttachmentError: no such message, or it has no attachment.
        """
        found = [m for m in self.client.store.messages() if m.message_id == message_id]
        if not found:
            raise AttachmentError(f"no message {message_id}")
        # Imported chats keep their files elsewhere, under an "attachment" of another shape.
        with_file = [m for m in found if _state(m) is not None]
        if not with_file:
            raise AttachmentError(f"message {message_id} has no attachment sent with Baat")
        return with_file[0]

    def save(self, message: StoredMessage, dst: Path) -> Path:
        """Decrypt the local copy of ``message``'s attachment to ``dst`` (replaced if there).

        Raises:
            AttachmentError: not here (still pending, or failed), or the copy is damaged.
        """
        att = message.body.get("attachment") or {}
        state = att.get("state")
        if state != "ready":
            why = att.get("error") or "it has not been fetched yet; run 'baat sync'"
            raise AttachmentError(f"{att.get('file_name', 'the attachment')} is not here: {why}")
        local = decode_pointer(self._open(message, "local", att["local"]))
        try:
            return decrypt_file(self.directory / local.blob_id, dst, local)
        except FileNotFoundError as exc:
            raise AttachmentError(f"the local copy of {att['file_name']} is missing") from exc

    def save_new(self, message: StoredMessage, directory: Path) -> Path:
        """Save into ``directory`` under the attachment's safe name, never over a file that
        is there: ``name-1.ext``, ``name-2.ext`` and so on."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = safe_file_name((message.body.get("attachment") or {}).get("file_name"))
        stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        for n in range(10_000):
            candidate = directory / (name if n == 0 else f"{stem}-{n}{dot}{ext}")
            try:
                # Claimed atomically, so that two syncs never write the same name.
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
            try:
                return self.save(message, candidate)
            except BaseException:
                remove(candidate)
                raise
        raise AttachmentError(f"too many files named {name} in {directory}")


def _state(m: StoredMessage) -> str | None:
    att = m.body.get("attachment")
    return att.get("state") if isinstance(att, dict) else None


def _encode(content: Content) -> bytes:
    return msgspec.msgpack.encode(content)
