"""Read means seen, and catching up, in Chromium between real ``baat app`` processes.

A message turns "read" on its sender's side only once it has been on the reader's screen:
not when it arrives while the chat is scrolled up, nor while another screen is open. On
opening a chat with unread messages, a divider counts them and the first one is in view;
a message arriving while the reader is further up shows a "new messages" button. The
latencies of send, delivery and read are measured here and printed (``pytest -s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

# Long enough for a read receipt to have crossed the server if one had been sent.
SETTLE = 1.5


def statuses(app: AppProcess, chat: str) -> dict[str, str]:
    """Text -> status of the app's own messages in ``chat``."""
    with app.http() as http:
        found = http.get("/api/messages", params={"chat": chat}).json()["messages"]
    return {m["text"]: m["status"] for m in found if m["direction"] == "out"}


def wait_status(app: AppProcess, chat: str, text: str, want: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (now := statuses(app, chat).get(text)) != want:
        assert time.monotonic() < deadline, f"{text!r} is {now!r}, not {want!r}"
        time.sleep(0.05)


def send(app: AppProcess, to: str, text: str) -> None:
    with app.http() as http:
        r = http.post("/api/send", json={"to": to, "text": text})
        assert r.status_code == 200, r.text


def test_read_only_when_on_screen_with_unread_divider_and_new_messages_button(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "ralice")
    bob_app = registered(apps, web_server, "rbob")
    with alice_app.http() as http:
        bob_chat = http.post("/api/lookup", json={"username": "rbob"}).json()["chat"]
    for n in range(1, 31):
        send(alice_app, "rbob", f"Catch-up line {n}")
    wait_status(alice_app, bob_chat, "Catch-up line 30", "delivered")

    bob = pages.open("bob", bob_app.url, width=1000, height=560)
    expect(bob.locator("#connection")).to_have_text("Online")
    expect(bob.locator("#chat-list .badge")).to_contain_text("30")
    expect(bob).to_have_title("(30) Baat")
    bob.locator("#chat-list a").first.click()

    # The divider counts the unread messages and the first of them is on screen; the last
    # ones are below the fold, so they stay "delivered" for Alice.
    divider = bob.locator("#unread-divider")
    expect(divider).to_have_text("30 unread messages")
    expect(divider).to_be_in_viewport()
    expect(bob.locator(".msg.in").first).to_be_in_viewport()
    expect(bob.locator(".msg.in").last).not_to_be_in_viewport()
    wait_status(alice_app, bob_chat, "Catch-up line 1", "read")
    time.sleep(SETTLE)
    assert statuses(alice_app, bob_chat)["Catch-up line 30"] == "delivered"

    # Scrolling down through them reads the rest; the title and the badge empty.
    for _ in range(12):
        bob.locator("#messages").evaluate("b => { b.scrollTop += b.clientHeight / 2; }")
        bob.wait_for_timeout(60)
    wait_status(alice_app, bob_chat, "Catch-up line 30", "read")
    assert set(statuses(alice_app, bob_chat).values()) == {"read"}
    expect(bob).to_have_title("Baat")
    expect(bob.locator("#chat-list .badge")).to_have_count(0)

    # Bob reads further up: a new message does not pull him down and stays "delivered";
    # a button says it is there, and following it reads it.
    bob.locator("#messages").evaluate("b => { b.scrollTop = 0; }")
    started = time.monotonic()
    send(alice_app, "rbob", "Are you there?")
    jump = bob.get_by_role("button", name="1 new message ↓")
    expect(jump).to_be_visible()
    delivered_ms = (time.monotonic() - started) * 1000
    time.sleep(SETTLE)
    assert statuses(alice_app, bob_chat)["Are you there?"] == "delivered"
    expect(bob.locator(".msg.in").first).to_be_in_viewport()
    started = time.monotonic()
    jump.click()
    wait_status(alice_app, bob_chat, "Are you there?", "read")
    read_ms = (time.monotonic() - started) * 1000
    expect(jump).to_be_hidden()

    # On another screen nothing is read; coming back shows a divider for what came.
    bob.get_by_role("link", name="Settings").click()
    expect(bob.locator("#settings-title")).to_be_visible()
    send(alice_app, "rbob", "Seen from Settings?")
    expect(bob).to_have_title("(1) Baat")
    time.sleep(SETTLE)
    assert statuses(alice_app, bob_chat)["Seen from Settings?"] == "delivered"
    bob.locator("#chat-list a").first.click()
    expect(bob.locator("#unread-divider")).to_have_text("1 unread message")
    wait_status(alice_app, bob_chat, "Seen from Settings?", "read")
    expect(bob).to_have_title("Baat")
    print(f"\nlatency: other screen {delivered_ms:.0f} ms, read after the button {read_ms:.0f} ms")
    assert pages.errors(bob) == []


def test_seen_names_the_messages_and_refuses_bad_input(
    web_server: ServerProcess, apps: Callable[..., AppProcess]
) -> None:
    alice_app = registered(apps, web_server, "salice")
    bob_app = registered(apps, web_server, "sbob")
    send(alice_app, "sbob", "one")
    send(alice_app, "sbob", "two")
    with alice_app.http() as http:
        chat = http.post("/api/lookup", json={"username": "sbob"}).json()["chat"]
    wait_status(alice_app, chat, "two", "delivered")
    with bob_app.http() as http:
        found = http.get("/api/messages").json()["messages"]
        alice_chat = found[0]["chat"]
        ids = {m["text"]: m["id"] for m in found}
        for bad in ({}, {"ids": "all"}, {"ids": [1]}, {"ids": ["x"] * 1001}):
            r = http.post(f"/api/chats/{alice_chat}/seen", json=bad)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        r = http.post(f"/api/chats/{alice_chat}/seen", json={"ids": [ids["one"], "unknown"]})
        assert r.json() == {"seen": 1}
    wait_status(alice_app, chat, "one", "read")
    time.sleep(SETTLE)
    assert statuses(alice_app, chat) == {"one": "read", "two": "delivered"}


def test_send_delivery_and_read_latency(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    """Two browsers side by side: the time from Enter to the sender's own bubble, to the
    bubble on the other screen, and to the sender's "Read" tick."""
    alice_app = registered(apps, web_server, "lalice")
    bob_app = registered(apps, web_server, "lbob")
    send(alice_app, "lbob", "hello")
    alice = pages.open("alice", alice_app.url)
    bob = pages.open("bob", bob_app.url)
    expect(bob.locator("#chat-list a")).to_have_count(1)
    bob.locator("#chat-list a").first.click()
    alice.locator("#chat-list a").first.click()
    expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "read")
    figures: dict[str, list[float]] = {"send": [], "delivery": [], "read": []}
    for n in range(5):
        text = f"Latency probe {n}"
        alice.fill("#composer-text", text)
        started = time.monotonic()
        alice.press("#composer-text", "Enter")
        expect(alice.locator(".msg.out .text").last).to_have_text(text)
        figures["send"].append(time.monotonic() - started)
        expect(bob.locator(".msg.in .text").last).to_have_text(text)
        figures["delivery"].append(time.monotonic() - started)
        expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "read")
        figures["read"].append(time.monotonic() - started)
    summary = ", ".join(
        f"{k} median {sorted(v)[len(v) // 2] * 1000:.0f} ms" for k, v in figures.items()
    )
    print(f"\nlatency (Enter to): {summary}")
    assert all(max(v) < 5 for v in figures.values()), figures
    assert pages.errors(alice) == [] and pages.errors(bob) == []


