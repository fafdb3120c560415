"""Bad input gets a clear, typed error from one tree."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    AttachmentNotInExport,
    CorruptZip,
    DateOrderError,
    DateOrderMismatch,
    EmptyExport,
    ExportTooLarge,
    NoChatInZip,
    NotAChatExport,
    UnknownDialect,
    WhatsAppImportError,
    open_export,
    parse_export,
)
from baat.importers.whatsapp.testing import zip_export

CHAT = "12/01/2021, 18:44 - Priya: Shall we move the group to Signal?\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(64)


def test_error_tree() -> None:
    for error in (
        NotAChatExport,
        EmptyExport,
        ExportTooLarge,
        UnknownDialect,
        NoChatInZip,
        CorruptZip,
        AttachmentNotInExport,
        DateOrderError,
    ):
        assert issubclass(error, WhatsAppImportError)
    assert issubclass(AmbiguousDateOrder, DateOrderError)
    assert issubclass(DateOrderMismatch, DateOrderError)
    assert issubclass(WhatsAppImportError, ValueError)


@pytest.mark.parametrize(
    "data",
    [PNG, b"\x00\x01\x02\x03" * 100, "12/01/2021, 18:44 - A: b".encode("utf-16-le")],
    ids=["png", "zeros", "utf16-without-bom"],
)
def test_binary_input(data: bytes) -> None:
    with pytest.raises(NotAChatExport, match="binary"):
        parse_export(data)


def test_text_that_is_not_utf8() -> None:
    with pytest.raises(NotAChatExport, match="UTF-8"):
        parse_export(CHAT.encode("latin-1") + "Zoë".encode("latin-1") + b"\n" + CHAT.encode())


def test_a_transcript_cut_inside_a_character_keeps_the_rest() -> None:
    data = (CHAT + "12/01/2021, 18:45 - Priya: café").encode()[:-1]
    chat = parse_export(data, tz="UTC", date_order="dmy")
    assert chat.messages[-1].text == "caf"


def test_utf16_with_a_bom_is_accepted() -> None:
    chat = parse_export(CHAT.encode("utf-16"), tz="UTC", date_order="dmy")
    assert chat.messages[0].author == "Priya"


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\r\n  \t\n", "\u200e\n".encode()])
def test_empty_input(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(EmptyExport):
        parse_export(data)
    path = tmp_path / "WhatsApp Chat with Nobody.txt"
    path.write_bytes(data)
    with pytest.raises(EmptyExport):
        parse_export(path)


def test_unknown_dialect_names_the_first_line() -> None:
    with pytest.raises(UnknownDialect, match="Dear diary"):
        parse_export(b"Dear diary,\ntoday nothing happened.\n")


def test_headers_with_only_impossible_times_are_an_unknown_dialect() -> None:
    with pytest.raises(UnknownDialect, match="valid date and time"):
        parse_export(b"12/01/2021, 25:44 - Priya: hi\n", date_order="dmy")


def test_zip_without_a_chat() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("IMG-20210101-WA0001.jpg", PNG)
        zf.writestr("readme.txt", "not a chat at all\n")
    with pytest.raises(NoChatInZip, match=r"readme\.txt"):
        parse_export(buffer.getvalue())


def test_transcript_in_an_unknown_dialect_inside_a_zip() -> None:
    with pytest.raises(UnknownDialect):
        parse_export(zip_export("Heute, 10 Uhr, Bob: hallo\n"))


def test_empty_zip() -> None:
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    with pytest.raises(NoChatInZip, match="empty"):
        parse_export(buffer.getvalue())


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_zip(keep: float, tmp_path: Path) -> None:
    data = zip_export(CHAT * 50, media={"IMG-20210101-WA0001.jpg": PNG * 20})
    cut = data[: int(len(data) * keep)]
    with pytest.raises(CorruptZip, match="truncated or damaged"):
        parse_export(cut)
    path = tmp_path / "WhatsApp Chat - Priya.zip"
    path.write_bytes(cut)
    with pytest.raises(CorruptZip):
        parse_export(path)


def test_zip_name_on_something_else(tmp_path: Path) -> None:
    path = tmp_path / "WhatsApp Chat - Priya.zip"
    path.write_bytes(b"<html>download failed</html>")
    with pytest.raises(CorruptZip, match="not a zip"):
        parse_export(path)


def test_damaged_transcript_entry() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("_chat.txt", (CHAT * 20).encode())
    raw = bytearray(buffer.getvalue())
    raw[raw.index(b"Signal") + 200] ^= 0x01
    with pytest.raises(CorruptZip):
        parse_export(bytes(raw))


def test_transcript_size_limit() -> None:
    with pytest.raises(ExportTooLarge):
        parse_export((CHAT * 100).encode(), max_transcript_bytes=1000)
    with pytest.raises(ExportTooLarge):
        parse_export(zip_export(CHAT * 100), max_transcript_bytes=1000)


def test_missing_path_is_the_callers_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_export(tmp_path / "nope.zip")


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        parse_export(CHAT.encode(), tz="Mars/Olympus")
