"""Attachments everywhere, in Chromium: a group gets an image with a caption from the
attach button, a file dropped on the conversation and one pasted into the composer; the
other member receives them; images open in a viewer driven by the keyboard; search finds
a file by its name."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.webapps import registered

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect
Image = pytest.importorskip("PIL.Image", reason="the image tests need Pillow")

# A file made in the page and handed over as a drop or a paste (DataTransfer).
HAND_OVER = """([kind, name, type, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type }));
  if (kind === "drop") {
    const target = document.querySelector("#pane > section.chat");
    const init = { dataTransfer: data, bubbles: true, cancelable: true };
    target.dispatchEvent(new DragEvent("dragover", init));
    target.dispatchEvent(new DragEvent("drop", init));
  } else {
    document.querySelector(".composer textarea").dispatchEvent(
      new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }
}"""


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def hand_over(page: Any, kind: str, name: str, type_: str, data: bytes) -> None:
    page.evaluate(HAND_OVER, [kind, name, type_, base64.b64encode(data).decode()])


def test_files_in_a_group_with_captions_drop_paste_viewer_and_search(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages, tmp_path: Path
) -> None:
    alice_app = registered(apps, web_server, "falice7")
    bob_app = registered(apps, web_server, "fbob7")
    with alice_app.http() as http:
        r = http.post("/api/groups", json={"name": "Trip", "members": "fbob7"})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
    alice = pages.open("alice", f"{alice_app.base}/?k={alice_app.secret}")
    expect(alice.locator("#connection")).to_have_text("Online")
    alice.goto(f"{alice_app.base}/#/group/{group}")
    expect(alice.locator("#group-title")).to_have_text("Trip")

    # The attach button, then a caption.
    beach = tmp_path / "beach.png"
    beach.write_bytes(png((30, 144, 255)))
    with alice.expect_file_chooser() as chooser:
        alice.get_by_role("button", name="Attach a file or image").click()
    chooser.value.set_files(str(beach))
    staged = alice.get_by_role("dialog", name="Send beach.png")
    staged.get_by_label("Caption").fill("The beach at noon")
    staged.get_by_label("Caption").press("Enter")
    sent = alice.locator(".msg.out").filter(has=alice.locator("img[alt='beach.png']"))
    expect(sent.locator(".text")).to_have_text("The beach at noon")
    expect(sent).to_have_attribute("data-status", re.compile("^(sent|delivered|read)$"))

    # A file dropped on the conversation; an image pasted into the composer.
    hand_over(alice, "drop", "plan.txt", "text/plain", b"Day 1: beach\nDay 2: hills\n")
    alice.get_by_role("dialog", name="Send plan.txt").get_by_role("button", name="Send").click()
    plan = alice.locator("#messages").get_by_role("link", name="📎 plan.txt")
    expect(plan).to_be_visible(timeout=15_000)
    hand_over(alice, "paste", "hills.png", "image/png", png((34, 139, 34)))
    alice.get_by_role("dialog", name="Send hills.png").get_by_role("button", name="Send").click()
    expect(alice.locator(".msg.out img[alt='hills.png']")).to_have_count(1, timeout=15_000)
    # Text pasted as text stays text.
    alice.locator("#group-composer-text").focus()
    alice.evaluate(
        """() => { const d = new DataTransfer(); d.setData("text/plain", "x");
        document.querySelector(".composer textarea").dispatchEvent(
          new ClipboardEvent("paste", { clipboardData: d, bubbles: true, cancelable: true })); }"""
    )
    expect(alice.locator("#send-files")).to_have_count(0)

    # Bob, the other member, receives all three, the caption with its image.
    bob = pages.open("bob", f"{bob_app.base}/?k={bob_app.secret}")
    expect(bob.locator("#connection")).to_have_text("Online")
    bob.goto(f"{bob_app.base}/#/group/{group}")
    got = bob.locator(".msg.in").filter(has=bob.locator("img[alt='beach.png']"))
    expect(got.locator(".text")).to_have_text("The beach at noon", timeout=15_000)
    expect(got.locator("img")).to_have_js_property("complete", True)
    assert got.locator("img").evaluate("i => i.naturalWidth") == 48
    plan = bob.locator("#messages").get_by_role("link", name="📎 plan.txt")
    expect(plan).to_be_visible(timeout=15_000)
    expect(bob.locator(".msg.in img[alt='hills.png']")).to_have_count(1, timeout=15_000)

    # The viewer: opened by a click, arrows go through the images, Escape closes it.
    bob.get_by_role("button", name="Open beach.png").click()
    viewer = bob.get_by_role("dialog", name="Image viewer")
    expect(viewer).to_contain_text("beach.png (1 of 2)")
    bob.keyboard.press("ArrowRight")
    expect(viewer).to_contain_text("hills.png (2 of 2)")
    expect(viewer.locator("img")).to_have_attribute("alt", "hills.png")
    bob.keyboard.press("ArrowLeft")
    expect(viewer).to_contain_text("beach.png (1 of 2)")
    bob.keyboard.press("Escape")
    expect(viewer).to_have_count(0)

    # Search finds a file by its name.
    bob.goto(f"{bob_app.base}/#/")
    bob.fill("#search", "plan.tx")
    expect(bob.locator("#search-summary")).to_have_text("1 message found")
    expect(bob.locator("#search-results .chat-last")).to_have_text("📎 plan.txt")
    # Typed refusals: a group this device is not in, a caption over the limit.
    headers = {"x-baat-request": "1", "content-type": "application/octet-stream"}
    with alice_app.http() as http:
        base = {"name": "x.txt", "upload": "refused1"}
        r = http.post(
            "/api/attachments", params={**base, "chat": "g:unknown"}, content=b"x", headers=headers
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "attachment_error")
        long = {**base, "chat": group, "caption": "x" * 16_001}
        r = http.post("/api/attachments", params=long, content=b"x", headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "too_long")
    assert pages.errors(alice) == [] and pages.errors(bob) == []
