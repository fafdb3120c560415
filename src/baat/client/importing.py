"""Putting a parsed WhatsApp export into the local store (docs/IMPORT.md, docs/EXPORT.md).

The parser (``baat.importers.whatsapp``) does every dialect question; this module only
decides where each record goes and writes it, on the device, never to the network.

- An imported chat has an id ``wa:`` + a SHA-256 prefix of its name and a row in
  ``imported_chats`` (name, who is who, and every import's dialect, zone and summary,
  encrypted). Its messages go into ``messages`` with status ``imported``,
  ``sender_account`` the chat's id, ``sender_device`` 0 and ``message_id`` the parser's
  import key: the ``msg_once`` unique index then refuses any record a second time, so an
  import of the same or an overlapping export adds only what is new.
- The conversation (``messages.chat``) is the chat's id, or a contact's account id when
  every author other than ``me`` is mapped to that one contact: a one-to-one WhatsApp chat
  then joins the Baat conversation with the same person.
- Files from the zip go into ``imported_media`` in 1 MiB chunks, each sealed with the
  store key and bound to its media id and index; the message body (also sealed) holds the
  media id and the chunk count, so a chunk cannot be swapped, moved or dropped unnoticed.
- Everything happens in one transaction: a damaged zip or any other failure half-way
  leaves the store as it was.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from baat.client import schema as s
from baat.client.store import Contact, CorruptValue, Store, StoredMessage
from baat.importers.whatsapp import (
    AttachmentStatus,
    ChatImport,
    CorruptZip,
    ImportSummary,
    MessageKind,
    ParsedMessage,
    SystemEvent,
    WhatsAppExport,
)

SOURCE = "whatsapp"
STATUS = "imported"
MEDIA_CHUNK = 1 << 20
# Rows per executemany: large enough to amortise the call, small enough for a lively bar.
BATCH = 5000
# Media rows are flushed once this many bytes wait, so a large zip never sits in memory.
MEDIA_FLUSH_BYTES = 8 << 20
UNPARSED_KEPT = 200

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases ``media`` (bytes) and ``messages`` (records)."""


class ImportProblem(ValueError):
    """The import cannot go ahead as asked (unknown author, not a contact, no chat name)."""


