"""Every conversation in the local store, and finding one by any name or id it goes by.

A conversation is a value of ``messages.chat``: a contact's account id, a group's chat id,
or an imported chat's ``wa:`` id (``client.importing``). An imported chat whose authors are
mapped to one contact lives in that contact's conversation; its name and ``wa:`` id still
find it. Contacts with no messages yet and groups with no messages are listed too.

``find`` accepts what ``list_chats`` shows: the conversation id, the ``wa:`` id an import
printed, a contact's username, a group's name or an imported chat's name (names compared
case-folded). It never guesses between two conversations of one name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from baat.client.importing import ImportedChat, imported_chats
from baat.client.store import Contact, Store, StoredMessage

Kind = Literal["contact", "group", "imported"]
PREVIEW = 80  # characters of the last message shown in a list


class ChatNotFound(LookupError):
    """No conversation goes by that name or id (``code``: ``unknown_chat``)."""

    code = "unknown_chat"


class AmbiguousChat(LookupError):
    """Several conversations go by that name (``code``: ``ambiguous_chat``)."""

    code = "ambiguous_chat"


@dataclass
class ChatRow:
    chat: str  # the conversation id (``messages.chat``)
    name: str
    kind: Kind
    last_at: int | None = None  # ms since the epoch
    preview: str = ""
    unread: int = 0
    messages: int = 0
    imported: list[str] = field(default_factory=list)  # ``wa:`` ids merged into this one
    imported_names: list[str] = field(default_factory=list)
    read_only: bool = False  # an imported chat mapped to no Baat account: nobody to write to

    def json(self) -> dict[str, object]:
        return {
            "chat": self.chat,
            "name": self.name,
            "kind": self.kind,
            "last_at": self.last_at,
            "preview": self.preview,
            "unread": self.unread,
            "messages": self.messages,
            "imported": self.imported,
            "imported_names": self.imported_names,
            "read_only": self.read_only,
        }


def preview(m: StoredMessage) -> str:
    """A one-line view of a message for a list."""
    body = m.body
    if m.status == "held":
        return "held message"
    if body.get("deleted") or body.get("kind") == "deleted":
        return "message deleted"
    text = str(body.get("text") or "")
    att = body.get("attachment")
    if not text and isinstance(att, dict):
        text = f"[file {att.get('file_name') or att.get('name') or att.get('media_type') or ''}]"
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW else line[: PREVIEW - 1] + "…"


def list_chats(
    store: Store,
    groups: Iterable[tuple[str, str]] = (),
    messages: list[StoredMessage] | None = None,
) -> list[ChatRow]:
    """Every conversation, newest first. ``groups`` gives (chat id, name) of each group;
    ``messages`` every stored message, when the caller has them already."""
    contacts: dict[str, Contact] = {c.account_id: c for c in store.contacts()}
    imported: dict[str, ImportedChat] = {c.id: c for c in imported_chats(store)}
    group_names = dict(groups)
    rows: dict[str, ChatRow] = {}

    def row(chat: str) -> ChatRow:
        found = rows.get(chat)
        if found is None:
            if chat in contacts:
                found = ChatRow(chat, contacts[chat].username, "contact")
            elif chat in group_names:
                found = ChatRow(chat, group_names[chat], "group")
            elif chat in imported:
                found = ChatRow(chat, imported[chat].name, "imported", read_only=True)
            else:
                found = ChatRow(chat, chat, "contact")
            rows[chat] = found
        return found

    for m in messages if messages is not None else store.messages():
        r = row(m.chat)
        if not r.name or r.name == m.chat:
            r.name = str(m.body.get("peer") or r.name)
        r.messages += 1
        r.unread += m.status == "new"
        if r.last_at is None or m.sent_at >= r.last_at:
            r.last_at, r.preview = m.sent_at, preview(m)
    for chat in [*contacts, *group_names]:
        row(chat)
    for c in imported.values():
        r = row(c.target_chat)
        if c.target_chat != c.id:
            r.imported.append(c.id)
            r.imported_names.append(c.name)
        elif c.id not in r.imported:
            r.imported.append(c.id)
    return sorted(rows.values(), key=lambda r: (-(r.last_at or 0), r.name.casefold()))


def find(rows: list[ChatRow], ref: str) -> ChatRow:
    """The conversation ``ref`` names (see the module documentation).

    Raises:
        ChatNotFound: nothing goes by ``ref``.
        AmbiguousChat: two conversations go by the name ``ref``.
    """
    for r in rows:
        if ref == r.chat or ref in r.imported:
            return r
    folded = ref.strip().casefold()
    named = [
        r
        for r in rows
        if r.name.casefold() == folded or folded in (n.casefold() for n in r.imported_names)
    ]
    if not named:
        raise ChatNotFound(f"no conversation {ref!r}; 'baat chats' lists them")
    if len(named) > 1:
        ids = ", ".join(r.chat for r in named)
        raise AmbiguousChat(f"several conversations are called {ref!r} ({ids}); use the id")
    return named[0]
