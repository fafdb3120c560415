"""Keyboard-only use, right-to-left text, reaction chips, links and emoji in Chromium.

Shortcuts reach search, a new chat and the next chat, and "?" lists them; the composer
answers Escape and ArrowUp; the conversation log is one tab stop with arrow keys inside.
Every user-provided text carries ``dir="auto"``, so Arabic and Hebrew render right to left
next to English; links are clickable and nothing is fetched for them; one to three emoji
alone are drawn large; reactions are chips under the bubble with counts and names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from support.webapps import PASS, registered

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

ARABIC = "مرحبا يا صديقي، الساعة 5!"
HEBREW_GROUP = "חברים 2026"
LINK = "https://example.org/menu?day=1"


def focused_id(page: Any) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.className")  # type: ignore[no-any-return]


def test_keyboard_rtl_links_emoji_and_reaction_chips(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "kbalice")
    bob_app = registered(apps, web_server, "kbbob")
    carol_app = registered(apps, web_server, "kbcarol")
    with bob_app.http() as http:
        for text in (ARABIC, f"The menu: {LINK}.", "🎉🎉"):
            assert http.post("/api/send", json={"to": "kbalice", "text": text}).status_code == 200
    with carol_app.http() as http:
        assert http.post("/api/send", json={"to": "kbalice", "text": "hi"}).status_code == 200
    with alice_app.http() as http:
        r = http.post("/api/groups", json={"name": HEBREW_GROUP, "members": "kbbob"})
        assert r.status_code == 201, r.text
        group = r.json()["id"]

    alice = pages.open("alice", alice_app.url)
    expect(alice.locator("#chat-list a")).to_have_count(2)  # a group shows once it has messages

    # Right to left: the preview, then the bubble, read in their own direction.
    preview = alice.locator("#chat-list .chat-last", has_text="الساعة")
    expect(preview).to_have_count(0)  # the newest of Bob's is the emoji, not the Arabic
    alice.fill("#search", "الساعة")
    hit = alice.locator("#search-results .chat-last").first
    expect(hit).to_have_attribute("dir", "auto")
    expect(hit).to_have_css("direction", "rtl")
    alice.keyboard.press("Escape")
    expect(alice.locator("#search")).to_have_value("")

    # "/" searches, Ctrl+Alt+N starts a chat, Enter opens it with the focus in the composer.
    alice.locator("body").press("/")
    expect(alice.locator("#search")).to_be_focused()
    alice.keyboard.press("Control+Alt+KeyN")
    expect(alice.locator("#new-chat-name")).to_be_focused()
    alice.keyboard.type("kbbob")
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-title")).to_have_text("kbbob")
    expect(alice.locator("#composer-text")).to_be_focused()

    arabic = alice.locator(".msg.in .text", has_text="الساعة")
    expect(arabic).to_have_attribute("dir", "auto")
    expect(arabic).to_have_css("direction", "rtl")
    english = alice.locator(".msg.in .text", has_text="The menu")
    expect(english).to_have_css("direction", "ltr")
    # The link is a link (no preview is fetched), without the sentence's full stop.
    link = english.get_by_role("link", name=LINK)
    expect(link).to_have_attribute("href", LINK)
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", re.compile("noopener noreferrer"))
    big = alice.locator(".msg.in .text", has_text="🎉🎉")
    expect(big).to_have_class(re.compile("emoji-only"))
    # Computed style, retried: a bubble's parts are redrawn when its status changes.
    expect(arabic).to_have_css("font-size", "16px")
    expect(big).to_have_css("font-size", "38.4px")  # 2.4rem

    # Composer keys: Enter sends, ArrowUp edits the last one, Escape cancels the edit.
    alice.keyboard.type("On my way")
    alice.keyboard.press("Enter")
    mine = alice.locator(".msg.out").last
    expect(mine).to_have_attribute("data-status", re.compile("^(delivered|read)$"))
    alice.keyboard.press("ArrowUp")
    expect(alice.locator("#composer-context")).to_contain_text("Editing your message")
    expect(alice.locator("#composer-text")).to_have_value("On my way")
    alice.keyboard.press("Escape")
    expect(alice.locator("#composer-context")).to_be_hidden()
    expect(alice.locator("#composer-text")).to_have_value("")

    # The log is one tab stop: arrows move between messages; Tab then reaches that
    # message's buttons, and from the log itself the next stop is after it.
    alice.locator("#messages").focus()
    alice.keyboard.press("Home")
    first = alice.locator("#messages .msg").first
    expect(first).to_be_focused()
    alice.keyboard.press("ArrowDown")
    expect(alice.locator("#messages .msg").nth(1)).to_be_focused()
    alice.keyboard.press("End")
    expect(mine).to_be_focused()
    alice.keyboard.press("Tab")
    expect(mine.get_by_role("button", name="Reply to You's message")).to_be_focused()
    # A reaction from the keyboard; Bob reacts the same: one chip, counted, both named.
    alice.keyboard.press("Tab")
    expect(mine.get_by_role("button", name=re.compile("^React 👍"))).to_be_focused()
    alice.keyboard.press("Enter")
    with bob_app.http() as http:
        found = http.get("/api/messages").json()["messages"]
        target = next(m["id"] for m in found if m["text"] == "On my way")
        assert http.post("/api/react", json={"id": target, "emoji": "👍"}).status_code == 200
    chip = mine.locator(".reactions .chip")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("👍 2")
    expect(chip).to_have_attribute("title", re.compile("kbbob"))
    expect(chip).to_have_attribute("title", re.compile("You"))
    tab_stops = alice.evaluate(
        "[...document.querySelectorAll('#messages [tabindex]')].filter(e => e.tabIndex >= 0).length"
    )
    assert tab_stops <= 6  # the log and the focused message's own controls, not every message's

    # A search hit is highlighted and focused; Escape ends the selection, back to writing.
    alice.fill("#search", "menu:")
    alice.locator("#search-results a").first.click()
    expect(alice.locator(".msg.hit .text")).to_contain_text("The menu")
    expect(alice.locator(".msg.hit")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.locator(".msg.hit")).to_have_count(0)
    expect(alice.locator("#composer-text")).to_be_focused()
    alice.fill("#search", "")

    # Alt+ArrowDown: the next chat in the list; "?" lists the shortcuts.
    alice.locator("#composer-text").focus()
    alice.keyboard.press("Alt+ArrowDown")
    expect(alice.locator("#chat-title")).not_to_have_text("kbbob")
    alice.locator("#messages").focus()
    alice.keyboard.press("Shift+Slash")
    helpbox = alice.get_by_role("dialog", name="Keyboard shortcuts")
    expect(helpbox).to_be_visible()
    expect(helpbox).to_contain_text("Ctrl+Alt+N")
    alice.keyboard.press("Escape")
    expect(helpbox).to_have_count(0)

    # A group's name in Hebrew reads right to left in its header and in the list.
    alice.goto(f"{alice_app.base}/#/group/{group}")
    title = alice.locator("#group-title")
    expect(title).to_have_text(HEBREW_GROUP)
    expect(title).to_have_attribute("dir", "auto")
    expect(title).to_have_css("direction", "rtl")
    expect(alice.locator("#group-composer-text")).to_be_focused()
    assert pages.errors(alice) == []


def test_focus_lands_in_the_app_after_sign_up_and_unlock(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    app = apps("kbnew", web_server.url)
    page = pages.open("new", app.url)
    expect(page.locator("#reg-username")).to_be_focused()
    page.fill("#reg-server", web_server.url)
    page.fill("#reg-username", "kbnew")
    page.fill("#reg-passphrase", PASS)
    page.fill("#reg-passphrase2", PASS)
    page.keyboard.press("Enter")
    expect(page.locator("#new-chat-name")).to_be_focused()
    app.stop()
    app.start()
    page.goto(app.url)
    expect(page.locator("#unlock-passphrase")).to_be_focused()
    page.keyboard.type(PASS)
    page.keyboard.press("Enter")
    expect(page.locator("#new-chat-name")).to_be_focused()