def chat_id_for(name: str) -> str:
    return "wa:" + hashlib.sha256(name.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ImportResult:
    chat_id: str
    chat_name: str
    target_chat: str
    added: int
    already_present: int
    media_stored: int
    media_bytes: int
    attachments_completed: int  # stored earlier without their file; the file is here now
    reattributed: int  # earlier messages whose direction or sender changed (--me, --map)


@dataclass(frozen=True)
class ImportedChat:
    id: str
    source: str
    name: str
    target_chat: str
    imported_at: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _People:
    """Who is who: ``me`` and authors mapped to contacts (account id and username)."""

    me: str | None
    mapped: dict[str, tuple[str, str]]
    authors: list[str]
    own_name: str | None
    chat_name: str

    def target(self, chat_id: str) -> str:
        others = {a for a in self.authors if a != self.me}
        accounts = {self.mapped[a][0] for a in others if a in self.mapped}
        if others and len(accounts) == 1 and others <= self.mapped.keys():
            return accounts.pop()
        return chat_id

    def peer(self, target: str, chat_id: str) -> str:
        if target == chat_id:
            return self.chat_name
        return next(u for a, u in self.mapped.values() if a == target)

    def sender(self, author: str | None) -> str:
        if author is None:
            return ""
        if author == self.me:
            return self.own_name or author
        return self.mapped[author][1] if author in self.mapped else author


def check_authors(chat: ChatImport, me: str | None, mapping: Mapping[str, str]) -> None:
    """Raises: ImportProblem: ``me`` or a mapped author wrote nothing in the export."""
    authors = set(chat.summary.authors)
    shown = ", ".join(repr(a) for a in chat.summary.authors[:12]) or "none"
    for author in [me, *mapping] if me is not None else list(mapping):
        if author not in authors:
            raise ImportProblem(f"{author!r} wrote nothing in this export (authors: {shown})")
    if me is not None and me in mapping:
        raise ImportProblem(f"{me!r} cannot be both --me and mapped to a contact")


def resolve_mapping(store: Store, mapping: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Authors to (account id, username) of contacts.

    Raises:
        ImportProblem: a username that is not a contact.
    """
    mapped = {}
    for author, username in mapping.items():
        contact: Contact | None = store.contact_by_name(username.strip().casefold())
        if contact is None:
            raise ImportProblem(
                f"{username!r} is not one of your contacts; exchange a message with them first"
            )
        mapped[author] = (contact.account_id, contact.username)
    return mapped


def import_chat(
    store: Store,
    export: WhatsAppExport,
    chat: ChatImport,
    *,
    me: str | None = None,
    mapping: Mapping[str, str] | None = None,
    file_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a parsed export into the store; see the module documentation.

    ``me`` is the author whose messages are outgoing; ``mapping`` maps authors to contacts'
    usernames. Both are remembered for the chat, so a later import needs neither.

    Raises:
        ImportProblem: the chat has no name, or ``me``/``mapping`` do not fit.
        CorruptZip, AttachmentNotInExport: a file could not be read; nothing was written.
    """
    if not chat.chat_name:
        raise ImportProblem("the chat has no name: pass one (--chat NAME)")
    check_authors(chat, me, mapping or {})
    mapped = resolve_mapping(store, mapping or {})
    chat_id = chat_id_for(chat.chat_name)
    now = int(time.time())
    with store.transaction() as tx:
        # Import keys are random, so their index is written all over: a page cache that
        # holds it (64 MiB rather than SQLite's 2 MiB) keeps pages from spilling mid-way.
        tx.exec_driver_sql("PRAGMA cache_size=-65536")
        old = _load_chat(store, tx, chat_id)
        details: dict[str, Any] = dict(old.details) if old else {}
        people = _People(
            me=me if me is not None else details.get("me"),
            mapped={
                **{a: (v["account"], v["username"]) for a, v in details.get("map", {}).items()},
                **mapped,
            },
            authors=list(dict.fromkeys([*details.get("authors", []), *chat.summary.authors])),
            own_name=store.info.username if store.info else None,
            chat_name=chat.chat_name,
        )
        target = people.target(chat_id)
        reattributed = 0
        before = {a: v["account"] for a, v in details.get("map", {}).items()}
        if old is not None and (
            people.me != details.get("me")
            or target != old.target_chat
            or any(before.get(a) != v[0] for a, v in mapped.items())
        ):
            reattributed = _reattribute(store, tx, chat_id, target, people)
        present = {
            r[0]
            for r in tx.execute(
                select(s.messages.c.message_id).where(
                    s.messages.c.sender_account == chat_id, s.messages.c.sender_device == 0
                )
            )
        }
        fresh = [e for e in chat.entries if e.import_key not in present]
        media = _MediaWriter(store, tx, export, progress)
        media.total = _media_total(chat)
        completed = _complete_attachments(store, tx, chat, present, media)
        added = _insert(store, tx, fresh, chat_id, target, people, media, progress)
        media.flush()
        details.update(
            me=people.me,
            map={a: {"account": v[0], "username": v[1]} for a, v in people.mapped.items()},
            authors=people.authors,
        )
        details.setdefault("imports", []).append(
            {
                "at": now,
                "file": file_name,
                "dialect": msgspec.to_builtins(chat.dialect),
                "tz": chat.tz,
                "added": added,
                "summary": summary_dict(chat.summary),
            }
        )
        _save_chat(store, tx, chat_id, chat.chat_name, target, old, details, now)
        tx.exec_driver_sql("PRAGMA cache_size=-2000")  # SQLite's default, for later users
    return ImportResult(
        chat_id=chat_id,
        chat_name=chat.chat_name,
        target_chat=target,
        added=added,
        already_present=len(chat.entries) - len(fresh),
        media_stored=media.files,
        media_bytes=media.bytes,
        attachments_completed=completed,
        reattributed=reattributed,
    )


def remap_chat(
    store: Store, chat_id: str, *, me: str | None = None, mapping: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """Give ``--me``/``--map`` to a chat imported earlier, without its export: the stored
    messages are reattributed at once. Returns the conversation and how many changed.

    Raises:
        ImportProblem: no such imported chat, an author it does not have, or a username
            that is not a contact.
    """
    mapped = resolve_mapping(store, mapping or {})
    with store.transaction() as tx:
        old = _load_chat(store, tx, chat_id)
        if old is None:
            raise ImportProblem(f"no imported chat {chat_id!r}")
        details = dict(old.details)
        authors: list[str] = list(details.get("authors", []))
        shown = ", ".join(repr(a) for a in authors[:12]) or "none"
        for author in [*([me] if me is not None else []), *mapped]:
            if author not in authors:
                raise ImportProblem(f"{author!r} wrote nothing in this chat (authors: {shown})")
        new_me = me if me is not None else details.get("me")
        if new_me is not None and new_me in mapped:
            raise ImportProblem(f"{new_me!r} cannot be both --me and mapped to a contact")
        people = _People(
            me=new_me,
            mapped={
                **{a: (v["account"], v["username"]) for a, v in details.get("map", {}).items()},
                **mapped,
            },
            authors=authors,
            own_name=store.info.username if store.info else None,
            chat_name=old.name,
        )
        target = people.target(chat_id)
        changed = _reattribute(store, tx, chat_id, target, people)
        details.update(
            me=people.me,
            map={a: {"account": v[0], "username": v[1]} for a, v in people.mapped.items()},
        )
        _save_chat(store, tx, chat_id, old.name, target, old, details, old.imported_at)
    return target, changed


def summary_dict(summary: ImportSummary, unparsed_limit: int = UNPARSED_KEPT) -> dict[str, Any]:
    """The parser's summary as JSON-ready values; unparsed lines beyond the limit are
    counted, not copied, so a badly broken file cannot bloat the store."""
    out: dict[str, Any] = msgspec.to_builtins(summary)
    out["unparsed_total"] = len(summary.unparsed)
    out["unparsed"] = out["unparsed"][:unparsed_limit]
    return out


# -- messages ------------------------------------------------------------------------------


def _ms(ts: _dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def _body(e: ParsedMessage | SystemEvent, people: _People, peer: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": SOURCE,
        "text": e.text,
        "peer": peer,
        "header": e.header,
        "line": e.line_no,
    }
    body["sender"] = people.sender(e.author)
    if e.author is not None:
        body["author"] = e.author
    if isinstance(e, SystemEvent):
        body["kind"] = "system"
        body["system"] = {k: getattr(e, k) for k in ("actor", "target", "value", "old_value")}
        body["system"]["kind"] = e.kind
        return body
    # The kinds are StrEnums: str already, and encoded as their value; reading ``.value``
    # goes through the enum's descriptor, a cost paid 200 000 times in a large import.
    kind = body["kind"] = e.kind
    if e.edited:
        body["edited"] = True
    if (a := e.attachment) is not None:
        body["attachment"] = {
            "name": a.name,
            "status": a.status,
            "size": a.size,
            "media_type": a.media_type,
            "media": None,
            "chunks": 0,
        }
    if kind in _EXTRA_KINDS:
        for name in ("poll", "location", "call"):
            value = getattr(e, name)
            if value is not None:
                body[name] = msgspec.to_builtins(value)
    return body


_EXTRA_KINDS = frozenset({MessageKind.POLL, MessageKind.LOCATION, MessageKind.CALL})


def _insert(
    store: Store,
    tx: Connection,
    entries: list[ParsedMessage | SystemEvent],
    chat_id: str,
    target: str,
    people: _People,
    media: _MediaWriter,
    progress: Progress | None,
) -> int:
    peer = people.peer(target, chat_id)
    received = int(time.time() * 1000)
    me = people.me
    total = len(entries)
    for start in range(0, total, BATCH):
        batch = []
        for e in entries[start : start + BATCH]:
            body = _body(e, people, peer)
            att = body.get("attachment")
            if att is not None and att["status"] == AttachmentStatus.ATTACHED.value:
                assert isinstance(e, ParsedMessage) and e.attachment is not None
                att["media"], att["chunks"], att["size"] = media.store(e.attachment.zip_entry)
            batch.append(
                StoredMessage(
                    chat=target,
                    sender_account=chat_id,
                    sender_device=0,
                    message_id=e.import_key,
                    direction="out" if me is not None and body.get("author") == me else "in",
                    status=STATUS,
                    body=body,
                    sent_at=_ms(e.timestamp),
                    received_at=received,
                )
            )
        store.add_messages(tx, batch)
        if progress is not None:
            progress("messages", min(start + BATCH, total), total)
    return total


def _reattribute(store: Store, tx: Connection, chat_id: str, target: str, people: _People) -> int:
    """Apply a changed ``--me``/``--map`` to the messages earlier imports wrote."""
    rows = tx.execute(
        select(s.messages).where(
            s.messages.c.sender_account == chat_id, s.messages.c.sender_device == 0
        )
    ).all()
    peer = people.peer(target, chat_id)
    changes = []
    for r in rows:
        where = f"messages.{r.message_id}"
        body = msgspec.json.decode(store.sealer.open(where, r.body_blob))
        author = body.get("author")
        direction = "out" if people.me is not None and author == people.me else "in"
        sender = people.sender(author)
        now = (target, direction, sender, peer)
        if (r.chat, r.direction, body.get("sender"), body.get("peer")) == now:
            continue
        body.update(sender=sender, peer=peer)
        blob = store.sealer.seal(where, msgspec.json.encode(body))
        changes.append({"rid": r.id, "c": target, "d": direction, "b": blob})
    if changes:
        tx.execute(
            update(s.messages)
            .where(s.messages.c.id == bindparam("rid"))
            .values(chat=bindparam("c"), direction=bindparam("d"), body_blob=bindparam("b")),
            changes,
        )
    return len(changes)


# -- media ---------------------------------------------------------------------------------


def _media_total(chat: ChatImport) -> int:
    """Bytes of every file the export holds: what a first import stores (a progress bar's
    total; a re-import stores less and the bar is completed at the end)."""
    seen: dict[str, int] = {}
    for e in chat.entries:
        a = e.attachment if isinstance(e, ParsedMessage) else None
        if a is not None and a.status is AttachmentStatus.ATTACHED and a.zip_entry:
            seen[a.zip_entry] = a.size or 0
    return sum(seen.values())


class _MediaWriter:
    """Stores each zip entry once per import, in sealed chunks, flushed in batches."""

    def __init__(self, store: Store, tx: Connection, export: WhatsAppExport, p: Progress | None):
        self._store, self._tx, self._export, self._progress = store, tx, export, p
        self._rows: list[dict[str, Any]] = []
        self._pending = 0
        self._done: dict[str, tuple[str, int, int]] = {}
        self.files = self.bytes = 0
        self.total = 0  # a progress bar's total, set by the caller

    def store(self, entry: str | None) -> tuple[str, int, int]:
        """(media id, chunks, size) of the zip entry, stored on first use."""
        assert entry is not None
        if entry in self._done:
            return self._done[entry]
        media_id = secrets.token_hex(16)
        seal = self._store.sealer.seal
        index = size = 0
        try:
            with self._export.open_attachment(entry) as f:
                while chunk := f.read(MEDIA_CHUNK):
                    where = f"imported_media.{media_id}.{index}"
                    self._rows.append(
                        {"media_id": media_id, "chunk": index, "blob": seal(where, chunk)}
                    )
                    index += 1
                    size += len(chunk)
                    self._pending += len(chunk)
                    if self._pending >= MEDIA_FLUSH_BYTES:
                        self.flush()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise CorruptZip(f"cannot read {entry!r}: the zip is damaged ({exc})") from exc
        self.files += 1
        self.bytes += size
        if self._progress is not None:
            self._progress("media", self.bytes, max(self.bytes, self.total))
        self._done[entry] = (media_id, index, size)
        return self._done[entry]

    def flush(self) -> None:
        if self._rows:
            self._tx.execute(insert(s.imported_media), self._rows)
        self._rows, self._pending = [], 0


def _complete_attachments(
    store: Store, tx: Connection, chat: ChatImport, present: set[str], media: _MediaWriter
) -> int:
    """Store files for messages an earlier import (without media) wrote without them."""
    wanted = {
        e.import_key: e.attachment
        for e in chat.entries
        if isinstance(e, ParsedMessage)
        and e.import_key in present
        and e.attachment is not None
        and e.attachment.status is AttachmentStatus.ATTACHED
    }
    keys, rows = list(wanted), list[Any]()
    for i in range(0, len(keys), 500):  # within SQLite's limit on bound parameters
        rows += tx.execute(
            select(s.messages.c.id, s.messages.c.message_id, s.messages.c.body_blob).where(
                s.messages.c.sender_account == chat_id_for(chat.chat_name or ""),
                s.messages.c.message_id.in_(keys[i : i + 500]),
            )
        ).all()
    done = 0
    for rid, key, blob in rows:
        where = f"messages.{key}"
        body = msgspec.json.decode(store.sealer.open(where, blob))
        att = body.get("attachment") or {}
        if att.get("media"):
            continue
        att["media"], att["chunks"], att["size"] = media.store(wanted[key].zip_entry)
        att["status"] = AttachmentStatus.ATTACHED.value
        body["attachment"] = att
        sealed = store.sealer.seal(where, msgspec.json.encode(body))
        tx.execute(update(s.messages).where(s.messages.c.id == rid).values(body_blob=sealed))
        done += 1
    return done


def read_media(store: Store, media_id: str, chunks: int) -> Iterator[bytes]:
    """The plaintext of a stored file, chunk by chunk.

    Raises:
        CorruptValue: a chunk is missing, extra, altered or moved.
    """
    with store.transaction() as tx:
        rows = tx.execute(
            select(s.imported_media.c.chunk, s.imported_media.c.blob)
            .where(s.imported_media.c.media_id == media_id)
            .order_by(s.imported_media.c.chunk)
        ).all()
    if [r[0] for r in rows] != list(range(chunks)):
        raise CorruptValue(f"stored file {media_id} is incomplete")
    for index, blob in rows:
        yield store.sealer.open(f"imported_media.{media_id}.{index}", blob)


# -- the chat row --------------------------------------------------------------------------


def _load_chat(store: Store, tx: Connection, chat_id: str) -> ImportedChat | None:
    row = tx.execute(select(s.imported_chats).where(s.imported_chats.c.id == chat_id)).first()
    return None if row is None else _chat(store, row)


def _chat(store: Store, row: Any) -> ImportedChat:
    open_ = store.sealer.open
    return ImportedChat(
        id=row.id,
        source=row.source,
        name=open_(f"imported_chats.{row.id}.name", row.name_blob).decode(),
        target_chat=row.target_chat,
        imported_at=row.imported_at,
        details=msgspec.json.decode(open_(f"imported_chats.{row.id}.details", row.details_blob)),
    )


def _save_chat(
    store: Store,
    tx: Connection,
    chat_id: str,
    name: str,
    target: str,
    old: ImportedChat | None,
    details: dict[str, Any],
    now: int,
) -> None:
    seal = store.sealer.seal
    tx.execute(delete(s.imported_chats).where(s.imported_chats.c.id == chat_id))
    tx.execute(
        insert(s.imported_chats).values(
            id=chat_id,
            source=SOURCE,
            target_chat=target,
            name_blob=seal(f"imported_chats.{chat_id}.name", name.encode()),
            imported_at=old.imported_at if old else now,
            details_blob=seal(f"imported_chats.{chat_id}.details", msgspec.json.encode(details)),
        )
    )


def imported_chats(store: Store) -> list[ImportedChat]:
    with store.transaction() as tx:
        rows = tx.execute(select(s.imported_chats).order_by(s.imported_chats.c.imported_at)).all()
    return [_chat(store, r) for r in rows]


def import_report(
    chat: ChatImport, result: ImportResult | None, file_name: str, dry_run: bool
) -> dict[str, Any]:
    """What ``baat import --json`` prints and the web app's import shows: the chat read
    from the export and, after an import (``result``), what was stored."""
    s = summary_dict(chat.summary)
    out: dict[str, Any] = {
        "file": file_name,
        "chat": chat.chat_name,
        "dry_run": dry_run,
        "date_order": chat.dialect.date_order,
        "date_order_evidence": chat.dialect.date_order_evidence,
        "calendar": chat.dialect.calendar,
        "tz": chat.tz,
        "platform": chat.dialect.platform.value,
        "messages": s["messages"],
        "system_events": s["system_events"],
        "authors": s["messages_by_author"],
        "first": s["first_timestamp"],
        "last": s["last_timestamp"],
        "attachments": {
            "linked": s["attachments_linked"],
            "not_in_export": s["attachments_not_in_export"],
            "omitted": s["attachments_omitted"],
        },
        "unlinked_files": s["unlinked_files"],
        "lines_not_understood": [
            {"line": u["line_no"], "text": u["text"], "reason": u["reason"]} for u in s["unparsed"]
        ],
        "lines_not_understood_total": s["unparsed_total"],
        "ambiguous_local_times": s["ambiguous_local_times"],
        "nonexistent_local_times": s["nonexistent_local_times"],
    }
    if result is not None:
        out.update(
            chat_id=result.chat_id,
            conversation=result.target_chat,
            added=result.added,
            already_present=result.already_present,
            reattributed=result.reattributed,
        )
        out["attachments"].update(
            stored_files=result.media_stored,
            stored_bytes=result.media_bytes,
            completed=result.attachments_completed,
        )
    return out
