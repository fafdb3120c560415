"""The bound on what the attachments of one import may add up to (docs/IMPORT.md, "Limits")."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path

import pytest

from baat.client.importing import import_chat
from baat.client.store import Store
from baat.importers import whatsapp
from baat.importers.whatsapp import (
    AttachmentsTooLarge,
    ExportTooLarge,
    default_attachment_limit,
    open_export,
)
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export


def chat_with(names: list[str]) -> str:
    lines = [ChatLine(timestamp=dt.datetime(2024, 1, 20, 9), author="Ravi", body="hi")]
    lines += [
        ChatLine(
            timestamp=dt.datetime(2024, 1, 20, 9, i + 1),
            author="Ravi",
            body=f"{name} (file attached)",
        )
        for i, name in enumerate(names)
    ]
    return render_chat(lines, ExportStyle())


def test_attachments_past_the_limit_are_refused_each_entry_counted_once() -> None:
    media = {f"IMG-{i}.jpg": bytes([i]) * 1000 for i in range(3)}
    data = zip_export(chat_with(list(media)), media=media)
    with open_export(data, max_attachment_bytes=2500) as export:
        assert export.read_attachment("IMG-0.jpg") == media["IMG-0.jpg"]
        assert export.read_attachment("IMG-1.jpg") == media["IMG-1.jpg"]
        # Reading an entry again costs nothing more.
        with export.open_attachment("IMG-0.jpg") as f:
            assert f.read() == media["IMG-0.jpg"]
        with pytest.raises(AttachmentsTooLarge, match="more than the limit of 2,500 bytes"):
            export.read_attachment("IMG-2.jpg")
    assert issubclass(AttachmentsTooLarge, ExportTooLarge)
    assert issubclass(AttachmentsTooLarge, whatsapp.WhatsAppImportError)


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", chat_with(["VID-1.mp4"]))
        zf.writestr("VID-1.mp4", b"\0" * (64 << 20))  # 64 MiB of zeros, ~64 KiB deflated
    data = buffer.getvalue()
    assert len(data) < 1 << 20
    with (
        open_export(data, max_attachment_bytes=1 << 20) as export,
        pytest.raises(AttachmentsTooLarge, match=r"VID-1\.mp4"),
    ):
        export.open_attachment("VID-1.mp4")


def test_the_default_limit_is_half_the_free_disk_space(tmp_path: Path) -> None:
    free = shutil.disk_usage(Path.home()).free
    # The disk is shared: allow for what others write meanwhile.
    assert abs(default_attachment_limit() - free // 2) < 256 << 20
    assert abs(default_attachment_limit(tmp_path) - shutil.disk_usage(tmp_path).free // 2) < (
        256 << 20
    )
    # Without a limit given, an ordinary export reads fine under the default.
    data = zip_export(chat_with(["IMG-0.jpg"]), media={"IMG-0.jpg": b"x" * 10})
    with open_export(data) as export:
        assert export.read_attachment("IMG-0.jpg") == b"x" * 10


def test_an_import_past_the_limit_stores_nothing_and_can_be_retried(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "profile", "passphrase")
    try:
        media = {f"IMG-{i}.jpg": bytes([i]) * 4000 for i in range(3)}
        path = tmp_path / "WhatsApp Chat - Ravi.zip"
        path.write_bytes(zip_export(chat_with(list(media)), media=media))
        with open_export(path, max_attachment_bytes=10_000) as export:
            chat = export.parse(date_order="dmy", tz="UTC")
            with pytest.raises(AttachmentsTooLarge):
                import_chat(store, export, chat)
        assert store.messages() == []
        with open_export(path, max_attachment_bytes=12_000) as export:
            result = import_chat(store, export, export.parse(date_order="dmy", tz="UTC"))
        assert result is not None
        assert len(store.messages()) == 4
    finally:
        store.close()