# Headless Chromium cannot hide a tab: the page's visibility is driven by the test.
VISIBILITY = """() => {
  window.__hidden = false;
  Object.defineProperty(document, "visibilityState", {
    get: () => (window.__hidden ? "hidden" : "visible"), configurable: true });
  Object.defineProperty(document, "hidden", { get: () => window.__hidden, configurable: true });
}"""


def group_ids(http: Any, chat: str, text: str) -> list[str]:
    found = http.get(f"/api/groups/{chat}/messages").json()["messages"]
    return [m["id"] for m in found if m["text"] == text]


def set_hidden(page: Any, hidden: bool) -> None:
    page.evaluate(
        "(h) => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def test_group_read_only_when_everyone_saw_it_and_hidden_tabs_read_nothing(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "galice9")
    bob_app = registered(apps, web_server, "gbob9")
    carol_app = registered(apps, web_server, "gcarol9")
    with alice_app.http() as http:
        r = http.post("/api/groups", json={"name": "Tea", "members": "gbob9, gcarol9"})
        assert r.status_code == 201, r.text
        chat = r.json()["id"]

    def group_send(text: str) -> None:
        with alice_app.http() as http:
            assert http.post(f"/api/groups/{chat}/send", json={"text": text}).status_code == 200

    bob = pages.open("bob", bob_app.url)
    bob.evaluate(VISIBILITY)  # the app reads these at each use
    expect(bob.locator("#connection")).to_have_text("Online")

    # Bob is on another screen: the message reaches him, nobody has read it.
    bob.get_by_role("link", name="Settings").click()
    group_send("Tea at four?")
    wait_status(alice_app, chat, "Tea at four?", "delivered")  # both members have it
    time.sleep(SETTLE)
    assert statuses(alice_app, chat)["Tea at four?"] == "delivered"

    # Bob opens the group: read by Bob, yet "delivered" until Carol has read it too.
    bob.goto(f"{bob_app.base}/#/group/{chat}")
    expect(bob.locator(".msg.in .text").last).to_have_text("Tea at four?")
    # The notice that Bob was added is unread too, and seen with the message.
    expect(bob.locator("#unread-divider")).to_have_text("2 unread messages")
    expect(bob).to_have_title("Baat")
    with alice_app.http() as http:
        deadline = time.monotonic() + 15
        while True:
            found = http.get(f"/api/groups/{chat}/messages").json()["messages"]
            mine = next(m for m in found if m["text"] == "Tea at four?")
            if mine["receipts"].get("gbob9") == "read" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert mine["receipts"] == {"gbob9": "read", "gcarol9": "delivered"}
    assert mine["status"] == "delivered"
    with carol_app.http() as http:
        ids = group_ids(http, chat, "Tea at four?")
        assert http.post(f"/api/groups/{chat}/seen", json={"ids": ids}).json() == {"seen": 1}
    wait_status(alice_app, chat, "Tea at four?", "read")

    # The tab is hidden while the group is open at its end: a new message waits there
    # unread; showing the tab again reads it.
    bob.goto(f"{bob_app.base}/#/group/{chat}")
    expect(bob.locator(".msg.in .text").last).to_have_text("Tea at four?")
    # The log appends: what arrives adds its own bubble and removes nothing (a screen
    # reader announces it once instead of re-reading the history).
    bob.evaluate(
        """() => { window.__log = { added: 0, removed: 0 };
        new MutationObserver((records) => { for (const r of records) {
          window.__log.added += r.addedNodes.length;
          window.__log.removed += r.removedNodes.length; } })
        .observe(document.getElementById("messages"), { childList: true }); }"""
    )
    set_hidden(bob, True)
    group_send("Still on?")
    expect(bob.locator(".msg.in .text").last).to_have_text("Still on?")
    assert bob.evaluate("window.__log") == {"added": 1, "removed": 0}
    with carol_app.http() as http:  # Carol reads it at once
        deadline = time.monotonic() + 15
        while not (ids := group_ids(http, chat, "Still on?")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        http.post(f"/api/groups/{chat}/seen", json={"ids": ids})
    time.sleep(SETTLE)
    assert statuses(alice_app, chat)["Still on?"] == "delivered"
    set_hidden(bob, False)
    wait_status(alice_app, chat, "Still on?", "read")
    assert pages.errors(bob) == []
