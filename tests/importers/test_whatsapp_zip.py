"""Zip exports: finding the transcript, linking media, reading attachments lazily."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from pathlib import Path

import pytest

from baat.importers.whatsapp import (
    AttachmentNotInExport,
    AttachmentStatus,
    CorruptZip,
    MediaType,
    MessageKind,
    ParsedMessage,
    chat_name_from_file,
    open_export,
    parse_export,
)
from baat.importers.whatsapp.testing import zip_export

IOS_CHAT = (
    "\u200e[31/12/2022 11:40:20] Family: \u200eMessages and calls are end-to-end encrypted.\n"
    "[31/12/2022 11:40:26] John Doe: \u200e<attached: 00000001-AUDIO-2022-12-31-11-40-26.opus>\n"
    "[31/12/2022 11:41:00] John Doe: \u200e<attached: 00000002-PHOTO-2022-12-31-11-41-00.jpg>\n"
    "[31/12/2022 11:42:00] Ravi: image omitted\n"
    "[31/12/2022 11:43:00] Ravi: see you\n"
)
ANDROID_CHAT = (
    "29/07/21, 11:26 am - Wasi: IMG-20190108-WA0004.jpg (file attached)\n"
    "Happy Birthday!\n"
    "29/07/21, 11:27 am - Wasi: notes.txt (file attached)\n"
    "29/07/21, 11:28 am - Anna: <Media omitted>\n"
)
OPUS = b"OggS" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 5000


def ios_zip(tmp_path: Path, name: str = "WhatsApp Chat - Family.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(
        zip_export(
            IOS_CHAT,
            media={
                "00000001-AUDIO-2022-12-31-11-40-26.opus": OPUS,
                "00000003-Peter.vcf": b"BEGIN:VCARD\nEND:VCARD\n",
            },
        )
    )
    return path


def test_ios_zip_links_attachments_and_reads_them_lazily(tmp_path: Path) -> None:
    with open_export(ios_zip(tmp_path)) as export:
        assert export.chat_name == "Family"
        assert export.transcript_name == "_chat.txt"
        chat = export.parse(tz="Europe/London")
        messages = chat.messages
        audio, photo, omitted = (m.attachment for m in messages[:3])
        assert audio is not None and photo is not None and omitted is not None
        assert audio.status is AttachmentStatus.ATTACHED
        assert audio.media_type is MediaType.AUDIO
        assert (audio.zip_entry, audio.size) == (
            "00000001-AUDIO-2022-12-31-11-40-26.opus",
            len(OPUS),
        )
        assert photo.status is AttachmentStatus.NOT_IN_EXPORT and photo.zip_entry is None
        assert omitted.status is AttachmentStatus.OMITTED and omitted.media_type is MediaType.IMAGE
        assert export.read_attachment(audio) == OPUS
        with export.open_attachment(audio.name or "") as stream:
            assert stream.read(4) == b"OggS"
        with pytest.raises(AttachmentNotInExport):
            export.read_attachment(photo)
    summary = chat.summary
    assert (summary.attachments_linked, summary.attachments_not_in_export) == (1, 1)
    assert summary.attachments_omitted == 1
    # The contact card iOS includes even "without media" is reported, not silently ignored.
    assert summary.unlinked_files == ("00000003-Peter.vcf",)
    assert summary.system_events == 1 and chat.system_events[0].author == "Family"


def test_android_zip_with_a_text_document_among_the_media(tmp_path: Path) -> None:
    data = zip_export(
        ANDROID_CHAT,
        transcript_name="WhatsApp Chat with Wasi.txt",
        media={"IMG-20190108-WA0004.jpg": JPEG, "notes.txt": b"shopping list\nmilk\n"},
    )
    path = tmp_path / "WhatsApp Chat with Wasi.zip"
    path.write_bytes(data)
    with open_export(path) as export:
        assert export.transcript_name == "WhatsApp Chat with Wasi.txt"
        assert export.chat_name == "Wasi"
        chat = export.parse(tz="UTC")
        photo, notes, omitted = chat.messages
        assert photo.text == "Happy Birthday!"
        assert photo.attachment is not None and export.read_attachment(photo.attachment) == JPEG
        assert notes.attachment is not None
        assert notes.attachment.status is AttachmentStatus.ATTACHED
        assert notes.attachment.media_type is MediaType.DOCUMENT
        assert omitted.kind is MessageKind.ATTACHMENT
    assert chat.summary.unlinked_files == ()


def test_zip_from_bytes_and_nested_folder_with_macos_debris() -> None:
    buffer = io.BytesIO()
    nfd = unicodedata.normalize("NFD", "00000001-AUDIO-Café.opus")
    chat = IOS_CHAT.replace("00000001-AUDIO-2022-12-31-11-40-26.opus", "00000001-AUDIO-Café.opus")
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("__MACOSX/Family/._chat.txt", b"\x00\x05\x16\x07junk")
        zf.writestr("Family/", b"")
        zf.writestr("Family/_chat.txt", chat.encode())
        zf.writestr(f"Family/{nfd}", OPUS)  # macOS stores decomposed names
    with open_export(buffer.getvalue(), chat_name="Fam") as export:
        assert export.transcript_name == "Family/_chat.txt"
        parsed = export.parse(tz="UTC")
        audio = parsed.messages[0].attachment
        assert audio is not None and audio.status is AttachmentStatus.ATTACHED
        assert audio.zip_entry == f"Family/{nfd}"
        assert export.read_attachment(audio) == OPUS
    assert parsed.chat_name == "Fam"


def test_the_transcript_is_chosen_over_other_chats_shared_as_documents(tmp_path: Path) -> None:
    # Spec 1: zip and txt names mangle characters differently; compare letters and digits.
    other = "01/01/2020, 10:00 - Someone: forwarded chat\n"
    data = zip_export(
        ANDROID_CHAT,
        transcript_name="School 20252026.txt",
        media={"a forwarded chat.txt": other.encode()},
    )
    path = tmp_path / "School 2025_2026.zip"
    path.write_bytes(data)
    chat = parse_export(path, tz="UTC")
    assert chat.summary.unlinked_files == ("a forwarded chat.txt",)
    assert chat.messages[0].author == "Wasi"


def test_crc_damage_in_an_attachment_surfaces_on_read() -> None:
    # Stored, not deflated, so that the attachment's bytes can be found and flipped.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("_chat.txt", IOS_CHAT.encode())
        zf.writestr("00000001-AUDIO-2022-12-31-11-40-26.opus", OPUS)
    raw = bytearray(buffer.getvalue())
    raw[raw.index(b"OggS") + 10] ^= 0xFF
    with open_export(bytes(raw)) as export:
        audio = export.parse(tz="UTC").messages[0].attachment
        assert audio is not None
        with pytest.raises(CorruptZip):
            export.read_attachment(audio)


def test_bare_txt_has_no_attachments_to_read(tmp_path: Path) -> None:
    path = tmp_path / "WhatsApp Chat with Wasi.txt"
    path.write_text(ANDROID_CHAT, encoding="utf-8")
    with open_export(path) as export:
        assert export.chat_name == "Wasi" and export.files == ()
        photo = export.parse(tz="UTC").messages[0]
        assert isinstance(photo, ParsedMessage) and photo.attachment is not None
        assert photo.attachment.status is AttachmentStatus.NOT_IN_EXPORT
        with pytest.raises(AttachmentNotInExport) as info:
            export.read_attachment(photo.attachment)
        assert isinstance(info.value, KeyError)
        assert "IMG-20190108-WA0004.jpg" in str(info.value)


@pytest.mark.parametrize(
    ("file_name", "chat_name"),
    [
        ("WhatsApp Chat with Anna.txt", "Anna"),
        ("WhatsApp Chat - Anna Maria.zip", "Anna Maria"),
        ("WhatsApp Chat with School 20252026 (1).zip", "School 20252026"),
        ("Conversa do WhatsApp com Maria.txt", "Maria"),
        ("WhatsApp-Chat mit Jonas.txt", "Jonas"),
        ("Chat de WhatsApp con Lucía.zip", "Lucía"),
        ("_chat.txt", None),
        ("export.txt", None),
    ],
)
def test_chat_name_from_file(file_name: str, chat_name: str | None) -> None:
    assert chat_name_from_file(file_name) == chat_name
