"""Files in the browser: Alice attaches an image and a text file, Bob sees the image inline
and downloads the file; a real ``baat serve``, two real ``baat app`` processes, Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from e2e.test_web_chat import no_console_errors, register

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

PASS = "correct horse battery staple"
NOTE = "Shopping list\n- chai\n- रोटी\n"


def upload_events(page: Any, seen: list[dict[str, Any]]) -> None:
    """Collect into ``seen`` every ``upload`` event the page's WebSocket receives, as it
    arrives; set up before the page loads, since its WebSocket opens while it does."""

    def on_socket(ws: Any) -> None:
        def frame(payload: str | bytes) -> None:
            event = json.loads(payload)
            if event.get("type") == "upload":
                seen.append(event)

        ws.on("framereceived", frame)

    page.on("websocket", on_socket)


def test_attach_image_and_file(
    web_server: ServerProcess,
    apps: Callable[..., AppProcess],
    pages: Pages,
    tmp_path: Path,
) -> None:
    picture = tmp_path / "sunset.png"
    Image.new("RGB", (64, 40), (240, 120, 30)).save(picture)
    note = tmp_path / "list.txt"
    note.write_text(NOTE, encoding="utf-8")

    alice_app = apps("alice", web_server.url, passphrase=PASS)
    bob_app = apps("bob", web_server.url, passphrase=PASS)
    events: list[dict[str, Any]] = []
    alice = pages.open("alice", alice_app.url, before=lambda page: upload_events(page, events))
    bob = pages.open("bob", bob_app.url, width=375, height=740)
    register(alice, web_server.url, "alice", None)
    register(bob, web_server.url, "bob", None)
    expect(bob.locator("#connection")).to_have_text("Online")

    # Alice opens the chat and attaches both files with the labelled button's picker.
    alice.fill("#new-chat-name", "bob")
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-title")).to_have_text("bob")
    attach = alice.get_by_role("button", name="Attach a file or image")
    expect(attach).to_be_enabled()
    with alice.expect_file_chooser() as chooser:
        attach.click()
    chooser.value.set_files([str(picture), str(note)])
    # A dialog lists what goes and takes a caption; Send sends both.
    staged = alice.get_by_role("dialog", name="Send 2 files")
    expect(staged).to_contain_text("sunset.png")
    expect(staged.get_by_label("Caption (with the first file)")).to_be_focused()
    staged.get_by_role("button", name="Send").click()
    expect(alice.locator(".msg.out .attachment")).to_have_count(2, timeout=15_000)
    expect(alice.locator(".msg.out .attachment.image img")).to_have_js_property("complete", True)
    assert alice.locator(".msg.out .attachment.image img").evaluate("i => i.naturalWidth") == 64
    expect(alice.locator("#uploads .upload").first).to_have_attribute("data-percent", "100")
    done = [e for e in events if e["done"] == e["total"] and e["total"] > 0]
    assert len({e["upload"] for e in done}) == 2, events
    expect(alice.locator(".msg.out").last).to_have_attribute(
        "data-status", re.compile("^(sent|delivered)$")
    )

    # Bob sees the image inline (the full one, once downloaded) and the file as a link.
    bob.locator("#chat-list a").first.click()
    image = bob.locator(".msg.in .attachment.image img")
    expect(image).to_have_count(1, timeout=15_000)
    expect(image).to_have_attribute("alt", "sunset.png")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("i => i.naturalWidth") == 64
    link = bob.get_by_role("link", name="📎 list.txt")
    expect(link).to_be_visible(timeout=15_000)
    with bob.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "list.txt"
    assert Path(download.value.path()).read_text(encoding="utf-8") == NOTE

    # Served with its own type and a file name; uploads need the custom header.
    with bob_app.http() as http:
        mid = image.evaluate("i => i.closest('[data-att]').dataset.att").split(":", 1)[1]
        r = http.get(f"/api/attachments/{mid}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/png"
        assert r.headers["content-disposition"].startswith('inline; filename="sunset.png"')
        assert r.content.startswith(b"\x89PNG")
        r = http.post("/api/attachments?chat=x&to=alice&name=a.txt&upload=t", content=b"x")
        assert r.status_code == 403
    assert bob.locator(".msg.in .attachment.failed").count() == 0
    no_console_errors(pages, alice)
    no_console_errors(pages, bob)
