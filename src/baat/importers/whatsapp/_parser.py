"""Transcript text to records: the hot loop.

Three passes over the file, each simple:

1. match every line against the one regex of the detected dialect (spec 2): a line that
   matches starts a message, any other line continues the previous one;
2. settle the date order from all header dates at once (spec 6), then drop the headers whose
   date or time is impossible in that order back into the previous message's text, listing
   them as not understood;
3. assemble each message from its lines, attach the time zone, classify the body, link the
   attachment and build the record.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterator
from itertools import compress, repeat

import msgspec

from ._build import Builder, FileLookup, Head, ProgressCallback
from ._clock import LocalClock, resolve_zone
from ._dialect import (
    NameHint,
    compile_header,
    date_fields,
    detect_dialect,
    read_clock,
    read_date,
    settle_date_order,
)
from ._errors import (
    BUDDHIST_OFFSET,
    PLAUSIBLE_YEARS,
    Calendar,
    DateOrder,
    ImplausibleYear,
    UnknownDialect,
)
from ._records import ChatImport, Dialect, Platform, UnparsedLine, UnparsedReason
from ._text import LEADING_MARKS, split_lines

_BAD_TIME = UnparsedReason.INVALID_DATE_TIME
_UNSEEN: tuple[int, int, int] = (0, 0, 0)  # sentinel: no date has year 0
_UNSEEN_HM: tuple[int, int] = (-1, -1)
# iPhone "00000003-PHOTO-2022-12-31-11-40-26.jpg", Android "IMG-20221231-WA0001.jpg".
_NAME_DATE = re.compile(
    r"(?:PHOTO|VIDEO|AUDIO|GIF|STICKER|IMG|VID|PTT|AUD|STK|DOC)-(20\d\d)-?([01]\d)-?([0-3]\d)\b"
)
_SECONDS = {f"{n:02d}": n for n in range(60)} | {"": 0}


def parse_transcript(
    text: str | tuple[list[str], frozenset[int]],
    *,
    chat_name: str | None,
    date_order: DateOrder | None,
    tz: str | _dt.tzinfo | None,
    progress: ProgressCallback | None,
    find_file: FileLookup | None,
    all_files: tuple[str, ...] = (),
    calendar: Calendar = "gregorian",
    keep_entries: bool = True,
) -> ChatImport:
    """Parse decoded transcript text (see ``parse_export`` for the parameters).

    Raises:
        UnknownDialect: no line has a readable header, or none a valid date and time.
        AmbiguousDateOrder: see ``infer_date_order``.
        DateOrderMismatch: see ``infer_date_order``.
        ImplausibleYear: a header's year is outside 1970-2100 in ``calendar``.
        ValueError: ``tz`` names no known time zone.
    """
    zone, tz_name = resolve_zone(tz)
    # The text, or its lines as ``split_lines`` gave them.
    lines, soft = split_lines(text) if isinstance(text, str) else text
    dialect = detect_dialect(lines)
    heads, unparsed, order, evidence = _find_heads(lines, soft, dialect, date_order, calendar)
    dialect = msgspec.structs.replace(
        dialect, date_order=order, date_order_evidence=evidence, calendar=calendar
    )
    builder = Builder(
        lines,
        ios=dialect.platform is not Platform.ANDROID,
        chat_name=chat_name,
        clock=LocalClock(zone),
        find_file=find_file,
        progress=progress,
    )
    entries = builder.build(heads, keep=keep_entries)
    summary = builder.summary(unparsed, all_files)
    return ChatImport(
        chat_name=chat_name, dialect=dialect, tz=tz_name, entries=entries, summary=summary
    )


_CHUNK = 1 << 16  # lines matched per map() call in pass 1


def _headers(
    lines: list[str], match: Callable[[str], re.Match[str] | None]
) -> Iterator[tuple[int, re.Match[str]]]:
    """(index, match) of every header line; map() and compress() keep the per-line work in
    C, a chunk at a time, so only header lines reach Python code."""
    for start in range(0, len(lines), _CHUNK):
        chunk = list(map(str.lstrip, lines[start : start + _CHUNK], repeat(LEADING_MARKS)))
        found = list(map(match, chunk))
        for j, m in zip(compress(range(len(found)), found), filter(None, found), strict=True):
            yield start + j, m


def _find_heads(
    lines: list[str],
    soft: frozenset[int],
    dialect: Dialect,
    date_order: DateOrder | None,
    calendar: Calendar = "gregorian",
) -> tuple[list[Head], list[UnparsedLine], DateOrder, str]:
    match = compile_header(dialect).match
    # Pass 1 keeps only the header lines' indexes and the first header of each run of equal
    # dates (order inference needs no more): no match object or slice outlives its chunk,
    # so a 20 MB export never holds a second copy of itself.
    idx: list[int] = []
    runs: list[tuple[int, tuple[str, str, str], str]] = []
    previous = None
    for i, hit in _headers(lines, match):
        idx.append(i)
        date = hit[2]
        if date != previous:
            previous = date
            runs.append((i, date_fields(date), hit[1]))
    if soft:
        # Mixed line endings (spec 1): when most headers follow "\r\n", a header-shaped line
        # after a bare "\n" is inside a message, whatever it looks like.
        after_soft = sum(1 for i in idx if i in soft)
        if after_soft * 2 < len(idx):
            idx = [i for i in idx if i not in soft]
            runs, previous = [], None
            for i in idx:
                m = match(lines[i].lstrip(LEADING_MARKS))
                assert m is not None
                if m[2] != previous:
                    previous = m[2]
                    runs.append((i, date_fields(m[2]), m[1]))

    def name_hints() -> list[NameHint]:
        found: list[NameHint] = []
        for i in idx:
            line = lines[i].lstrip(LEADING_MARKS)
            if "-" in line and (n := _NAME_DATE.search(line)) is not None:
                m = match(line)
                assert m is not None
                named = (int(n[1]), int(n[2]), int(n[3]))
                found.append((i, date_fields(m[2]), named, n[0]))
        return found

    order, evidence = settle_date_order(runs, date_order, name_hints)
    offset = BUDDHIST_OFFSET if calendar == "buddhist" else 0

    # Dates and clock times repeat (every day of a chat, every minute of a day), so each
    # distinct string is read once; seconds are looked up in a table.
    dates: dict[str, tuple[int, int, int] | None] = {}
    clocks: dict[tuple[str, str], tuple[int, int] | None] = {}
    heads: list[Head] = []
    unparsed: list[UnparsedLine] = []
    times: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    for i in idx:
        stripped = lines[i].lstrip(LEADING_MARKS)
        m = match(stripped)
        assert m is not None
        _, date, clock, seconds, marker = m.groups()
        ymd = dates.get(date, _UNSEEN)
        if ymd is _UNSEEN:
            a, b, c = date_fields(date)
            ymd = dates[date] = read_date(order, int(a), int(b), int(c), offset)
            if ymd is not None and ymd[0] not in PLAUSIBLE_YEARS:
                raise ImplausibleYear(i + 1, m[1], ymd[0], calendar)
        hm = clocks.get((clock, marker), _UNSEEN_HM)
        if hm is _UNSEEN_HM:
            hm = clocks[(clock, marker)] = read_clock(clock, marker)
        second = _SECONDS.get(seconds)
        if second is None:
            second = int(seconds)  # Persian or Arabic-Indic digits
        if ymd is None or hm is None or second > 59:
            # Kept as text of the message before it (the lines are never dropped) and listed.
            unparsed.append(UnparsedLine(line_no=i + 1, text=lines[i], reason=_BAD_TIME))
            continue
        hms = (hm[0], hm[1], second)
        heads.append((i, m.end(1), m.end(), ymd, times.setdefault(hms, hms)))
    if not heads:
        raise UnknownDialect("no header carries a valid date and time")
    invalid = {u.line_no - 1 for u in unparsed}
    before = [
        UnparsedLine(line_no=i + 1, text=lines[i], reason=UnparsedReason.BEFORE_FIRST_MESSAGE)
        for i in range(heads[0][0])
        if i not in invalid and lines[i].strip(LEADING_MARKS + " \t")
    ]
    return heads, before + unparsed, order, evidence
