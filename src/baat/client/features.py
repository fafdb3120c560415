"""Everyday messaging on top of the pairwise and group paths (docs/GROUPS.md §5): replies,
reactions, edits and deletes for everyone, delivery and read receipts, typing indicators,
disappearing messages; and filing every decrypted ``Content`` where it belongs.

Each is a ``Content`` type inside the encryption, so the server sees an ordinary envelope.
Rules that protect the reader are enforced by the receiving device, never by the sender:
only the author edits (within ``EDIT_WINDOW_MS``) or deletes (within ``DELETE_WINDOW_MS``)
its message, measured between the two timestamps of that author's own clock; a chat's timer
is kept by every device, which deletes expired messages, bodies included, by its own clock.
A type this version does not know is stored as "unsupported" rather than dropped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, func, insert, select

from baat.client import schema as s
from baat.client.core import Content, Origin, _content_decoder
from baat.client.group_messaging import is_group_chat
from baat.client.store import Contact, StoredMessage

if TYPE_CHECKING:
    from baat.client.core import ClientCore
    from baat.proto import Deliver

log = logging.getLogger("baat.client.features")

EDIT_WINDOW_MS = 15 * 60 * 1000
DELETE_WINDOW_MS = 24 * 3600 * 1000
SHOWN_TYPES = frozenset({"text", "file"})
GROUP_PAIRWISE = frozenset({"group_event", "group_state", "sender_key"})
READ_RECEIPTS = "read_receipts"
TYPING = "typing"
# How old a typing indicator may be when it arrives and still be shown (milliseconds; allows
# for clocks a little apart).
TYPING_FRESH_MS = 30_000


class FeatureError(ValueError):
    """A reaction, edit, delete or reply that cannot be made (``code`` is stable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def timer_key(chat: str) -> str:
    return f"timer:{chat}"


def timer_words(seconds: int) -> str:
    """``3600`` -> "1 hour": the timer as people say it."""
    for size, unit in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


class Features:
    def __init__(self, client: ClientCore) -> None:
        self.client = client
        # (account, "delivered" | "read") -> message ids to acknowledge in one receipt.
        self._due: dict[tuple[str, str], list[str]] = {}
        # (chat, sender name, "started" | "stopped"): typing is shown, never stored.
        self.typing_listeners: list[Callable[[str, str, str], None]] = []
        # (chat, kind): a reaction, edit, delete, receipt or timer changed what is stored
        # for the chat. Called inside the receiving transaction, just before it commits:
        # listeners note the chat and read the store later, never in the call.
        self.change_listeners: list[Callable[[str, str], None]] = []

    # -- settings --------------------------------------------------------------------------

    def enabled(self, name: str) -> bool:
        return bool(self.client.store.setting(name, True))

    def set_enabled(self, name: str, on: bool) -> None:
        with self.client.store.transaction() as tx:
            self.client.store.put_setting(tx, name, on)

    def timer(self, chat: str) -> int:
        return int(self.client.store.setting(timer_key(chat), 0))

    # -- sending ---------------------------------------------------------------------------

    async def post(self, chat: str, content: Content, body: dict[str, Any]) -> str:
        """Queue ``content`` for ``chat`` (an account or a group chat id) and store it if it
        is a message people see; sent now if connected. Returns its message id."""
        c = self.client
        now = c.clock()
        message_id = secrets.token_hex(16)
        expire = self.timer(chat) if content.type in SHOWN_TYPES else content.expire
        to = chat if is_group_chat(chat) else content.to
        content = msgspec.structs.replace(content, sent_at=now, expire=expire, to=to)
        if content.type in SHOWN_TYPES:
            # Contacts and group members learn our profile key end to end (sealed.py).
            content = msgspec.structs.replace(content, profile_key=c.sealed.share())
        with c.store.transaction() as tx:
            if content.type in SHOWN_TYPES:
                extra: dict[str, Any] = {"reply_to": content.ref} if content.ref else {}
                if is_group_chat(chat):
                    # Who it goes to, as of now: its ticks turn "read" only when every one
                    # of them has read it (``_status_after``).
                    members = c.groups.members_in(tx, chat)
                    extra["recipients"] = [a for a in members if a != c.info.account_id]
                m = StoredMessage(
                    chat=chat,
                    sender_account=c.info.account_id,
                    sender_device=c.info.device_id,
                    message_id=message_id,
                    direction="out",
                    status="sending",
                    body={"text": content.text, "sender": c.info.username, **body, **extra},
                    sent_at=now,
                    received_at=now,
                )
                row = c.store.add_message(tx, m)
                self._expire_later(tx, row, now, expire)
            c.store.queue_out(tx, message_id, chat, msgspec.msgpack.encode(content))
        if c.transport is not None:
            await c.flush_outbox()
        return message_id

    def _content(self, type_: str, **fields: Any) -> Content:
        return Content(v=1, type=type_, sender_name=self.client.info.username, sent_at=0, **fields)

    def _target(self, message_id: str) -> StoredMessage:
        with self.client.store.transaction() as tx:
            found = self.client.store.find_messages(tx, message_id)
        if not found:
            raise FeatureError("unknown_message", f"no message {message_id!r} here")
        return found[0]

    async def _in_chat(self, target: StoredMessage, content: Content) -> str:
        body: dict[str, Any] = {k: target.body[k] for k in ("peer", "group") if k in target.body}
        return await self.post(target.chat, content, body)

    async def reply(self, message_id: str, text: str) -> str:
        """Send ``text`` quoting ``message_id``, in that message's chat."""
        target = self._target(message_id)
        return await self._in_chat(target, self._content("text", text=text, ref=message_id))

    async def react(self, message_id: str, emoji: str) -> str:
        """React with ``emoji`` ("" takes the reaction back)."""
        target = self._target(message_id)
        with self.client.store.transaction() as tx:
            self._react(tx, target, self.client.info.username, emoji)
        return await self._in_chat(target, self._content("reaction", ref=message_id, emoji=emoji))

    async def edit(self, message_id: str, text: str) -> str:
        """Replace the text of our own message, within 15 minutes of sending it.

        Raises:
            FeatureError: ``not_author``, ``too_late``, ``unknown_message``.
        """
        target = self._own(message_id, EDIT_WINDOW_MS, "edited")
        with self.client.store.transaction() as tx:
            self._edit(tx, target, text)
        return await self._in_chat(target, self._content("edit", ref=message_id, text=text))

    async def delete(self, message_id: str) -> str:
        """Delete our own message for everyone, within 24 hours of sending it.

        Raises:
            FeatureError: ``not_author``, ``too_late``, ``unknown_message``.
        """
        target = self._own(message_id, DELETE_WINDOW_MS, "deleted")
        with self.client.store.transaction() as tx:
            self._delete(tx, target)
        return await self._in_chat(target, self._content("delete", ref=message_id))

    def _own(self, message_id: str, window: int, what: str) -> StoredMessage:
        target = self._target(message_id)
        if target.sender_account != self.client.info.account_id:
            raise FeatureError("not_author", f"only its author's messages can be {what}")
        if self.client.clock() - target.sent_at > window:
            raise FeatureError("too_late", f"the message is too old to be {what}")
        return target

    async def set_timer(self, chat: str, seconds: int, body: dict[str, Any]) -> str:
        """Disappearing messages in ``chat``: ``seconds`` after arrival (0 turns it off).
        A notice in the chat's history says so, here and on every other device in it."""
        with self.client.store.transaction() as tx:
            self.client.store.put_setting(tx, timer_key(chat), seconds)
        message_id = await self.post(chat, self._content("timer", expire=seconds), body)
        c = self.client
        origin = Origin(
            chat=chat,
            sender_account=c.info.account_id,
            sender_device=c.info.device_id,
            message_id=message_id,
            direction="out",
            status="sent",
            sender_name=c.info.username,
            peer=str(body.get("peer", "")),
            group=body.get("group"),
        )
        with c.store.transaction() as tx:
            self._timer_notice(tx, origin, seconds, c.clock())
        return message_id

    def _timer_notice(self, tx: Connection, o: Origin, seconds: int, now: int) -> None:
        """The line "NAME turned on disappearing messages: 1 hour" in the chat's history,
        so that the change is seen in the chat and not only in its header."""
        who = "You" if o.direction == "out" else o.sender_name
        text = (
            f"{who} turned on disappearing messages: {timer_words(seconds)}"
            if seconds
            else f"{who} turned off disappearing messages"
        )
        body: dict[str, Any] = {"text": text, "peer": o.peer, "sender": o.sender_name}
        if o.group:
            body["group"] = o.group
        m = StoredMessage(
            chat=o.chat,
            sender_account=o.sender_account,
            sender_device=o.sender_device,
            message_id=o.message_id,
            direction=o.direction,
            # A notice is never "unread": it counts in no badge and asks for no receipt.
            status="sent" if o.direction == "out" else "seen",
            body={**body, "notice": True, "timer": seconds},
            sent_at=now,
            received_at=now,
        )
        self.client.store.add_message(tx, m)

    async def typing(self, chat: str, started: bool = True) -> bool:
        """Tell the chat we are typing; returns whether it went. Nothing is sent when typing
        indicators are off, and an indicator that cannot go now is dropped, not left
        queued: by the next flush it would be stale.

        Raises:
            NotConnected: the connection dropped while sending (the indicator is dropped).
        """
        if not self.enabled(TYPING):
            return False
        store = self.client.store
        before = {m for m, _, _ in store.outbox()}
        kind = "started" if started else "stopped"
        try:
            await self.post(chat, self._content("typing", kind=kind), {})
        finally:
            unsent = [m for m, _, p in store.outbox() if m not in before and _is_typing(p)]
            if unsent:
                with store.transaction() as tx:
                    for m in unsent:
                        store.done_out(tx, m)
        return not unsent

    def mark_read(self, messages: Iterable[StoredMessage]) -> None:
        """The user saw these: "new" becomes "seen"; read receipts go out on the next flush
        unless they are turned off."""
        shown = list(messages)
        self.client.store.mark_seen([m.row_id for m in shown])
        if not self.enabled(READ_RECEIPTS):
            return
        for m in shown:
            if m.direction == "in" and m.status == "new":
                self._due.setdefault((m.sender_account, "read"), []).append(m.message_id)

    def queue_receipts(self) -> None:
        """One receipt per account and kind for everything acknowledged since the last time."""
        due, self._due = self._due, {}
        with self.client.store.transaction() as tx:
            for (account_id, kind), ids in due.items():
                content = self._content("receipt", kind=kind, refs=tuple(ids))
                content = msgspec.structs.replace(content, sent_at=self.client.clock())
                mid = secrets.token_hex(16)
                self.client.store.queue_out(tx, mid, account_id, msgspec.msgpack.encode(content))

    def settled(self, tx: Connection, message_id: str, status: str) -> None:
        """The server's answer to our send: never undo a receipt that came first."""
        for m in self.client.store.find_messages(tx, message_id):
            if m.direction == "out" and m.status not in ("delivered", "read"):
                self.client.store.update_message(tx, _with(m, status=status))

    # -- receiving -------------------------------------------------------------------------

    def receive(
        self, tx: Connection, d: Deliver, content: Content, contact: Contact, status: str, now: int
    ) -> StoredMessage | None:
        """A pairwise message from another account."""
        if content.type in GROUP_PAIRWISE:
            return self.client.groups.on_pairwise(tx, d, content, now)
        origin = Origin(
            chat=d.sender_account,
            sender_account=d.sender_account,
            sender_device=d.sender_device,
            message_id=d.message_id,
            direction="in",
            status=status,
            sender_name=contact.username,
            peer=contact.username,
        )
        return self.file(tx, d, content, origin, now)

    def from_own_device(
        self, tx: Connection, d: Deliver, content: Content, now: int
    ) -> StoredMessage | None:
        """A copy of what our other device sent (``type="sync"``), or its group keys."""
        c = self.client
        if content.type in GROUP_PAIRWISE:
            return c.groups.on_pairwise(tx, d, content, now)
        if content.type != "sync" or content.data is None or not content.to:
            return None
        inner = _content_decoder.decode(content.data)
        chat = content.to
        if inner.type in GROUP_PAIRWISE:
            return c.groups.on_pairwise(tx, d, inner, now)
        group = None
        if is_group_chat(chat):
            group = c.groups.name_of(tx, chat)
            peer = group or chat
        else:
            contact = c.store.contact(tx, chat)
            name = content.names.get(chat)
            if contact is None and name and content.key is not None:
                contact = Contact(chat, name, content.key)
                c.store.put_contact(tx, contact)
            peer = contact.username if contact is not None else (name or chat)
        origin = Origin(
            chat=chat,
            sender_account=c.info.account_id,
            sender_device=d.sender_device,
            message_id=d.message_id,
            direction="out",
            status="sent",
            sender_name=c.info.username,
            peer=peer,
            group=group,
        )
        return self.file(tx, d, inner, origin, now)

    def file(
        self, tx: Connection, d: Deliver, content: Content, o: Origin, now: int
    ) -> StoredMessage | None:
        """Store or apply one decrypted content; returns what was stored for display."""
        kind = content.type
        if kind in SHOWN_TYPES or kind not in _APPLIED:
            return self._store(tx, d, content, o, now)
        changed: set[str] = set()
        if kind == "receipt":
            changed = self._receipt(tx, content, o)
        elif kind == "typing":
            # Typing is live or nothing: one that waited on the server (the device was
            # offline) is old news by the time it arrives.
            fresh = now - content.sent_at <= TYPING_FRESH_MS
            if fresh and self.enabled(TYPING) and o.direction == "in":
                for listener in self.typing_listeners:
                    listener(o.chat, o.sender_name, content.kind)
        elif kind == "timer":
            self.client.store.put_setting(tx, timer_key(o.chat), max(0, content.expire))
            self._timer_notice(tx, o, max(0, content.expire), content.sent_at or now)
            changed.add(o.chat)
        else:
            for target in self.client.store.find_messages(tx, content.ref):
                if target.chat != o.chat:
                    continue
                if kind == "reaction":
                    self._react(tx, target, o.sender_name, content.emoji)
                elif target.sender_account != o.sender_account:
                    continue  # only the author edits or deletes
                elif kind == "edit" and 0 <= content.sent_at - target.sent_at <= EDIT_WINDOW_MS:
                    self._edit(tx, target, content.text)
                elif kind == "delete" and content.sent_at - target.sent_at <= DELETE_WINDOW_MS:
                    self._delete(tx, target)
                else:
                    continue
                changed.add(o.chat)
        for chat in sorted(changed):
            for changed_listener in self.change_listeners:
                changed_listener(chat, kind)
        return None

    def _store(
        self, tx: Connection, d: Deliver, content: Content, o: Origin, now: int
    ) -> StoredMessage | None:
        body: dict[str, Any] = {"text": content.text, "peer": o.peer, "sender": o.sender_name}
        if o.group is not None:
            body["group"] = o.group
        if content.ref:
            body["reply_to"] = content.ref
        if content.type not in SHOWN_TYPES:
            body = {**body, "text": "", "unsupported": content.type}
        else:
            body.update(self.client.attachments.incoming(d, content))
        m = StoredMessage(
            chat=o.chat,
            sender_account=o.sender_account,
            sender_device=o.sender_device,
            message_id=o.message_id,
            direction=o.direction,
            status=o.status,
            body=body,
            sent_at=content.sent_at,
            received_at=now,
        )
        row = self.client.store.add_message(tx, m)
        if row is None:
            return None
        self._expire_later(tx, row, now, content.expire)
        if o.direction == "in" and content.type in SHOWN_TYPES:
            self._due.setdefault((o.sender_account, "delivered"), []).append(o.message_id)
        return _with(m, row_id=row)

    def _receipt(self, tx: Connection, content: Content, o: Origin) -> set[str]:
        """Apply a receipt to our messages it names; returns their chats (a receipt comes
        pairwise from the reader, also for group messages).

        Each reader's receipt is logged with the time it arrived (``receipt_log``: account ->
        name, "delivered" and "read" times). A message's own status follows the slowest of
        its recipients, as the sender's ticks must never claim more than is true of
        everyone: a group message is "delivered" once every member it went to has it, and
        "read" only once every one of them has read it (docs/GROUPS.md §5)."""
        chats: set[str] = set()
        now = self.client.clock()
        for message_id in content.refs:
            for m in self.client.store.find_messages(tx, message_id):
                if m.direction != "out" or o.direction != "in":
                    continue
                chats.add(m.chat)
                receipts = dict(m.body.get("receipts", {}))
                if receipts.get(o.sender_name) != "read":
                    receipts[o.sender_name] = content.kind
                log_ = {k: dict(v) for k, v in m.body.get("receipt_log", {}).items()}
                entry = log_.setdefault(o.sender_account, {"name": o.sender_name})
                entry.setdefault(content.kind, now)
                if content.kind == "read":
                    entry.setdefault("delivered", now)  # read implies it arrived
                status = self._status_after(tx, m, log_, content.kind)
                body = {**m.body, "receipts": receipts, "receipt_log": log_}
                self.client.store.update_message(tx, _with(m, status=status, body=body))
        return chats

    def _status_after(
        self, tx: Connection, m: StoredMessage, log_: dict[str, dict[str, Any]], kind: str
    ) -> str:
        if not is_group_chat(m.chat):
            return "read" if kind == "read" or m.status == "read" else "delivered"
        expected = self.recipients_of(tx, m)
        if not expected:  # nobody else in the group: nothing to wait for
            return m.status
        if all("read" in log_.get(a, {}) for a in expected):
            return "read"
        if all("delivered" in log_.get(a, {}) for a in expected):
            return "delivered"
        return "sent" if m.status in ("sending", "delivered", "read") else m.status

    def recipients_of(self, tx: Connection, m: StoredMessage) -> list[str]:
        """The accounts an outgoing message went to: for a group message, the members when
        it was sent (``recipients``, stored by ``post``), or today's members for messages
        stored before that was kept; for a 1:1 message, the peer."""
        if not is_group_chat(m.chat):
            return [m.chat]
        stored = m.body.get("recipients")
        if isinstance(stored, list):
            return [str(a) for a in stored]
        members = self.client.groups.members_in(tx, m.chat)
        return [a for a in members if a != self.client.info.account_id]

    def receipt_details(self, m: StoredMessage) -> list[dict[str, Any]]:
        """Per recipient of our message ``m``: name, and when it was delivered and read
        (milliseconds, ``None`` while not yet): what a "message info" view lists."""
        if m.direction != "out":
            return []
        with self.client.store.transaction() as tx:
            expected = self.recipients_of(tx, m)
            names = self.client.groups.names_in(tx, m.chat)
        log_ = m.body.get("receipt_log", {})
        out = []
        for account in dict.fromkeys([*expected, *log_]):
            entry = log_.get(account, {})
            name = entry.get("name") or names.get(account) or m.body.get("peer") or account
            out.append(
                {"name": name, "delivered_at": entry.get("delivered"), "read_at": entry.get("read")}
            )
        return sorted(out, key=lambda e: str(e["name"]))

    def _react(self, tx: Connection, m: StoredMessage, who: str, emoji: str) -> None:
        reactions = {k: v for k, v in m.body.get("reactions", {}).items() if k != who}
        if emoji:
            reactions[who] = emoji
        self.client.store.update_message(tx, _with(m, body={**m.body, "reactions": reactions}))

    def _edit(self, tx: Connection, m: StoredMessage, text: str) -> None:
        if not m.body.get("deleted"):
            self.client.store.update_message(
                tx, _with(m, body={**m.body, "text": text, "edited": True})
            )

    def _delete(self, tx: Connection, m: StoredMessage) -> None:
        keep = {k: m.body[k] for k in ("peer", "sender", "group") if k in m.body}
        self.client.store.update_message(tx, _with(m, body={**keep, "text": "", "deleted": True}))

    # -- disappearing messages -------------------------------------------------------------

    def _expire_later(self, tx: Connection, row: int | None, now: int, seconds: int) -> None:
        if row is not None and seconds > 0:
            expires_at = now + seconds * 1000
            tx.execute(insert(s.expiring).values(message_row=row, expires_at=expires_at))
            # Only wakes the timer task, which runs after this transaction has committed.
            self.client.expiry.due(expires_at)

    def next_expiry(self) -> int | None:
        """The earliest ``expires_at`` in the store (client clock, ms), None if none."""
        with self.client.store.transaction() as tx:
            found = tx.execute(select(func.min(s.expiring.c.expires_at))).scalar()
        return None if found is None else int(found)

    def expire(self) -> int:
        """Delete every message whose timer ran out, bodies included; returns how many.
        ``Client.expiry_listeners`` are told each chat and the ids deleted in it."""
        now = self.client.clock()
        e, m = s.expiring, s.messages
        with self.client.store.transaction() as tx:
            rows = tx.execute(
                select(e.c.message_row, m.c.chat, m.c.message_id)
                .select_from(e.outerjoin(m, m.c.id == e.c.message_row))
                .where(e.c.expires_at <= now)
            ).all()
            self.client.store.delete_messages(tx, [int(r[0]) for r in rows])
        gone: dict[str, list[str]] = {}
        for _, chat, message_id in rows:
            if chat is not None:  # None: the message had been deleted already
                gone.setdefault(str(chat), []).append(str(message_id))
        for chat, ids in gone.items():
            for listener in list(self.client.expiry_listeners):
                try:
                    listener(chat, ids)
                except Exception:
                    # A failing listener must not keep the others from refreshing.
                    log.exception("expiry listener failed")
        return len(rows)


_APPLIED = frozenset({"receipt", "typing", "timer", "reaction", "edit", "delete"})


def _is_typing(payload: bytes) -> bool:
    try:
        return _content_decoder.decode(payload).type == "typing"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


def _with(m: StoredMessage, **changes: Any) -> StoredMessage:
    from dataclasses import replace

    return replace(m, **changes)
