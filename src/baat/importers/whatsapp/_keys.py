"""Import keys: one stable id per record, so a store can drop what it already has.

The key is SHA-256 over the chat name, the wall time to the minute, the normalised author,
the content and an occurrence index. Each choice follows spec 8.10 (two exports of one chat
differ in locale format, seconds and media):

* the *wall* time, not UTC, so re-importing with another time zone finds the same keys;
* to the minute, because Android headers have no seconds and iOS headers do;
* attachments contribute their caption, not the file name or placeholder, so an export
  "with media" and one "without media" of the same chat agree;
* the occurrence index tells apart identical messages in the same minute ("ok", "ok"), and
  the two passes through a repeated DST hour.

Keys still differ when the two exporting phones know an author under different names; that
is a limit of the format, not of the key.
"""

from __future__ import annotations

import hashlib

from ._text import clean_name, without_marks


class KeyMaker:
    """Hands out import keys for one chat, in file order."""

    def __init__(self, chat_name: str | None) -> None:
        self._prefix = b"baat.importers.whatsapp/1\x00" + (chat_name or "").encode() + b"\x00"
        # Occurrences so far, by a short stable digest of the identity rather than the
        # identity itself: a 20 MB export would otherwise keep a copy of every message.
        self._seen: dict[bytes, int] = {}
        self._authors: dict[str, str] = {}
        self._days: dict[tuple[int, int, int], str] = {}

    def key(self, stamp: tuple[int, int, int, int, int], author: str, content: str) -> str:
        """The key of one record.

        ``stamp`` is the wall time (year, month, day, hour, minute); ``content`` is a kind
        tag plus the text that identifies the record.
        """
        who = self._authors.get(author)
        if who is None:
            who = self._authors[author] = clean_name(author).casefold()
        what = content if content.isascii() else without_marks(content)
        y, mo, d, h, mi = stamp
        day = self._days.get((y, mo, d))
        if day is None:
            day = self._days[(y, mo, d)] = f"{y:04d}-{mo:02d}-{d:02d}T"
        ident = f"{day}{h:02d}:{mi:02d}\x00{who}\x00{what.strip()}"
        raw = ident.encode()
        seen = hashlib.blake2b(raw, digest_size=12).digest()
        n = self._seen.get(seen, 0)
        self._seen[seen] = n + 1
        return hashlib.sha256(self._prefix + raw + b"\x00%d" % n).hexdigest()
