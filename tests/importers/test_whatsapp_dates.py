"""Date order, 12/24 h clocks and time zones (spec sections 2, 6 and 8.8)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    DateOrderMismatch,
    UnparsedReason,
    parse_export,
)
from baat.importers.whatsapp._dialect import infer_date_order


def chat(*headers: str, body: str = "Bob: hi") -> bytes:
    return "".join(f"{h} - {body}\n" for h in headers).encode()


def dates_of(data: bytes, **kwargs: object) -> list[tuple[int, int, int]]:
    parsed = parse_export(data, tz="UTC", **kwargs)  # type: ignore[arg-type]
    return [(e.timestamp.year, e.timestamp.month, e.timestamp.day) for e in parsed.entries]


def test_ambiguous_file_is_refused_with_both_readings() -> None:
    data = chat("03/04/23, 10:00", "03/04/23, 11:00", "05/04/23, 09:00", "07/04/23, 09:00")
    with pytest.raises(AmbiguousDateOrder) as info:
        parse_export(data, tz="UTC")
    message = str(info.value)
    assert "2023-04-03 (dmy) or 2023-03-04 (mdy)" in message
    assert "2023-04-05 (dmy) or 2023-05-04 (mdy)" in message
    assert [s.line_no for s in info.value.samples] == [1, 3, 4]
    assert dates_of(data, date_order="dmy")[0] == (2023, 4, 3)
    assert dates_of(data, date_order="mdy")[0] == (2023, 3, 4)


def test_one_day_above_12_anywhere_settles_the_order() -> None:
    headers = [f"0{d}/05/23, 10:00" for d in range(1, 10)] + ["13/05/23, 10:00"]
    assert dates_of(chat(*headers))[-1] == (2023, 5, 13)
    headers = [f"05/0{d}/23, 10:00" for d in range(1, 10)] + ["05/13/23, 10:00"]
    assert dates_of(chat(*headers))[0] == (2023, 5, 1)


def test_month_change_settles_the_order() -> None:
    # 12 March then 1 April: only day-first keeps the month from going backwards.
    assert dates_of(chat("12/03/23, 10:00", "01/04/23, 10:00")) == [(2023, 3, 12), (2023, 4, 1)]
    assert dates_of(chat("03/12/23, 10:00", "04/01/23, 10:00")) == [(2023, 3, 12), (2023, 4, 1)]


def test_progression_that_contradicts_itself_is_not_trusted() -> None:
    runs = [
        (0, ("12", "03", "23"), "a"),
        (1, ("01", "04", "23"), "b"),
        (2, ("02", "01", "23"), "c"),
    ]
    with pytest.raises(AmbiguousDateOrder):
        infer_date_order(runs, None)


def test_year_change_is_not_a_wrap() -> None:
    # 11 Dec 2022 -> 1 Jan 2023 drops both fields across a year; it proves nothing.
    with pytest.raises(AmbiguousDateOrder):
        parse_export(chat("11/12/22, 10:00", "01/01/23, 10:00"), tz="UTC")


def test_explicit_order_that_contradicts_the_file() -> None:
    data = chat("29/01/18, 23:47", "30/01/18, 08:00")
    with pytest.raises(DateOrderMismatch, match="'dmy'") as info:
        parse_export(data, date_order="mdy", tz="UTC")
    assert info.value.example is not None and info.value.example.line_no == 1
    with pytest.raises(DateOrderMismatch):
        parse_export(chat("2023-12-20, 5:46 p.m."), date_order="dmy", tz="UTC")


def test_pasted_header_of_another_order_stays_text_and_is_reported() -> None:
    # Settled as day-first by "29/01", a month-first header inside a message cannot be real.
    data = chat("29/01/18, 23:47", "30/01/18, 08:00") + b"01/31/18, 09:00 - Eve: pasted\n"
    parsed = parse_export(data, tz="UTC")
    assert len(parsed.entries) == 2
    assert parsed.messages[-1].text == "hi\n01/31/18, 09:00 - Eve: pasted"
    (line,) = parsed.summary.unparsed
    assert (line.line_no, line.reason) == (3, UnparsedReason.INVALID_DATE_TIME)


def test_impossible_first_header_is_reported_once() -> None:
    data = b"29/01/18, 25:00 - Bob: early\n" + chat("29/01/18, 23:47")
    (line,) = parse_export(data, tz="UTC").summary.unparsed
    assert (line.line_no, line.reason) == (1, UnparsedReason.INVALID_DATE_TIME)


def test_impossible_12h_time_is_reported() -> None:
    data = chat("29/01/18, 11:47 PM", "29/01/18, 13:04 AM")
    parsed = parse_export(data, tz="UTC")
    assert [u.line_no for u in parsed.summary.unparsed] == [2]
    assert parsed.messages[0].text.endswith("13:04 AM - Bob: hi")


def test_zero_hour_with_am_is_just_after_midnight() -> None:
    # Real phones (and two unrelated parsers' fixtures) write "00:04 AM": a header, not text.
    data = chat("29/01/18, 11:47 PM", "30/01/18, 00:04 AM", "30/01/18, 00:23 AM")
    parsed = parse_export(data, tz="UTC")
    assert parsed.summary.unparsed == ()
    assert [(m.timestamp.hour, m.timestamp.minute) for m in parsed.messages] == [
        (23, 47),
        (0, 4),
        (0, 23),
    ]


@pytest.mark.parametrize(
    ("header", "hour"),
    [("12:05 AM", 0), ("12:05 PM", 12), ("1:05 am", 1), ("1:05 p.m.", 13), ("11:05 PM", 23)],
)
def test_12h_clock(header: str, hour: int) -> None:
    parsed = parse_export(chat(f"29/01/18, {header}"), tz="UTC")
    assert (parsed.entries[0].timestamp.hour, parsed.entries[0].timestamp.minute) == (hour, 5)


def test_two_digit_years_are_20xx() -> None:
    assert dates_of(chat("29/01/99, 10:00"))[0] == (2099, 1, 29)


def test_repeated_hour_in_file_order() -> None:
    # Europe/Berlin, 29 Oct 2023: 02:00-03:00 happens twice. Going back from 02:45 to 02:10
    # shows the clock went back, so 02:10 and 02:40 are the second pass.
    data = chat(
        "29/10/23, 01:50", "29/10/23, 02:30", "29/10/23, 02:45", "29/10/23, 02:10",
        "29/10/23, 02:40", "29/10/23, 03:05",
    )  # fmt: skip
    parsed = parse_export(data, tz="Europe/Berlin")
    stamps = [e.timestamp for e in parsed.entries]
    assert [t.fold for t in stamps] == [0, 0, 0, 1, 1, 0]
    utc = [t.astimezone(dt.UTC) for t in stamps]
    assert utc == sorted(utc)
    assert [t.strftime("%H:%M") for t in utc] == [
        "23:50",
        "00:30",
        "00:45",
        "01:10",
        "01:40",
        "02:05",
    ]
    assert parsed.summary.ambiguous_local_times == (2, 3, 4, 5)


def test_nonexistent_time_uses_the_offset_before_the_change() -> None:
    parsed = parse_export(chat("26/03/23, 02:30"), tz="Europe/Berlin")
    ts = parsed.entries[0].timestamp
    assert (ts.hour, ts.minute) == (2, 30)  # the wall time as written is kept
    assert ts.astimezone(dt.UTC).strftime("%H:%M") == "01:30"
    assert parsed.summary.nonexistent_local_times == (1,)


def test_time_zone_as_tzinfo_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    data = chat("29/01/18, 23:47")
    parsed = parse_export(data, tz=ZoneInfo("Asia/Kolkata"))
    assert parsed.entries[0].timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30)
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    parsed = parse_export(data)
    assert parsed.tz == "America/Sao_Paulo"
    assert parsed.entries[0].timestamp.utcoffset() == dt.timedelta(hours=-2)  # DST in 2018


def test_default_zone_without_tz_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    parsed = parse_export(chat("29/01/18, 23:47"))
    assert parsed.entries[0].timestamp.tzinfo is not None and parsed.tz
