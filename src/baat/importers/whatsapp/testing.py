"""Write WhatsApp-style exports, for tests and benchmarks.

The renderer is the importer's inverse over the header grammar: give it lines and an
``ExportStyle`` and it writes the text a phone with that locale and clock setting would,
invisible characters included. It is deliberately simple and separate from the parser so
that round-trip tests check one against the other.
"""

from __future__ import annotations

import datetime as _dt
import io
import zipfile
from collections.abc import Iterable, Mapping

import msgspec

from ._errors import DateOrder
from ._records import Platform

_DIGITS = {
    "ascii": None,
    "persian": str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
    "arabic": str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
}


class ExportStyle(msgspec.Struct, frozen=True, kw_only=True):
    """How headers look: one locale and clock setting of one phone."""

    platform: Platform = Platform.ANDROID
    date_order: DateOrder = "dmy"
    date_separator: str = "/"
    date_space: bool = False  # "13. 6. 2018"
    trailing_separator: bool = False  # "2018. 06. 13."
    year_digits: int = 4
    pad: bool = True  # zero-pad day and month
    comma: str = ","  # "" for none, "،" (U+060C) for Persian and Arabic
    klo: bool = False
    time_separator: str = ":"
    seconds: bool = False
    clock12: bool = False
    am_pm: tuple[str, str] = ("AM", "PM")
    am_pm_space: str = " "  # U+202F in 2023+ exports
    digits: str = "ascii"  # "persian", "arabic"
    newline: str = "\n"  # between messages
    inner_newline: str | None = None  # inside a message; None: same as ``newline``
    bom: bool = False
    lrm: bool = False  # iOS: LRM before system lines and attachment markers


class ChatLine(msgspec.Struct, frozen=True, kw_only=True):
    """One record to write; ``author=None`` writes a system line."""

    timestamp: _dt.datetime
    author: str | None
    body: str


def render_header(ts: _dt.datetime, style: ExportStyle) -> str:
    """The date/time header for ``ts`` (its wall time) in ``style``, without the separator."""
    year = f"{ts.year % 100:02d}" if style.year_digits == 2 else f"{ts.year:04d}"
    fmt = "{:02d}" if style.pad else "{}"
    day, month = fmt.format(ts.day), fmt.format(ts.month)
    parts = {
        "dmy": (day, month, year),
        "mdy": (month, day, year),
        "ymd": (f"{ts.year:04d}", month, day),
    }[style.date_order]
    joiner = style.date_separator + (" " if style.date_space else "")
    date = joiner.join(parts) + (style.date_separator if style.trailing_separator else "")
    hour = f"{ts.hour % 12 or 12}" if style.clock12 else f"{ts.hour:02d}"
    tsep = style.time_separator
    time = f"{hour}{tsep}{ts.minute:02d}"
    if style.seconds:
        time += f"{tsep}{ts.second:02d}"
    if style.clock12:
        time += style.am_pm_space + style.am_pm[ts.hour >= 12]
    joint = " klo " if style.klo else style.comma + " "
    header = date + joint + time
    table = _DIGITS[style.digits]
    if table is not None:
        header = header.translate(table)
    return f"[{header}]" if style.platform is Platform.IOS else header


def render_line(line: ChatLine, style: ExportStyle) -> str:
    """One message or system line, continuation lines included."""
    header = render_header(line.timestamp, style)
    if style.platform is Platform.IOS:
        sep = " "
    elif style.platform is Platform.IOS_LEGACY:
        sep = ": "
    else:
        sep = " - "
    body = line.body
    inner = style.inner_newline if style.inner_newline is not None else style.newline
    if inner != "\n":
        body = body.replace("\n", inner)
    rest = body if line.author is None else f"{line.author}: {body}"
    mark = "\u200e" if style.lrm and (line.author is None or body.startswith("<")) else ""
    return mark + header + sep + rest


def render_chat(lines: Iterable[ChatLine], style: ExportStyle) -> str:
    """A whole transcript, ending with a newline as exports do."""
    out = style.newline.join(render_line(line, style) for line in lines) + style.newline
    return ("\ufeff" + out) if style.bom else out


def zip_export(
    transcript: str,
    *,
    transcript_name: str = "_chat.txt",
    media: Mapping[str, bytes] | None = None,
) -> bytes:
    """A zip holding the transcript and media files, as the share sheet writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(transcript_name, transcript.encode("utf-8"))
        for name, data in (media or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()
