"""Two people register in the browser, talk live, compare safety numbers, and catch up
after one app was stopped: a real ``baat serve``, two real ``baat app`` processes, and
Chromium (one desktop window, one phone-sized)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from baat.client.store import Store, StoredMessage

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

PASS = "correct horse battery staple"
LONG = "Unbroken:" + "ब" * 300 + "x" * 700  # no spaces: it must wrap, not scroll sideways


def no_console_errors(pages: Pages, page: Any, *provoked: int) -> None:
    """Nothing went wrong in the page; the HTTP statuses of refusals the test provoked on
    purpose (Chromium logs them) are the only allowed lines."""
    statuses = "|".join(str(s) for s in provoked)
    allowed = re.compile(
        rf"Failed to load resource: the server responded with a status of ({statuses}) "
    )
    unexpected = [e for e in pages.errors(page) if not (provoked and allowed.match(e))]
    assert unexpected == []


def register(page: Any, server_url: str, username: str, passphrase: str | None) -> None:
    expect(page.locator("#onboarding")).to_be_visible()
    page.fill("#reg-server", server_url)
    page.fill("#reg-username", username)
    if passphrase is not None:
        page.fill("#reg-passphrase", passphrase)
        page.fill("#reg-passphrase2", passphrase)
    page.get_by_role("button", name="Create account").click()


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(
        "(() => { const m = document.querySelector('#messages');"
        " return !m || m.scrollWidth <= m.clientWidth; })()"
    )


def test_register_chat_verify_and_catch_up(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    # Alice types her passphrase in the page; Bob's comes from BAAT_PASSPHRASE.
    alice_app = apps("alice", web_server.url)
    bob_app = apps("bob", web_server.url, passphrase=PASS)
    alice = pages.open("alice", alice_app.url)
    bob = pages.open("bob", bob_app.url, width=375, height=740)
    assert "k=" not in alice.url  # the secret left the address bar

    # Onboarding errors are clear: an unreachable server, a taken name.
    register(alice, "http://127.0.0.1:9", "alice", PASS)
    expect(alice.locator("#reg-error")).to_contain_text("Cannot reach the server")
    register(alice, web_server.url, "alice", PASS)
    expect(alice.locator("#me")).to_have_text("Signed in as alice")

    expect(bob.locator("#reg-passphrase")).to_be_hidden()
    expect(bob.locator("#reg-env-note")).to_be_visible()
    register(bob, web_server.url, "alice", None)
    expect(bob.locator("#reg-error")).to_have_text("That username is taken. Try another one.")
    register(bob, web_server.url, "bob", None)
    expect(bob.locator("#connection")).to_have_text("Online")

    # Alice starts the chat and writes with the keyboard only.
    alice.focus("#new-chat-name")
    alice.keyboard.type("Bob")
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-title")).to_have_text("bob")
    expect(alice.locator("#composer-text")).to_be_focused()
    alice.keyboard.type("Namaste Bob 👋")
    alice.keyboard.press("Enter")
    sent = alice.locator(".msg.out").last
    expect(sent).to_have_attribute("data-status", re.compile("^(sent|delivered)$"))

    # Bob sees it arrive live, with an unread count, and answers.
    expect(bob.locator("#chat-list .badge")).to_contain_text("1")
    expect(bob.locator("#chat-list .chat-last")).to_have_text("Namaste Bob 👋")
    bob.locator("#chat-list a").first.click()
    expect(bob.locator(".msg.in .text")).to_have_text("Namaste Bob 👋")
    expect(bob.locator(".day")).to_have_text("Today")
    expect(bob.locator(".msg.in")).to_have_text(
        re.compile(r"^alice:\s*Namaste Bob 👋\s*\d{1,2}:\d\d")
    )
    bob.fill("#composer-text", "Hi Alice!\n" + LONG)
    bob.press("#composer-text", "Enter")
    expect(alice.locator(".msg.in .text")).to_contain_text("Hi Alice!")
    no_sideways_scroll(bob)
    no_sideways_scroll(alice)
    with bob_app.http() as http:
        assert [c["unread"] for c in http.get("/api/chats").json()["chats"]] == [0]

    # Safety numbers: the same 60 digits on both sides, a QR code, and verification.
    alice.get_by_role("link", name="Safety number", exact=True).click()
    # At phone width the header's tools are behind one button.
    expect(bob.get_by_role("link", name="Safety number", exact=True)).to_be_hidden()
    bob.get_by_role("button", name="Chat options").click()
    bob.get_by_role("link", name="Safety number", exact=True).click()
    number = alice.locator(".number")
    expect(number).to_have_attribute(
        "aria-label", re.compile(r"^Safety number: (\d{5}, ){11}\d{5}$")
    )
    assert number.get_attribute("aria-label") == bob.locator(".number").get_attribute("aria-label")
    qr = alice.locator(".qr img")
    expect(qr).to_have_js_property("complete", True)
    assert qr.evaluate("img => img.naturalWidth") > 100
    alice.fill("#compare-number", "12345 " * 12)
    alice.get_by_role("button", name="Compare").click()
    expect(alice.locator("#compare-result")).to_contain_text("do not match")
    alice.get_by_role("button", name="Mark as verified").click()
    alice.get_by_role("button", name="They match: mark as verified").click()
    expect(alice.locator("#contact-state")).to_have_text("✓ You verified bob.")

    # Bob's app stops; what Alice sends meanwhile waits on the server.
    no_console_errors(pages, bob, 409)
    pages.close(bob)
    old_secret = bob_app.secret
    bob_app.stop()
    alice.get_by_role("link", name="Back to the chat").click()
    expect(alice.locator("#chat-verified")).to_be_visible()
    alice.fill("#composer-text", "While you were away 🌙")
    alice.press("#composer-text", "Enter")
    expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "sent")

    # Bob comes back, this time unlocking in the page; the secret is kept in the profile.
    bob_app.passphrase = None
    bob_app.start()
    assert bob_app.secret == old_secret
    bob = pages.open("bob-again", bob_app.url, width=375, height=740)
    expect(bob.locator("#unlock")).to_be_visible()
    bob.fill("#unlock-passphrase", "not the passphrase")
    bob.keyboard.press("Enter")
    expect(bob.locator("#unlock-error")).to_have_text("Wrong passphrase.")
    bob.fill("#unlock-passphrase", PASS)
    bob.keyboard.press("Enter")
    expect(bob.locator("#chat-list .badge")).to_contain_text("1")
    bob.locator("#chat-list a").first.click()
    expect(bob.locator(".msg.in .text").last).to_have_text("While you were away 🌙")
    expect(bob.locator(".msg.in")).to_have_count(2)

    # The server goes away: Bob's message waits in his outbox; both apps reconnect when it
    # is back (Bob presses "Retry now", Alice's app retries by itself) and it goes out.
    web_server.stop()
    expect(bob.locator("#connection")).to_contain_text("Offline")
    bob.fill("#composer-text", "Written while the server was down")
    bob.press("#composer-text", "Enter")
    expect(bob.locator(".msg.out").last).to_have_attribute("data-status", "sending")
    web_server.start()
    # "Retry now" is there while Bob's app waits; it may have reconnected by itself first.
    bob.evaluate("() => { const b = document.querySelector('#retry'); if (!b.hidden) b.click(); }")
    expect(bob.locator("#connection")).to_have_text("Online")
    expect(bob.locator(".msg.out").last).to_have_attribute(
        "data-status", re.compile("^(sent|delivered)$")
    )
    expect(alice.locator("#connection")).to_have_text("Online", timeout=20_000)
    expect(alice.locator(".msg.in .text").last).to_have_text("Written while the server was down")

    # Alice searches her history and jumps to the hit.
    alice.fill("#search", "AWAY")
    expect(alice.locator("#search-summary")).to_have_text("1 message found")
    alice.locator("#search-results a").first.click()
    expect(alice.locator(".msg.hit .text")).to_have_text("While you were away 🌙")

    no_console_errors(pages, bob, 401)
    identity_change_is_flagged_and_resolved(alice, alice_app)
    no_console_errors(pages, alice, 502)


def identity_change_is_flagged_and_resolved(alice: Any, alice_app: AppProcess) -> None:
    """Bob's identity key changed (as after a reinstall, or an attack): his new message is
    held and sending pauses until Alice compares the safety number again. A real server
    lets no account change its key, so the test sets the store the way the SDK does."""
    store = Store.open(alice_app.profile, PASS)
    try:
        bob = store.contact_by_name("bob")
        assert bob is not None
        with store.transaction() as tx:
            store.put_contact(tx, replace(bob, verified=False, identity_changed=True))
            held = StoredMessage(
                chat=bob.account_id,
                sender_account=bob.account_id,
                sender_device=1,
                message_id="held-1",
                direction="in",
                status="held",
                body={"text": "Trust me, it is Bob", "peer": "bob", "sender": "bob"},
                sent_at=int(time.time() * 1000),
                received_at=int(time.time() * 1000),
            )
            store.add_message(tx, held)
    finally:
        store.close()
    alice.reload()
    expect(alice.locator("#chat-list .warn-mark")).to_have_count(1)
    warning = alice.locator("#chat-warning")
    expect(warning).to_contain_text("bob's safety number changed.")
    expect(warning).to_contain_text("1 message is held")
    expect(alice.locator(".msg.in .text.held")).to_contain_text("Held")
    expect(alice.get_by_text("Trust me, it is Bob")).to_have_count(0)
    expect(alice.locator("#composer-text")).to_be_disabled()
    warning.get_by_role("link", name="Compare the safety number").click()
    expect(alice.get_by_role("alert")).to_contain_text("1 message is held")
    alice.get_by_role("button", name="Mark as verified").click()
    alice.get_by_role("button", name="They match: mark as verified").click()
    expect(alice.locator("#contact-state")).to_have_text("✓ You verified bob.")
    alice.get_by_role("link", name="Back to the chat").click()
    expect(alice.locator(".msg.in .text").last).to_have_text("Trust me, it is Bob")
    expect(alice.locator("#chat-warning")).to_be_hidden()
    expect(alice.locator("#composer-text")).to_be_enabled()
