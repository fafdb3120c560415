"""Header dialects: detect one per file, compile one regex for it, infer the date order.

The grammar is spec section 2, written as a regex with every variant allowed ("support the
grammar, not a list of formats", spec 8.1). Detection runs that loose regex over the first
headers of the file and keeps the most common shape. The parser then matches every line with
a regex compiled for exactly that shape, so that a continuation line that merely looks like a
date (``2016-04-29 10:30:00`` inside an ``m/d/yy`` chat, spec 8.3) stays body text.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ._errors import (
    AmbiguousDateOrder,
    DateOrder,
    DateOrderMismatch,
    DateReading,
    UnknownDialect,
)
from ._records import Dialect, Platform
from ._text import LEADING_MARKS

# Space-like characters allowed between header tokens (spec 3.2), plus the direction marks
# that RTL exports put between tokens. Matching them in the regex avoids translating each
# line before matching.
_S = "[ \u00a0\u202f\u2009\u2007\u200e\u200f]"
# ``\d`` also matches Arabic-Indic and Extended Arabic-Indic digits (spec 3.3), and ``int``
# reads them, so Persian and Arabic headers need no digit mapping.
_LOOSE = re.compile(
    r"(?P<open>\[[\ufeff\u200e]?)?"
    r"(?P<d1>\d{1,4})(?P<dsep>[/.\-]) ?(?P<d2>\d{1,2})(?P=dsep) ?(?P<d3>\d{1,4})(?P=dsep)?"
    r"(?P<comma>[,\u060c])?" + _S + r"+(?P<klo>klo" + _S + r"+)?"
    r"(?P<h>\d{1,2})(?P<tsep>[:.])(?P<mi>\d{2})(?:(?P=tsep)(?P<s>\d{2}))?"
    r"(?P<ampm>" + _S + r"*[AaPp]\.?" + _S + r"?[Mm]\.?)?"
    r"(?P<term>\]" + _S + r"|" + _S + r"-" + _S + r"|:" + _S + r")"
)

# How many header lines detection looks at. Enough to outvote a few pasted headers of
# another dialect; small enough that detection costs nothing next to parsing.
_DETECT_SAMPLE = 200


def detect_dialect(lines: Iterable[str]) -> Dialect:
    """The header dialect most of the first headers use (``date_order`` left unset).

    Raises:
        UnknownDialect: no line starts with a header in any supported dialect.
    """
    shapes: Counter[Dialect] = Counter()
    first_line = None
    for line in lines:
        stripped = line.lstrip(LEADING_MARKS)
        if first_line is None and stripped.strip():
            first_line = stripped
        m = _LOOSE.match(stripped)
        if m is None:
            continue
        term = m["term"][0]
        if m["open"]:
            if term != "]":
                continue
            platform = Platform.IOS
        elif term == "]":
            continue
        else:
            platform = Platform.IOS_LEGACY if term == ":" else Platform.ANDROID
        shape = Dialect(
            platform=platform,
            date_separator=m["dsep"],
            comma=m["comma"] is not None,
            klo=m["klo"] is not None,
            time_separator=m["tsep"],
            seconds=m["s"] is not None,
            clock12=m["ampm"] is not None,
        )
        shapes[shape] += 1
        if sum(shapes.values()) >= _DETECT_SAMPLE:
            break
    if not shapes:
        shown = (first_line or "")[:60]
        raise UnknownDialect(
            f"no line starts with a WhatsApp date/time header (first line: {shown!r})"
        )
    # most_common keeps first-seen order among equal counts, so ties go to the earlier shape.
    return shapes.most_common(1)[0][0]


def looks_like_chat(sample: str) -> bool:
    """Whether one of the first lines of ``sample`` starts with a header (sniffing a zip)."""
    return any(
        _LOOSE.match(line.lstrip(LEADING_MARKS)) is not None for line in sample.splitlines()[:20]
    )


def compile_header(dialect: Dialect) -> re.Pattern[str]:
    """The regex for exactly one dialect.

    Groups: 1 the header as written (with brackets on iOS), 2 the date, 3 hours and
    minutes, 4 the seconds (``""`` without), 5 the 12 h marker (``""`` on a 24 h clock).
    Few, coarse groups keep ``Match.groups`` cheap on the hot path; their values repeat, so
    ``date_fields`` and ``read_clock`` read each distinct one once. The match ends after the
    separator that follows the header, so ``line[m.end():]`` is the author and body.
    """
    dsep = re.escape(dialect.date_separator)
    tsep = re.escape(dialect.time_separator)
    date = r"(\d{1,4}" + dsep + r" ?\d{1,2}" + dsep + r" ?\d{1,4}" + dsep + "?)"
    comma = "[,\u060c]" if dialect.comma else ""
    klo = "klo" + _S + "+" if dialect.klo else ""
    seconds = tsep + r"(\d{2})" if dialect.seconds else "()"
    ampm = "(" + _S + r"*[AaPp]\.?" + _S + r"?[Mm]\.?)" if dialect.clock12 else "()"
    stamp = date + comma + _S + "+" + klo + r"(\d{1,2}" + tsep + r"\d{2})" + seconds + ampm
    if dialect.platform is Platform.IOS:
        # A BOM or LRM can follow the bracket (``[\ufeff29.01.18, 12:24:03]``).
        return re.compile(r"(\[[\ufeff\u200e]?" + stamp + r"\])" + _S)
    term = _S + "-" + _S if dialect.platform is Platform.ANDROID else ":" + _S
    return re.compile("(" + stamp + ")" + term)


_NUMBERS = re.compile(r"\d+")


def date_fields(date: str) -> tuple[str, str, str]:
    """The three numbers of a date the header regex matched, as written."""
    a, b, c = _NUMBERS.findall(date)
    return a, b, c


def read_clock(clock: str, marker: str) -> tuple[int, int] | None:
    """``(hour, minute)`` on a 24 h clock from matched hours, minutes and 12 h marker.

    ``None`` when impossible; 12 AM is midnight and 12 PM noon. "00:04 AM" is 00:04: real
    phones write it (and two unrelated parsers ship it in fixtures), and it can mean nothing
    else; "00:04 PM" is read as 12:04 the same way.
    """
    hours, minutes = _NUMBERS.findall(clock)
    hour, minute = int(hours), int(minutes)
    if marker:
        if not 0 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if "p" in marker or "P" in marker else 0)
    elif hour > 23:
        return None
    return (hour, minute) if minute <= 59 else None


# --- date order (spec section 6) -------------------------------------------------------------

DateFields = tuple[str, str, str]


def read_date(
    order: DateOrder, a: int, b: int, c: int, year_offset: int = 0
) -> tuple[int, int, int] | None:
    """``(year, month, day)`` for three header fields read in ``order``, or ``None``.

    ``year_offset`` is subtracted from four-digit years (543 for the Thai Buddhist era).
    """
    if order == "dmy":
        day, month, year = a, b, c
    elif order == "mdy":
        month, day, year = a, b, c
    else:
        year, month, day = a, b, c
    if year < 100:
        year += 2000  # every surveyed parser reads two-digit years as 20xx (spec 6)
    else:
        year -= year_offset
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return year, month, day


# A date an attachment's file name carries, for the message on one line:
# (line index, header date fields, (year, month, day), file name).
NameHint = tuple[int, DateFields, tuple[int, int, int], str]


def infer_date_order(
    dates: Sequence[tuple[int, DateFields, str]], explicit: DateOrder | None
) -> DateOrder:
    """``settle_date_order`` without hints and evidence (see there).

    Raises:
        AmbiguousDateOrder, DateOrderMismatch, UnknownDialect: as ``settle_date_order``.
    """
    return settle_date_order(dates, explicit)[0]


def settle_date_order(
    dates: Sequence[tuple[int, DateFields, str]],
    explicit: DateOrder | None,
    hints: Callable[[], Sequence[NameHint]] | None = None,
) -> tuple[DateOrder, str]:
    """Settle the date order from every header date of the file (in file order), and say
    which evidence settled it.

    ``dates`` holds ``(line index, (field1, field2, field3), header as written)``. The order
    that makes the most dates valid wins; a day above 12 anywhere therefore settles
    day-first against month-first. On a tie, the dates' progression decides: within a year
    the month never goes down while the day does at each month's end. Otherwise the file is
    ambiguous. Between the validity count and the progression, attachment names that carry
    a date (iPhone ``00000003-PHOTO-2022-12-31-…``, Android ``IMG-20221231-WA0001``) are
    compared with their message's header date; ``hints`` finds them, only when needed.

    Raises:
        AmbiguousDateOrder: no ``explicit`` order and nothing in the file settles it.
        DateOrderMismatch: ``explicit`` makes fewer dates valid than another order.
        UnknownDialect: no header date is valid in any order.
    """
    distinct: dict[DateFields, tuple[int, str]] = {}
    for index, fields, header in dates:
        if fields not in distinct:
            distinct[fields] = (index, header)
    triples = {f: (int(f[0]), int(f[1]), int(f[2])) for f in distinct}
    candidates: list[DateOrder] = ["dmy", "mdy"]
    # A year first is spelt with four digits (spec 6.1); a 2-digit first field above 31 can
    # only be a year too. Otherwise "ymd" never competes: it reads most d/m/yy dates as valid.
    if explicit == "ymd" or any(len(f[0]) > 2 or t[0] > 31 for f, t in triples.items()):
        candidates.append("ymd")
    valid = {
        order: sum(1 for t in triples.values() if read_date(order, *t) is not None)
        for order in candidates
    }
    best = max(valid.values())
    if best == 0:
        raise UnknownDialect("no header carries a valid date in any day/month/year order")
    if explicit is not None:
        if valid[explicit] < best:
            better = next(o for o in candidates if valid[o] == best)
            example = next(
                (
                    _reading(*distinct[f], t)
                    for f, t in triples.items()
                    if read_date(explicit, *t) is None and read_date(better, *t) is not None
                ),
                None,
            )
            raise DateOrderMismatch(explicit, better, example)
        return explicit, "given"
    leaders = [o for o in candidates if valid[o] == best]
    if len(leaders) == 1:
        winner = leaders[0]
        proof = next(
            (
                distinct[f]
                for f, t in triples.items()
                if read_date(winner, *t) is not None
                and all(read_date(o, *t) is None for o in candidates if o != winner)
            ),
            None,
        )
        where = f": line {proof[0] + 1} {proof[1]!r} is a date only read {winner}" if proof else ""
        return winner, "valid dates" + where
    if set(leaders) == {"dmy", "mdy"}:
        if hints is not None:
            by_names = _order_from_names(hints())
            if by_names is not None:
                return by_names
        by_progression = _order_from_progression([d[1] for d in dates], triples)
        if by_progression is not None:
            return by_progression, "progression: only the " + (
                "first" if by_progression == "dmy" else "second"
            ) + " field drops, at month ends"
    differing = [f for f, t in triples.items() if read_date("dmy", *t) != read_date("mdy", *t)]
    if not differing:
        # Every date has day == month, so both readings agree and nothing is guessed.
        return "dmy", "same either way: every day equals its month"
    raise AmbiguousDateOrder([_reading(*distinct[f], triples[f]) for f in differing[:3]])


def _order_from_names(hints: Sequence[NameHint]) -> tuple[DateOrder, str] | None:
    # A file name's date is when the file was made: the message's own day on iPhones, and on
    # Android the day it was saved, which is the message's day but for late downloads. So
    # every name that matches one reading must match the same one, or it proves nothing.
    votes: dict[DateOrder, NameHint] = {}
    for hint in hints:
        _, fields, named, _ = hint
        t = (int(fields[0]), int(fields[1]), int(fields[2]))
        fits = [o for o in ("dmy", "mdy") if read_date(o, *t) == named]
        if len(fits) == 1:
            votes.setdefault(fits[0], hint)  # type: ignore[arg-type]
    if len(votes) != 1:
        return None
    order, (index, _, named, name) = next(iter(votes.items()))
    day = "-".join(f"{n:02d}" for n in named)
    return order, f"attachment names: line {index + 1} names {name!r}, dated {day}"


def _order_from_progression(
    in_file_order: Sequence[DateFields], triples: dict[DateFields, tuple[int, int, int]]
) -> DateOrder | None:
    # Exports are in time order. Within one year the day field drops at every month change
    # and the month field never drops, so whichever field drops is the day. Demand that only
    # one of them ever drops: a single out-of-order message must not decide a whole file.
    first_drops = second_drops = 0
    previous: tuple[int, int, int] | None = None
    for fields in in_file_order:
        current = triples[fields]
        if previous is not None and current[2] == previous[2]:
            if current[0] < previous[0]:
                first_drops += 1
            if current[1] < previous[1]:
                second_drops += 1
        previous = current
    if first_drops and not second_drops:
        return "dmy"
    if second_drops and not first_drops:
        return "mdy"
    return None


def _reading(index: int, header: str, t: tuple[int, int, int]) -> DateReading:
    def as_date(order: DateOrder) -> _dt.date | None:
        ymd = read_date(order, *t)
        return _dt.date(*ymd) if ymd is not None else None

    return DateReading(line_no=index + 1, raw=header, dmy=as_date("dmy"), mdy=as_date("mdy"))
