"""Property tests: chats rendered in any header dialect come back as the same messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    ChatImport,
    MessageKind,
    ParsedMessage,
    Platform,
    SystemEvent,
    UnparsedReason,
    parse_export,
)
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat

PROFILE = settings(
    max_examples=120,
    deadline=None,  # CI machines vary; the suite budget is checked as a whole
    suppress_health_check=[HealthCheck.too_slow],
)

AM_PM = [
    ("AM", "PM"),
    ("am", "pm"),
    ("a.m.", "p.m."),
    ("a. m.", "p. m."),
    ("a.\u00a0m.", "p.\u00a0m."),
]


@st.composite
def styles(draw: st.DrawFn) -> ExportStyle:
    platform = draw(st.sampled_from(list(Platform)))
    separator = draw(st.sampled_from(["/", ".", "-"]))
    klo = platform is Platform.ANDROID and draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return ExportStyle(
        platform=platform,
        date_order=draw(st.sampled_from(["dmy", "mdy", "ymd"])),
        date_separator=separator,
        date_space=separator == "." and draw(st.booleans()),
        trailing_separator=separator == "." and draw(st.booleans()),
        year_digits=draw(st.sampled_from([2, 4])),
        pad=draw(st.booleans()),
        comma="" if klo else draw(st.sampled_from([",", "", "\u060c"])),
        klo=klo,
        time_separator=draw(st.sampled_from([":", "."])),
        seconds=draw(st.booleans()),
        clock12=draw(st.booleans()),
        am_pm=draw(st.sampled_from(AM_PM)),
        am_pm_space=draw(st.sampled_from([" ", "\u202f", "\u00a0", ""])),
        digits=draw(st.sampled_from(["ascii", "ascii", "persian", "arabic"])),
        newline=newline,
        inner_newline=draw(st.sampled_from([None, "\n"])) if newline == "\r\n" else None,
        bom=draw(st.booleans()),
        lrm=platform is Platform.IOS and draw(st.booleans()),
    )


# Text that cannot spell a marker or a system wording: no ':', brackets or quotes, and no
# 'e' (every English and German system keyword and body marker has one). What the importer
# does with real markers is tested on fixed examples elsewhere.
WORD_CHARS = "abcdfghijklmnopqrstuvwxyzABCDFGHIJKLMNOPQRSTUVWXYZ0123456789üßçñ张三شطرنج👋🏼"
words = st.text(alphabet=WORD_CHARS, min_size=1, max_size=8)
line_text = st.lists(
    st.one_of(words, st.sampled_from([",", ".", "!", "?", "-", "/", "~", "+", "1/2/03"])),
    min_size=1,
    max_size=8,
).map(" ".join)
# Continuation lines that look like dates but not like a header of any dialect.
tricky = st.sampled_from(["2016-04-29 10:30:00", "12/01/2021", "[3/4/05]", "7.45 am", "0:00"])
bodies = st.lists(st.one_of(line_text, tricky), min_size=1, max_size=4).filter(
    lambda lines: lines[0] not in ("[3/4/05]",)
)
authors = st.one_of(
    st.sampled_from(["Priya", "+44 7123 456789", "~ AK", "張三", "Ana-María", "شطرنج"]),
    st.text(alphabet=WORD_CHARS + " -", min_size=1, max_size=20).map(str.strip).filter(bool),
)
SYSTEM_LINES = ["Mallory left", "You added Mallory", '+12 345 578 created group "Groupname"']


@st.composite
def chats(draw: st.DrawFn, seconds: bool) -> list[ChatLine]:
    start = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2098, 1, 1)))
    ts = start.replace(microsecond=0, second=start.second if seconds else 0)
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        gap = draw(st.integers(0, 40 * 86400))
        ts += dt.timedelta(seconds=gap if seconds else gap - gap % 60)
        if draw(st.integers(0, 9)) == 0:
            lines.append(
                ChatLine(timestamp=ts, author=None, body=draw(st.sampled_from(SYSTEM_LINES)))
            )
        else:
            body = "\n".join(draw(bodies))
            lines.append(ChatLine(timestamp=ts, author=draw(authors), body=body))
    return lines


def export(lines: list[ChatLine], style: ExportStyle, **kwargs: Any) -> ChatImport:
    data = render_chat(lines, style).encode("utf-8")
    return parse_export(data, tz="UTC", **kwargs)


def assert_same(chat: ChatImport, lines: list[ChatLine]) -> None:
    assert chat.summary.unparsed == ()
    assert len(chat.entries) == len(lines)
    for entry, line in zip(chat.entries, lines, strict=True):
        assert entry.timestamp.replace(tzinfo=None) == line.timestamp
        if line.author is None:
            assert isinstance(entry, SystemEvent)
            assert entry.author is None and entry.text == line.body
        else:
            assert isinstance(entry, ParsedMessage)
            assert entry.kind is MessageKind.TEXT
            assert (entry.author, entry.text) == (line.author, line.body)


@PROFILE
@given(data=st.data(), style=styles())
def test_round_trip_with_the_date_order_given(data: st.DataObject, style: ExportStyle) -> None:
    lines = data.draw(chats(seconds=style.seconds))
    chat = export(lines, style, date_order=style.date_order)
    assert_same(chat, lines)
    dialect = chat.dialect
    assert (dialect.platform, dialect.seconds, dialect.clock12) == (
        style.platform,
        style.seconds,
        style.clock12,
    )
    assert dialect.date_order == style.date_order


@PROFILE
@given(data=st.data(), style=styles())
def test_detected_order_is_right_or_refused(data: st.DataObject, style: ExportStyle) -> None:
    # Detection may refuse (AmbiguousDateOrder) but must never settle on a wrong order.
    lines = data.draw(chats(seconds=style.seconds))
    try:
        chat = export(lines, style)
    except AmbiguousDateOrder as exc:
        assert style.date_order != "ymd"
        assert all(line.timestamp.day <= 12 for line in lines)
        assert exc.samples
        return
    assert_same(chat, lines)
    if any(line.timestamp.day > 12 for line in lines) or style.date_order == "ymd":
        assert chat.dialect.date_order == style.date_order


@PROFILE
@given(data=st.data(), style=styles())
def test_import_keys_survive_a_re_export_in_another_dialect(
    data: st.DataObject, style: ExportStyle
) -> None:
    # Same chat, second phone with another locale: keys depend on the minute, not the format.
    lines = data.draw(chats(seconds=style.seconds))
    first = export(lines, style, date_order=style.date_order, chat_name="c")
    other = ExportStyle(platform=Platform.IOS, seconds=True, clock12=True)
    second = export(lines, other, date_order="dmy", chat_name="c")
    assert [e.import_key for e in first.entries] == [e.import_key for e in second.entries]
    assert len({e.import_key for e in first.entries}) == len(lines)


@pytest.mark.parametrize("platform", list(Platform))
def test_dialect_is_set_by_the_majority_not_the_first_line(platform: Platform) -> None:
    style = ExportStyle(platform=platform, date_order="dmy", seconds=True)
    foreign = ExportStyle(
        platform=Platform.ANDROID if platform is not Platform.ANDROID else Platform.IOS
    )
    start = dt.datetime(2021, 1, 13, 9, 0, 0)
    lines = [
        ChatLine(timestamp=start + dt.timedelta(minutes=k), author="Bob", body=f"line {k}")
        for k in range(5)
    ]
    first = render_chat([ChatLine(timestamp=start, author="Eve", body="pasted")], foreign)
    chat = parse_export((first + render_chat(lines, style)).encode(), tz="UTC")
    assert chat.dialect.platform is platform
    assert [e.text for e in chat.entries] == [f"line {k}" for k in range(5)]
    (preamble,) = chat.summary.unparsed
    assert (preamble.line_no, preamble.reason) == (1, UnparsedReason.BEFORE_FIRST_MESSAGE)
