"""Importing a WhatsApp export in the browser: upload, preview, the date-order choice, who
is "me", progress, the imported chat in the list; a re-import adds nothing; a binary file
gets a clear error. A real ``baat serve``, a real ``baat app`` and Chromium at phone width."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

PASS = "correct horse battery staple"
PHOTO = "IMG-20240301-WA0001.jpg"


def export_zip(folder: Path) -> Path:
    """Dates that read both ways (no day above 12, one month; the files' names carry an
    earlier day, so they settle nothing), one photo in the zip and
    one video the zip lacks, a system line, and a line before the first header."""

    def at(day: int, hour: int) -> dt.datetime:
        return dt.datetime(2024, 3, day, hour, 15)

    rows = [
        (2, 9, None, "Messages and calls are end-to-end encrypted."),
        (2, 10, "Zara Ahmed", "Salaam! Are we still on for Friday?"),
        (5, 11, "Me Myself", "Yes, see you at 7"),
        (5, 12, "Zara Ahmed", f"{PHOTO} (file attached)"),
        (9, 8, "Me Myself", "VID-20240301-WA0002.mp4 (file attached)"),
        (9, 9, "Zara Ahmed", "Lovely photo\nsecond line"),
    ]
    lines = [ChatLine(timestamp=at(d, h), author=a, body=b) for d, h, a, b in rows]
    text = "exported by a phone\n" + render_chat(lines, ExportStyle(date_order="dmy"))
    data = zip_export(
        text,
        transcript_name="WhatsApp Chat with Zara.txt",
        media={PHOTO: b"\xff\xd8\xff\xe0" + b"jpeg" * 300},
    )
    path = folder / "WhatsApp Chat with Zara.zip"
    path.write_bytes(data)
    return path


def test_import_whatsapp_export(
    web_server: ServerProcess,
    apps: Callable[..., AppProcess],
    pages: Pages,
    tmp_path: Path,
) -> None:
    export = export_zip(tmp_path)
    app = apps("imp", web_server.url, passphrase=PASS)
    page = pages.open("imp", app.url, width=375, height=740)
    page.fill("#reg-server", web_server.url)
    page.fill("#reg-username", "impy")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#me")).to_have_text("Signed in as impy")

    # The screen is in the navigation and reachable with the keyboard.
    # At phone width the screens are behind "Menu", which opens on its first link.
    page.get_by_role("button", name="Menu").press("Enter")
    expect(page.locator("#nav-chats")).to_be_focused()
    page.focus("#nav-import")
    page.keyboard.press("Enter")
    expect(page.locator("#main-nav")).to_be_hidden()
    expect(page.locator("#import-title")).to_be_focused()
    expect(page.locator("#nav-import")).to_have_attribute("aria-current", "")
    expect(page.get_by_label("WhatsApp export (.txt or .zip)")).to_be_visible()

    # Upload: the dates read both ways, so the order is asked before anything else.
    page.set_input_files("#import-file", str(export))
    samples = page.locator(".samples")
    expect(samples).to_contain_text("2024-03-05")
    expect(samples).to_contain_text("2024-05-03")
    expect(page.locator("#import-confirm")).to_have_count(0)
    page.get_by_label("Day first (31/12/2024)").check()

    # The preview: the parser's counts.
    expect(page.locator("#import-messages")).to_have_text("5")
    expect(page.locator("#import-authors")).to_have_text("Zara Ahmed (3), Me Myself (2)")
    expect(page.locator("#import-system")).to_have_text("1")
    expect(page.locator("#import-linked")).to_have_text("1")
    expect(page.locator("#import-missing")).to_have_text("1")
    expect(page.locator("#import-unparsed")).to_have_text("1")
    expect(page.locator(".unparsed")).to_contain_text("Line 1: exported by a phone")
    expect(page.get_by_label("Day first (31/12/2024)")).to_be_checked()
    page.get_by_label("Which author are you?").select_option("Me Myself")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    # Import: the result, then the chat in the list with its messages and attachments.
    page.locator("#import-confirm").click()
    expect(page.locator("#import-result")).to_have_text("Imported 5 messages and 1 notice.")
    expect(page.locator("#import-progress")).to_have_js_property("value", 1)
    page.locator("#import-open").click()
    expect(page.locator("#chat-title")).to_have_text("Zara")
    expect(page.locator(".msg.in .text").nth(1)).to_have_text("Salaam! Are we still on for Friday?")
    expect(page.locator(".msg.out")).to_have_count(2)
    # The stored photo is shown as an image (served from the store), not a name alone.
    expect(page.locator(f".msg .attachment.image img[alt='{PHOTO}']")).to_have_count(1)
    expect(
        page.locator(".msg .attachment").filter(has_text="VID-20240301-WA0002.mp4")
    ).to_have_count(1)
    page.goto(app.base + "/#/")
    expect(page.locator("#chat-list .chat-name")).to_have_text(["Zara"])
    expect(page.locator("#chat-list .chat-last")).to_have_text("Lovely photo\nsecond line")

    # The same file again adds nothing.
    page.goto(app.base + "/#/import")
    page.set_input_files("#import-file", str(export))
    page.get_by_label("Day first (31/12/2024)").check()
    expect(page.locator("#import-messages")).to_have_text("5")
    page.locator("#import-confirm").click()
    expect(page.locator("#import-result")).to_have_text(
        "Nothing new: every message was already imported."
    )
    with app.http() as http:
        chats = http.get("/api/chats").json()["chats"]
        assert [c["username"] for c in chats] == ["Zara"]
        messages = http.get("/api/messages", params={"chat": chats[0]["chat"]}).json()
        assert len(messages["messages"]) == 6

    # A binary file: a clear error, nothing kept.
    page.set_input_files(
        "#import-file",
        files=[{"name": "photo.txt", "mimeType": "text/plain", "buffer": bytes(range(256)) * 8}],
    )
    expect(page.locator("#import-error")).to_have_text(
        re.compile("binary data.*a chat export is UTF-8 text")
    )
    expect(page.locator("#import-confirm")).to_have_count(0)
    assert list((app.profile / "import-uploads").iterdir()) == []

    # The upload is not JSON: it needs the header a cross-site form cannot send.
    with app.http() as http:
        refused = http.post("/api/import/upload", content=export.read_bytes())
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        other = http.post(
            "/api/import/upload",
            content=b"x",
            headers={"x-baat-request": "1", "origin": "http://evil.example"},
        )
        assert other.status_code == 403

    statuses = re.compile(r"Failed to load resource: the server responded with a status of 400 ")
    assert [e for e in pages.errors(page) if not statuses.match(e)] == []
