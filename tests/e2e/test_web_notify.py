"""Imported chats in the chat list (read-only, searchable, their photo shown), desktop
notifications asked for on a click and shown only for a hidden tab, the unread count in the
title, and the web app manifest. A real ``baat serve``, a real ``baat app``, the real
``baat`` CLI for the other person, and Chromium.

Chromium headless cannot hide a tab, so the page's ``visibilityState`` is driven by the
test, and ``Notification`` is replaced by a recorder before the app's scripts run: it
records each notification and each permission request with whether the request came from
a user gesture (``navigator.userActivation.isActive``)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from baat.importers.whatsapp import Platform
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export
from support.cli import baat

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

PASS = "correct horse battery staple"
# A real 1x1 PNG, so that the browser decodes the imported photo.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
PHOTO = "00000002-PHOTO-2024-03-20-10-00-00.png"

RECORDER = """
(() => {
  const notes = [], asked = [];
  let permission = "default";
  window.__hidden = false;
  Object.defineProperty(document, "visibilityState", {
    get: () => (window.__hidden ? "hidden" : "visible"), configurable: true });
  Object.defineProperty(document, "hidden", { get: () => window.__hidden, configurable: true });
  class Recorder {
    constructor(title, options) {
      notes.push({ title, body: (options || {}).body, hidden: window.__hidden });
    }
    close() {}
    static get permission() { return permission; }
    static requestPermission() {
      const activation = navigator.userActivation;
      asked.push({ gesture: Boolean(activation && activation.isActive) });
      permission = "granted";
      return Promise.resolve(permission);
    }
  }
  window.Notification = Recorder;
  window.__notes = notes;
  window.__asked = asked;
})();
"""


def trip_export(folder: Path) -> Path:
    style = ExportStyle(platform=Platform.IOS, date_separator=".", year_digits=2, seconds=True)
    rows = [
        ("Trip", "\u200eMessages and calls are end-to-end encrypted."),
        ("Anna", "Tickets are booked"),
        ("Ravi", f"\u200e<attached: {PHOTO}>"),
        ("Anna", "See you at the station"),
    ]
    text = render_chat(
        [
            ChatLine(timestamp=dt.datetime(2024, 3, 20, 9 + i, 0), author=a, body=b)
            for i, (a, b) in enumerate(rows)
        ],
        style,
    )
    path = folder / "WhatsApp Chat - Trip.zip"
    path.write_bytes(zip_export(text, media={PHOTO: PNG}))
    return path


def set_hidden(page: Any, hidden: bool) -> None:
    page.evaluate(
        "h => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def test_imported_chat_notifications_and_unread_title(
    web_server: ServerProcess,
    apps: Callable[..., AppProcess],
    pages: Pages,
    tmp_path: Path,
) -> None:
    app = apps("noti", web_server.url, passphrase=PASS)
    page = pages.open("noti", app.url)
    page.context.add_init_script(RECORDER)
    page.reload()
    page.fill("#reg-server", web_server.url)
    page.fill("#reg-username", "alice")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#me")).to_have_text("Signed in as alice")
    expect(page).to_have_title("Baat")

    # The manifest makes the app installable as a standalone window.
    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href, {credentials: 'include'})"
        ".then(r => r.json())"
    )
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/"

    # An imported chat: in the list, read-only, searchable by name, its photo shown.
    page.goto(app.base + "/#/import")
    page.set_input_files("#import-file", str(trip_export(tmp_path)))
    expect(page.locator("#import-messages")).to_have_text("3")
    page.locator("#import-confirm").click()
    expect(page.locator("#import-result")).to_have_text("Imported 3 messages and 1 notice.")
    page.goto(app.base + "/#/")
    trip = page.locator("#chat-list .chat-item").filter(has_text="Trip")
    expect(trip).to_contain_text("imported")
    expect(trip.locator(".chat-last")).to_have_text("See you at the station")
    trip.click()
    expect(page.locator("#chat-title")).to_have_text("Trip")
    expect(page.locator("#chat-readonly")).to_contain_text("read-only")
    expect(page.locator("#composer-text")).to_have_count(0)
    image = page.locator(f".msg .attachment.image img[alt='{PHOTO}']")
    expect(image).to_have_count(1)
    page.wait_for_function(
        "name => { const i = document.querySelector(`img[alt='${name}']`);"
        " return i && i.complete && i.naturalWidth === 1; }",
        arg=PHOTO,
    )
    page.fill("#search", "tri")
    expect(page.locator("#search-results .chat-hit")).to_have_text("TripImported chat")
    page.fill("#search", "")
    page.goto(app.base + "/#/")

    # Notifications: nothing asked before the click; asked once, from the click.
    assert page.evaluate("window.__asked.length") == 0
    button = page.locator("#notify-enable")
    expect(button).to_be_visible()
    button.click()
    page.wait_for_function("window.__asked.length === 1")
    assert page.evaluate("window.__asked") == [{"gesture": True}]
    expect(button).to_be_hidden()

    # Bob writes while the tab is visible: unread count, no notification.
    bob = tmp_path / "bob"
    baat(bob, "register", "bob", "--server", web_server.url)
    baat(bob, "send", "alice", "hello alice")
    expect(page).to_have_title("(1) Baat", timeout=30_000)
    expect(
        page.locator("#chat-list .chat-item").filter(has_text="bob").locator(".badge")
    ).to_contain_text("1")
    assert page.evaluate("window.__notes") == []

    # Hidden tab: a notification with the sender and the text.
    set_hidden(page, True)
    baat(bob, "send", "alice", "are you there?")
    page.wait_for_function("window.__notes.length === 1", timeout=30_000)
    assert page.evaluate("window.__notes") == [
        {"title": "bob", "body": "are you there?", "hidden": True}
    ]
    expect(page).to_have_title("(2) Baat")

    # The private setting: who and what stay off the notification.
    set_hidden(page, False)
    page.goto(app.base + "/#/settings")
    page.get_by_label("Hide sender and text").check()
    page.goto(app.base + "/#/")
    set_hidden(page, True)
    baat(bob, "send", "alice", "secret plans")
    page.wait_for_function("window.__notes.length === 2", timeout=30_000)
    assert page.evaluate("window.__notes[1]") == {
        "title": "Baat",
        "body": "New message",
        "hidden": True,
    }

    # Back to the tab and into the chat: everything read, the title is plain again.
    set_hidden(page, False)
    page.locator("#chat-list .chat-item").filter(has_text="bob").click()
    expect(page.locator(".msg.in .text").last).to_have_text("secret plans")
    expect(page).to_have_title("Baat", timeout=30_000)
    assert pages.errors(page) == []
