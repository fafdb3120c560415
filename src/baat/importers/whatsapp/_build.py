"""Pass 3: valid headers and their lines to records, plus the summary.

This loop runs once per message, so the common case (a one-line text message) takes the
shortest path: no body classification beyond a few ``startswith``/``endswith`` checks, no
system-line rules unless a keyword is present, and author normalisation cached per name.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

from ._body import Body, classify
from ._clock import AMBIGUOUS, LocalClock
from ._keys import KeyMaker
from ._records import (
    Attachment,
    AttachmentStatus,
    Call,
    Entry,
    ImportSummary,
    Location,
    MediaType,
    MessageKind,
    ParsedMessage,
    Poll,
    SystemEvent,
    SystemEventKind,
    UnparsedLine,
)
from ._system import Event, classify_system, might_be_system
from ._text import LEADING_MARKS, clean_name

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(lines_done, lines_total)``, now and then and once at the end."""

FileLookup = Callable[[str], tuple[str, int] | None]
"""Finds an attachment by the name its marker gives: ``(zip entry, size)`` or ``None``."""

# A valid header: line index, where the header ends and where the text after it starts
# in the line (marks stripped from its start), (y, m, d), (h, m, s). Offsets, not slices:
# a 20 MB export has 200 000 of these, and two strings each would double its size in memory.
Head = tuple[int, int, int, tuple[int, int, int], tuple[int, int, int]]
Stamp = tuple[int, int, int, int, int]

_PROGRESS_EVERY = 4096  # messages between progress calls: often enough for a bar, cheap
_QUOTES = frozenset('"“”«»„')
# Push names are at most 25 characters and address-book names rarely reach 80; a longer
# "author" is a system sentence that happens to contain ": ".
_MAX_AUTHOR = 80
_NO_NAMES: frozenset[str] = frozenset()
_TEXT = MessageKind.TEXT


class _ChatNames:
    """The names iOS attributes notices to (spec 4): the chat's own name, learnt as we go.

    In a 1:1 chat iOS attributes notices to the contact, who also writes messages; the
    contact's name must not make "Anna: we added salt" a group event. So a name that writes
    anything no system wording could be is a person, not the chat. Finding the persons
    takes a pass over the file, done only if a line ever needs the answer.
    """

    def __init__(self, chat_name: str | None) -> None:
        self._names: set[str] = {chat_name} if chat_name else set()
        self._persons: set[str] | None = None
        self.heads: list[Head] = []
        self.lines: list[str] = []

    def learn(self, name: str | None) -> None:
        if name:
            self._names.add(name)

    def __contains__(self, name: object) -> bool:
        if name not in self._names:
            return False
        if self._persons is None:
            self._persons = self._find_persons()
        return name not in self._persons

    def _find_persons(self) -> set[str]:
        persons: set[str] = set()
        for head in self.heads:
            first = self.lines[head[0]].lstrip(LEADING_MARKS)[head[2] :]
            cut = first.find(": ")
            if cut > 0:
                name = first[:cut]
                if name not in persons and not might_be_system(first[cut + 2 :]):
                    persons.add(name)
        return {clean_name(name) for name in persons}


