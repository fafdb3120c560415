"""Errors raised by the WhatsApp importer.

Every error the importer raises on purpose derives from one base, so a caller can catch the
whole family with one ``except``::

    WhatsAppImportError (ValueError)
    ├── NotAChatExport          binary data, or text that is not UTF-8 / UTF-16
    ├── EmptyExport             nothing but whitespace, BOMs and direction marks
    ├── ExportTooLarge          the transcript is bigger than the caller's limit
    │   └── AttachmentsTooLarge the attachments read add up to more than the limit
    ├── UnknownDialect          text, but no line carries a header we can read
    ├── NoChatInZip             a zip that holds no chat transcript
    ├── CorruptZip              a truncated or damaged zip (bad directory, CRC, deflate)
    ├── AttachmentNotInExport   asked for the bytes of a file the export does not contain
    ├── ImplausibleYear         a year no WhatsApp chat can have (another calendar?)
    └── DateOrderError
        ├── AmbiguousDateOrder  day/month order cannot be told from the file
        └── DateOrderMismatch   the ``date_order`` passed in contradicts the file

Operating-system errors (a path that does not exist, a permission problem) are not translated:
they are the caller's problem, not the export's, and they surface as ``OSError``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Literal

import msgspec

DateOrder = Literal["dmy", "mdy", "ymd"]
Calendar = Literal["gregorian", "buddhist"]
# Years a WhatsApp header can carry: the app appeared in 2009; phones set to 1970 exist.
PLAUSIBLE_YEARS = range(1970, 2101)
BUDDHIST_OFFSET = 543  # Thai solar calendar: 2566 BE is 2023 CE


class WhatsAppImportError(ValueError):
    """Base of every error the WhatsApp importer raises on purpose."""


class NotAChatExport(WhatsAppImportError):
    """The input is binary, or text in an encoding WhatsApp never writes."""


class EmptyExport(WhatsAppImportError):
    """The transcript holds nothing but whitespace, BOMs and direction marks."""


class ExportTooLarge(WhatsAppImportError):
    """The transcript is larger than the limit the caller set (guards against zip bombs)."""


class AttachmentsTooLarge(ExportTooLarge):
    """The attachments read from the zip would add up to more than the caller's limit
    (by default half the free disk space): guards against zip bombs and full disks."""


class UnknownDialect(WhatsAppImportError):
    """No line of the text starts with a WhatsApp header in any dialect we can read."""


class NoChatInZip(WhatsAppImportError):
    """The zip opened fine but none of its ``.txt`` entries is a chat transcript."""


class CorruptZip(WhatsAppImportError):
    """The zip is truncated or damaged: its directory, a CRC or the compressed data is bad."""


class AttachmentNotInExport(WhatsAppImportError, KeyError):
    """The attachment asked for is not among the files of the export.

    Also a ``KeyError`` because it is, in effect, a failed look-up by file name.
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; this error carries a full sentence.
        return str(self.args[0]) if self.args else ""


class ImplausibleYear(WhatsAppImportError):
    """A header's year is far outside any WhatsApp chat's, e.g. a Thai Buddhist year (2566).

    ``year`` and ``line_no`` say where; ``suggest`` is the calendar that would read the
    file sensibly (``"buddhist"``), or ``None``.
    """

    def __init__(self, line_no: int, raw: str, year: int, calendar: str) -> None:
        self.line_no, self.raw, self.year = line_no, raw, year
        gregorian = year - BUDDHIST_OFFSET
        self.suggest: Calendar | None = (
            "buddhist" if calendar == "gregorian" and gregorian in PLAUSIBLE_YEARS else None
        )
        if self.suggest is not None:
            fix = (
                f"the phone seems to use the Thai Buddhist calendar ({year} BE is "
                f"{gregorian}): import again with --calendar buddhist (calendar='buddhist')"
            )
        else:
            fix = "check the phone's date settings, or whether this is a WhatsApp export"
        super().__init__(
            f"line {line_no} '{raw}' is dated in the year {year}, which no WhatsApp chat can "
            f"be (read with the {calendar} calendar); {fix}"
        )


class DateReading(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One date from the file read in every order that could apply (``None``: impossible)."""

    line_no: int
    raw: str
    dmy: _dt.date | None
    mdy: _dt.date | None


class DateOrderError(WhatsAppImportError):
    """The day/month order is unknown or contradicts the file."""


class AmbiguousDateOrder(DateOrderError):
    """Every date in the file reads as a valid date both day-first and month-first.

    The importer never guesses (docs/IMPORT.md, "Date order"). The message shows the first
    few dates read both ways; ``samples`` holds the same readings for a preview screen.
    Parse again with ``date_order="dmy"`` or ``"mdy"``.
    """

    def __init__(self, samples: Sequence[DateReading]) -> None:
        self.samples: tuple[DateReading, ...] = tuple(samples)
        shown = "; ".join(
            f"line {s.line_no} '{s.raw}' = {_fmt(s.dmy)} (dmy) or {_fmt(s.mdy)} (mdy)"
            for s in self.samples
        )
        super().__init__(
            "cannot tell whether dates are day-first or month-first: no day is above 12 and "
            f"the dates never wrap round a month; pass date_order='dmy' or 'mdy'. {shown}"
        )


class DateOrderMismatch(DateOrderError):
    """The ``date_order`` passed in makes fewer of the file's dates valid than another order."""

    def __init__(self, given: DateOrder, better: DateOrder, example: DateReading | None) -> None:
        self.given: DateOrder = given
        self.better: DateOrder = better
        self.example = example
        where = f" (line {example.line_no}: '{example.raw}')" if example is not None else ""
        super().__init__(
            f"date_order={given!r} does not fit this file{where}; its dates read as {better!r}"
        )


def _fmt(day: _dt.date | None) -> str:
    return day.isoformat() if day is not None else "no such date"
