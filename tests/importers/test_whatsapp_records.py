"""Records, summary, import keys, progress reporting and the public surface."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec
import pytest

import baat.importers.whatsapp as whatsapp
from baat.importers.whatsapp import (
    MessageKind,
    ParsedMessage,
    SystemEventKind,
    open_export,
    parse_export,
)
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export

DOCS = Path(__file__).parents[2] / "docs" / "IMPORT.md"

CHAT = (
    "\u200e[13/01/2022, 08:00:00] Book club: \u200eMessages and calls are end-to-end encrypted.\n"
    "[13/01/2022, 08:01:10] Ann: hi\n"
    "[13/01/2022, 08:01:40] Ann: hi\n"
    "[13/01/2022, 08:02:00] Bob: \u200e<attached: 00000001-PHOTO-2022-01-13-08-02-00.jpg>\n"
    "[13/01/2022, 08:03:00] Bob: two\nlines\n"
    "\u200e[14/01/2022, 09:00:00] Bob: \u200eThis message was deleted.\n"
)


def test_records_are_frozen_and_encode_to_json() -> None:
    chat = parse_export(CHAT.encode(), tz="Europe/Paris")
    message = chat.messages[0]
    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[misc]
    decoded = msgspec.json.decode(msgspec.json.encode(chat))
    assert decoded["entries"][1]["timestamp"] == "2022-01-13T08:01:10+01:00"
    assert decoded["summary"]["messages_by_kind"] == {"text": 3, "attachment": 1, "deleted": 1}


def test_summary() -> None:
    chat = parse_export(CHAT.encode(), tz="UTC")
    s = chat.summary
    assert (s.lines, s.messages, s.system_events) == (7, 5, 1)
    assert s.authors == ("Ann", "Bob")
    assert s.messages_by_author == {"Ann": 2, "Bob": 3}
    assert s.system_events_by_kind == {SystemEventKind.ENCRYPTION_NOTICE: 1}
    assert s.messages_by_kind[MessageKind.TEXT] == 3
    assert s.first_timestamp == dt.datetime(2022, 1, 13, 8, 0, tzinfo=dt.UTC)
    assert s.last_timestamp == dt.datetime(2022, 1, 14, 9, 0, tzinfo=dt.UTC)
    assert (s.attachments_linked, s.attachments_not_in_export) == (0, 1)
    assert chat.dialect.date_order == "dmy" and chat.chat_name is None


def test_import_keys_are_stable_and_distinct() -> None:
    first = parse_export(CHAT.encode(), tz="UTC", chat_name="Book club")
    again = parse_export(CHAT.encode(), tz="Asia/Tokyo", chat_name="Book club")
    keys = [e.import_key for e in first.entries]
    assert keys == [e.import_key for e in again.entries]  # the zone does not matter
    assert len(set(keys)) == len(keys)  # "hi", "hi" in the same minute stay apart
    assert all(re.fullmatch("[0-9a-f]{64}", k) for k in keys)
    other_chat = parse_export(CHAT.encode(), tz="UTC", chat_name="Other")
    assert not set(keys) & {e.import_key for e in other_chat.entries}


def test_import_keys_match_across_overlapping_and_media_variants() -> None:
    lines = [
        ChatLine(timestamp=dt.datetime(2022, 1, 13, 8, k), author="Ann", body=f"message {k}")
        for k in range(10)
    ]
    style = ExportStyle(date_order="dmy")
    older = parse_export(render_chat(lines[:7], style).encode(), tz="UTC", chat_name="c")
    newer = parse_export(render_chat(lines[4:], style).encode(), tz="UTC", chat_name="c")
    assert [e.import_key for e in older.entries[4:]] == [e.import_key for e in newer.entries[:3]]

    # Exported "with media" and "without media": the caption identifies the message.
    with_media = "13/01/2022, 08:00 - Ann: IMG-20220113-WA0001.jpg (file attached)\nlook\n"
    without = "13/01/2022, 08:00 - Ann: <Media omitted>\n"
    a = parse_export(zip_export(with_media, transcript_name="WhatsApp Chat with Ann.txt"))
    b = parse_export(without.encode(), chat_name="Ann")
    assert a.chat_name == "Ann"
    assert a.messages[0].text == "look" and b.messages[0].text == ""
    plain_a = parse_export(with_media.replace("\nlook", "").encode(), chat_name="Ann")
    assert plain_a.entries[0].import_key == b.entries[0].import_key


def test_progress_reports_lines_up_to_the_total() -> None:
    lines = [
        ChatLine(timestamp=dt.datetime(2022, 1, 13) + dt.timedelta(minutes=k), author="A", body="x")
        for k in range(10_000)
    ]
    data = render_chat(lines, ExportStyle(date_order="dmy")).encode()
    calls: list[tuple[int, int]] = []
    parse_export(data, tz="UTC", progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 3
    assert all(total == 10_000 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (10_000, 10_000)


def test_reparse_with_another_order_keeps_the_zip_open() -> None:
    data = zip_export("[03/04/2023, 10:00:00] Ann: hi\n")
    with open_export(data) as export:
        dialect = export.detect_dialect()
        assert dialect.date_order is None and dialect.seconds
        with pytest.raises(whatsapp.AmbiguousDateOrder):
            export.parse(tz="UTC")
        message = export.parse(date_order="mdy", tz="UTC").entries[0]
        assert isinstance(message, ParsedMessage) and message.timestamp.month == 3


def test_public_names_are_the_documented_ones() -> None:
    section = DOCS.read_text(encoding="utf-8").split("## Public API", 1)[1].split("\n## ", 1)[0]
    bullets = re.findall(r"^- (.*(?:\n  .*)*)", section, flags=re.MULTILINE)
    # Each bullet names one or more exports before an optional " — " description.
    documented = {name for b in bullets for name in re.findall(r"`(\w+)`", b.split(" — ")[0])}
    assert documented == set(whatsapp.__all__)
    for name in whatsapp.__all__:
        assert hasattr(whatsapp, name)