class Builder:
    """Builds the records of one transcript and keeps what its summary needs."""

    def __init__(
        self,
        lines: list[str],
        *,
        ios: bool,
        chat_name: str | None,
        clock: LocalClock,
        find_file: FileLookup | None,
        progress: ProgressCallback | None,
    ) -> None:
        self._lines = lines
        self._ios = ios
        self._clock = clock
        self._keys = KeyMaker(chat_name)
        self._find_file = find_file
        self._progress = progress
        self._chat_names = _ChatNames(chat_name)
        # Android: names whose lines may be system lines (the chat's own name, learnt from
        # an encryption notice). A person's lines are never looked at, so the Android hot
        # path costs one set look-up; each name's first line is checked once.
        self._android_system: set[str] = {chat_name} if chat_name else set()
        self._authors: dict[str, str] = {}
        self.ambiguous: list[int] = []
        self.nonexistent: list[int] = []
        self.linked: set[str] = set()
        self._tally = _Tally()

    def build(self, heads: list[Head], *, keep: bool = True) -> tuple[Entry, ...]:
        """The records of ``heads``; with ``keep=False`` each record is counted for the
        summary and dropped (a dry run's preview needs only the counts, not 400 MB of
        records for a 20 MB export) and the result is empty."""
        tally = self._tally = _Tally()
        entries: list[Entry] = []
        append = entries.append if keep else tally.add
        self._build(heads, append)
        if keep:
            for e in entries:
                tally.add(e)
        return tuple(entries)

    def _build(self, heads: list[Head], append: Callable[[Entry], None]) -> None:
        lines = self._lines
        total = len(lines)
        attach = self._clock.attach
        key = self._keys.key
        authors = self._authors
        ios = self._ios
        progress = self._progress
        count = len(heads)
        self._chat_names.heads = heads
        self._chat_names.lines = lines
        android_system = self._android_system
        for k in range(count):
            i, header_end, rest_start, (y, mo, d), (hh, mi, ss) = heads[k]
            line = lines[i].lstrip(LEADING_MARKS)
            header, first = line[:header_end], line[rest_start:]
            end = heads[k + 1][0] if k + 1 < count else total
            if end - i > 1:
                body = first + "\n" + "\n".join(lines[i + 1 : end])
                if "\ufeff" in body:
                    body = body.replace("\n\ufeff", "\n")  # BOMs at line starts (spec 1)
                body = body.rstrip("\n")
            else:
                body = first
            ts, flag = attach(y, mo, d, hh, mi, ss)
            if flag:
                (self.ambiguous if flag == AMBIGUOUS else self.nonexistent).append(i + 1)
            stamp = (y, mo, d, hh, mi)
            if progress is not None and k % _PROGRESS_EVERY == 0:
                progress(i, total)

            cut = first.find(": ")
            raw_author = first[:cut] if cut > 0 else ""
            author = authors.get(raw_author)
            first_sight = author is None
            if author is None:
                # First sight of this name: vet it once, then it is a dictionary hit.
                if cut <= 0 or cut > _MAX_AUTHOR or not _QUOTES.isdisjoint(raw_author):
                    append(self._odd_line(i, end, ts, stamp, header, first, body))
                    continue
                author = authors[raw_author] = clean_name(raw_author)
            text = body[cut + 2 :]
            if (ios or first_sight or author in android_system) and might_be_system(text):
                # iOS marks system lines with an LRM before the header or, on current
                # iPhones, right after "Author: ".
                marked = ios and (lines[i][:1] == "\u200e" or text[:1] == "\u200e")
                event = classify_system(
                    text,
                    author=author,
                    chat_names=self._chat_names,
                    marked=marked,
                    android=not ios,
                )
                if event is not None:
                    append(self._event(i, end, ts, stamp, header, text, author, event))
                    continue
            kind = classify(text)
            if kind is None:
                append(
                    ParsedMessage(
                        line_no=i + 1,
                        end_line_no=end,
                        timestamp=ts,
                        author=author,
                        kind=_TEXT,
                        text=text,
                        header=header,
                        import_key=key(stamp, author, "text:" + text),
                    )
                )
            else:
                append(self._message(i, end, ts, stamp, header, author, kind))
        if progress is not None:
            progress(total, total)

    def _odd_line(
        self, i: int, end: int, ts: _dt.datetime, stamp: Stamp, header: str, first: str, body: str
    ) -> Entry:
        """A line without a plain ``Author: `` prefix: system line, or ``Name:`` alone."""
        cut = first.find(": ")
        if cut > 0:
            # 'X changed the subject to "a: b"' splits inside the quotes; a very long
            # "author" is a sentence. Either is a system line if its wording is known.
            event = classify_system(body, author=None, chat_names=_NO_NAMES, marked=False)
            if event is not None and event.kind is not SystemEventKind.OTHER:
                return self._event(i, end, ts, stamp, header, body, None, event)
            author, text = clean_name(first[:cut]), body[cut + 2 :]
        elif first.endswith(":") and len(first) > 1:
            # "Carol:" with nothing after it: view-once media or skipped content (spec 5).
            author, text = clean_name(first[:-1]), body[len(first) + 1 :]
        else:
            event = classify_system(body, author=None, chat_names=_NO_NAMES, marked=False)
            assert event is not None  # authorless lines always type, as OTHER at worst
            return self._event(i, end, ts, stamp, header, body, None, event)
        kind = classify(text)
        if kind is None:
            kind = Body(_TEXT, text, False, None, None)
        return self._message(i, end, ts, stamp, header, author, kind)

    def _event(
        self,
        i: int,
        end: int,
        ts: _dt.datetime,
        stamp: Stamp,
        header: str,
        text: str,
        author: str | None,
        event: Event,
    ) -> SystemEvent:
        if event.kind is SystemEventKind.ENCRYPTION_NOTICE:
            self._chat_names.learn(author)
            if author:
                self._android_system.add(author)
        elif event.kind in (SystemEventKind.GROUP_CREATED, SystemEventKind.SUBJECT_CHANGED):
            self._chat_names.learn(event.value)
            if event.value:
                self._android_system.add(event.value)
        return SystemEvent(
            line_no=i + 1,
            end_line_no=end,
            timestamp=ts,
            kind=event.kind,
            text=text,
            header=header,
            import_key=self._keys.key(stamp, author or "", f"system:{event.kind}:{text}"),
            author=author,
            actor=event.actor,
            target=event.target,
            value=event.value,
            old_value=event.old_value,
        )

    def _message(
        self,
        i: int,
        end: int,
        ts: _dt.datetime,
        stamp: Stamp,
        header: str,
        author: str,
        body: Body,
    ) -> ParsedMessage:
        kind, text, edited, file, extra = body
        attachment = None
        if file is not None:
            if file.omitted:
                attachment = Attachment(
                    name=file.name, status=AttachmentStatus.OMITTED, media_type=file.media_type
                )
            else:
                attachment = self._link(file.name or "", file.media_type)
        return ParsedMessage(
            line_no=i + 1,
            end_line_no=end,
            timestamp=ts,
            author=author,
            kind=kind,
            text=text,
            header=header,
            # The caption, not the file name, so that exports with and without media agree.
            import_key=self._keys.key(stamp, author, f"{kind}:{text}"),
            edited=edited,
            attachment=attachment,
            poll=extra if isinstance(extra, Poll) else None,
            location=extra if isinstance(extra, Location) else None,
            call=extra if isinstance(extra, Call) else None,
        )

    def _link(self, name: str, media_type: MediaType) -> Attachment:
        hit = self._find_file(name) if self._find_file is not None else None
        if hit is None:
            return Attachment(
                name=name, status=AttachmentStatus.NOT_IN_EXPORT, media_type=media_type
            )
        entry, size = hit
        self.linked.add(entry)
        return Attachment(
            name=name,
            status=AttachmentStatus.ATTACHED,
            media_type=media_type,
            zip_entry=entry,
            size=size,
        )

    def summary(self, unparsed: list[UnparsedLine], all_files: tuple[str, ...]) -> ImportSummary:
        t = self._tally
        messages = sum(t.by_kind.values())
        return ImportSummary(
            lines=len(self._lines),
            messages=messages,
            system_events=t.count - messages,
            authors=tuple(t.by_author),
            messages_by_author=t.by_author,
            messages_by_kind=t.by_kind,
            system_events_by_kind=t.by_event,
            first_timestamp=t.first,
            last_timestamp=t.last,
            edited=t.edited,
            attachments_linked=t.status[AttachmentStatus.ATTACHED],
            attachments_not_in_export=t.status[AttachmentStatus.NOT_IN_EXPORT],
            attachments_omitted=t.status[AttachmentStatus.OMITTED],
            unlinked_files=tuple(sorted(f for f in all_files if f not in self.linked)),
            unparsed=tuple(sorted(unparsed, key=lambda u: u.line_no)),
            ambiguous_local_times=tuple(self.ambiguous),
            nonexistent_local_times=tuple(self.nonexistent),
        )


class _Tally:
    """The summary's counts, kept one record at a time."""

    def __init__(self) -> None:
        self.by_author: dict[str, int] = {}
        self.by_kind: dict[MessageKind, int] = {}
        self.by_event: dict[SystemEventKind, int] = {}
        self.status: dict[AttachmentStatus, int] = dict.fromkeys(AttachmentStatus, 0)
        self.edited = self.count = 0
        self.first: _dt.datetime | None = None
        self.last: _dt.datetime | None = None

    def add(self, e: Entry) -> None:
        self.count += 1
        ts = e.timestamp
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        if isinstance(e, ParsedMessage):
            self.by_author[e.author] = self.by_author.get(e.author, 0) + 1
            self.by_kind[e.kind] = self.by_kind.get(e.kind, 0) + 1
            self.edited += e.edited
            if e.attachment is not None:
                self.status[e.attachment.status] += 1
        else:
            self.by_event[e.kind] = self.by_event.get(e.kind, 0) + 1
