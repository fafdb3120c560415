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
    text: str,
    *,
    chat_name: str | None,
    date_order: DateOrder | None,
    tz: str | _dt.tzinfo | None,
    progress: ProgressCallback | None,
    find_file: FileLookup | None,
    all_files: tuple[str, ...] = (),
    calendar: Calendar = "gregorian",
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
    lines, soft = split_lines(text)
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
    entries = builder.build(heads)
    summary = builder.summary(entries, unparsed, all_files)
    return ChatImport(
        chat_name=chat_name, dialect=dialect, tz=tz_name, entries=entries, summary=summary
    )


def _find_heads(
    lines: list[str],
    soft: frozenset[int],
    dialect: Dialect,
    date_order: DateOrder | None,
    calendar: Calendar = "gregorian",
) -> tuple[list[Head], list[UnparsedLine], DateOrder, str]:
    match = compile_header(dialect).match
    # map() and compress() keep the per-line work in C; only header lines reach Python code.
    stripped = list(map(str.lstrip, lines, repeat(LEADING_MARKS)))
    matches = list(map(match, stripped))
    raw = [
        (i, m.groups(), stripped[i][m.end() :])
        for i, m in zip(compress(range(len(matches)), matches), filter(None, matches), strict=True)
    ]
    if soft:
        # Mixed line endings (spec 1): when most headers follow "\r\n", a header-shaped line
        # after a bare "\n" is inside a message, whatever it looks like.
        after_soft = sum(1 for h in raw if h[0] in soft)
        if after_soft * 2 < len(raw):
            raw = [h for h in raw if h[0] not in soft]
    # Order inference needs each distinct date and the order dates change in, so hand it
    # only the first header of each run of equal dates: thousands, not every message.
    runs: list[tuple[int, tuple[str, str, str], str]] = []
    previous = None
    for i, g, _ in raw:
        if g[1] != previous:
            previous = g[1]
            runs.append((i, date_fields(g[1]), g[0]))

    def name_hints() -> list[NameHint]:
        found: list[NameHint] = []
        for i, g, rest in raw:
            if "-" in rest and (m := _NAME_DATE.search(rest)) is not None:
                named = (int(m[1]), int(m[2]), int(m[3]))
                found.append((i, date_fields(g[1]), named, m[0]))
        return found

    order, evidence = settle_date_order(runs, date_order, name_hints)
    offset = BUDDHIST_OFFSET if calendar == "buddhist" else 0

    # Dates and clock times repeat (every day of a chat, every minute of a day), so each
    # distinct string is read once; seconds are looked up in a table.
    dates: dict[str, tuple[int, int, int] | None] = {}
    clocks: dict[tuple[str, str], tuple[int, int] | None] = {}
    heads: list[Head] = []
    unparsed: list[UnparsedLine] = []
    for i, (header, date, clock, seconds, marker), rest in raw:
        ymd = dates.get(date, _UNSEEN)
        if ymd is _UNSEEN:
            a, b, c = date_fields(date)
            ymd = dates[date] = read_date(order, int(a), int(b), int(c), offset)
            if ymd is not None and ymd[0] not in PLAUSIBLE_YEARS:
                raise ImplausibleYear(i + 1, header, ymd[0], calendar)
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
        heads.append((i, header, rest, ymd, (hm[0], hm[1], second)))
    if not heads:
        raise UnknownDialect("no header carries a valid date and time")
    invalid = {u.line_no - 1 for u in unparsed}
    before = [
        UnparsedLine(line_no=i + 1, text=lines[i], reason=UnparsedReason.BEFORE_FIRST_MESSAGE)
        for i in range(heads[0][0])
        if i not in invalid and lines[i].strip(LEADING_MARKS + " \t")
    ]
    return heads, before + unparsed, order, evidence
