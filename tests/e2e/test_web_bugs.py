"""Visible faults a person switching from WhatsApp met, each fixed and checked in Chromium:
"null" on the import screen and its radio buttons apart from their labels, the count of
the import button against the result, an imported deleted message drawn empty, long names
over the time in the chat list, a timer change that left no notice in the other person's
chat, a "Start a chat" field left red after a good lookup, and "Back to groups" offered
on the Devices screen when the server is down."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat
from support.webapps import registered

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

LONG = "a_very_long_username_for_lists"  # 30 characters, under the 32 allowed


def online(pages: Pages, name: str, app: AppProcess, **size: int) -> Any:
    page = pages.open(name, app.url, **size)
    expect(page.locator("#connection")).to_have_text("Online")
    return page


def box(locator: Any) -> dict[str, float]:
    """The element's box once it is laid out: a bubble's parts are redrawn when its data
    changes (a receipt, a reload), and between two frames the element may have none."""
    deadline = time.monotonic() + 15
    while (found := locator.bounding_box()) is None:
        assert time.monotonic() < deadline, f"{locator} has no box"
        time.sleep(0.05)
    return found  # type: ignore[no-any-return]


def ambiguous_export(folder: Path) -> Path:
    """Dates that read both ways, a system line, and a deleted message."""
    rows = [
        (2, None, "Messages and calls are end-to-end encrypted."),
        (3, "Zara", "Salaam!"),
        (4, "Me", "This message was deleted"),
        (5, "Zara", "See you"),
    ]
    at = lambda d: dt.datetime(2024, 3, d, 10, 0)  # noqa: E731
    lines = [ChatLine(timestamp=at(d), author=a, body=b) for d, a, b in rows]
    path = folder / "WhatsApp Chat with Zara.txt"
    path.write_text(render_chat(lines, ExportStyle(date_order="dmy")))
    return path


def test_import_screen_counts_and_deleted_messages(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages, tmp_path: Path
) -> None:
    app = registered(apps, web_server, "bugimp")
    page = online(pages, "imp", app)
    page.goto(app.base + "/#/import")
    page.set_input_files("#import-file", str(ambiguous_export(tmp_path)))
    expect(page.locator(".samples")).to_be_visible()
    assert "null" not in page.locator("#pane").inner_text()
    # Each radio button sits on the line of its label.
    radio = page.get_by_label("Day first (31/12/2024)")
    label = page.locator("label.choice").first
    assert abs(box(radio)["y"] - box(label)["y"]) < box(label)["height"]
    assert box(label)["height"] < 2.2 * box(radio)["height"]
    radio.check()
    expect(page.locator("#import-messages")).to_have_text("3")
    assert "null" not in page.locator("#pane").inner_text()
    # The button and the result count the same things.
    page.get_by_label("Which author are you?").select_option("Me")
    confirm = page.locator("#import-confirm")
    expect(confirm).to_have_text("Import 3 messages and 1 notice")
    confirm.click()
    expect(page.locator("#import-result")).to_have_text("Imported 3 messages and 1 notice.")
    page.locator("#import-open").click()
    expect(page.locator("#chat-title")).to_have_text("Zara")
    deleted = page.locator(".msg.out")
    expect(deleted).to_have_count(1)
    expect(deleted.locator(".text")).to_have_text("message deleted")
    assert pages.errors(page) == []


def test_chat_list_timer_notice_and_start_field(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "bugalice")
    long_app = registered(apps, web_server, LONG)
    with long_app.http() as http:
        assert http.post("/api/send", json={"to": "bugalice", "text": "hi"}).status_code == 200
    alice = online(pages, "alice", alice_app, width=390, height=844)

    # A long name ends in an ellipsis before the time and the badge.
    item = alice.locator("#chat-list .chat-item").first
    expect(item.locator(".chat-name")).to_have_text(LONG)
    name, side = item.locator(".chat-name"), item.locator(".chat-side")
    assert box(name)["x"] + box(name)["width"] <= box(side)["x"] + 0.5
    assert alice.evaluate("document.documentElement.scrollWidth <= innerWidth")

    # An unknown name turns the field red; a good lookup afterwards clears it.
    field = alice.locator("#new-chat-name")
    field.fill("nobody_here")
    field.press("Enter")
    error = alice.locator("#new-chat-error")
    expect(error).to_have_text("Nobody is called nobody_here on this server.")
    expect(field).to_have_attribute("aria-invalid", "true")
    field.fill(LONG)
    field.press("Enter")
    expect(alice.locator("#chat-title")).to_have_text(LONG)
    alice.get_by_role("link", name="Back to chats").click()
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(error).to_have_text("")

    # Alice turns on disappearing messages: a notice in her chat and in the other one.
    alice.locator("#chat-list a").first.click()
    alice.get_by_role("button", name="Chat options").click()  # at phone width
    alice.get_by_label("Disappearing messages").select_option("3600")
    expect(alice.locator(".msg.notice")).to_have_text("You turned on disappearing messages: 1 hour")
    other = online(pages, "long", long_app)
    other.locator("#chat-list a").first.click()
    expect(other.locator(".msg.notice")).to_have_text(
        "bugalice turned on disappearing messages: 1 hour"
    )
    expect(other.locator("#timer-pill")).to_have_text("⏱ 1 h")


def test_devices_screen_offline_offers_the_chats(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    app = registered(apps, web_server, "bugdev")
    page = online(pages, "dev", app)
    web_server.stop()
    try:
        expect(page.locator("#connection")).to_contain_text("Offline")
        page.get_by_role("link", name="Devices").click()
        expect(page.get_by_role("alert")).to_have_text(
            "Cannot reach the server. Try again when online."
        )
        expect(page.get_by_role("link", name="Back to chats")).to_be_visible()
        expect(page.get_by_role("link", name="Back to groups")).to_have_count(0)
    finally:
        web_server.start()


def test_touch_screen_shows_actions_only_for_the_tapped_message(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "touchalice")
    bob_app = registered(apps, web_server, "touchbob")
    with bob_app.http() as http:
        for text in ("one", "two"):
            r = http.post("/api/send", json={"to": "touchalice", "text": text})
            assert r.status_code == 200
    context = pages.browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(alice_app.url)
        assert page.evaluate("matchMedia('(hover: none)').matches")
        page.locator("#chat-list a").first.tap()
        bubbles = page.locator(".msg.in")
        expect(bubbles).to_have_count(2)
        expect(page.locator(".msg .actions:visible")).to_have_count(0)
        bubbles.first.locator(".text").tap()
        expect(bubbles.first.locator(".actions")).to_be_visible()
        expect(page.locator(".msg .actions:visible")).to_have_count(1)
        # Inside the bubble, within the screen: nothing cut off.
        actions = box(bubbles.first.locator(".actions"))
        assert actions["x"] >= 0 and actions["x"] + actions["width"] <= 390
    finally:
        context.close()
