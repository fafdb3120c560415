"""Everyday features in the web app, in Chromium, between real ``baat app`` processes:
replies, reactions, edits, deletes, sent / delivered / read ticks, typing indicators,
disappearing messages and the two switches in a 1:1 chat; the same in a group of three,
with renaming and promoting; and linking a device from the Devices screen (QR and SAS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from support.server import ROOT
from support.webapps import PASS, registered

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect


def online(pages: Pages, name: str, app: AppProcess) -> Any:
    page = pages.open(name, app.url)
    expect(page.locator("#connection")).to_have_text("Online")
    return page


def test_one_to_one_features(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "falice")
    bob_app = registered(apps, web_server, "fbob")
    alice = online(pages, "alice", alice_app)
    bob = online(pages, "bob", bob_app)

    alice.fill("#new-chat-name", "fbob")
    alice.press("#new-chat-name", "Enter")
    expect(alice.locator("#chat-title")).to_have_text("fbob")
    alice.fill("#composer-text", "Hello Bob")
    alice.press("#composer-text", "Enter")
    first = alice.locator(".msg.out").first
    # Bob's app holds it, but nobody has looked at it yet.
    expect(first).to_have_attribute("data-status", "delivered")
    expect(first.locator(".status")).to_have_text(" · Delivered ✓✓")

    # Bob opens the chat: Alice's tick turns to read.
    bob.locator("#chat-list a").first.click()
    expect(bob.locator(".msg.in .text")).to_have_text("Hello Bob")
    expect(first).to_have_attribute("data-status", "read")
    expect(first.locator(".status")).to_have_text(" · Read ✓✓")

    # Typing: Alice sees Bob typing, and it ends when his message arrives.
    bob.locator("#composer-text").press_sequentially("Hi Ali", delay=30)
    expect(alice.locator("#typing")).to_have_text("fbob is typing…")
    bob.locator("#composer-text").press_sequentially("ce")
    bob.press("#composer-text", "Enter")
    expect(alice.locator(".msg.in .text")).to_have_text("Hi Alice")
    expect(alice.locator("#typing")).to_have_text("")

    # A reply quotes what it answers, on both sides; the quote leads to the original.
    theirs = alice.locator(".msg.in").first
    theirs.hover()
    theirs.get_by_role("button", name="Reply to fbob's message").click()
    expect(alice.locator("#composer-context")).to_contain_text("Replying to fbob: Hi Alice")
    # The chat drawn again (what the app does when it reconnects) keeps the reply.
    alice.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")
    expect(alice.locator("#chat-title")).to_have_text("fbob")
    expect(alice.locator("#composer-context")).to_contain_text("Replying to fbob: Hi Alice")
    alice.fill("#composer-text", "Replying to you")
    alice.press("#composer-text", "Enter")
    expect(alice.locator("#composer-context")).to_be_hidden()
    reply = bob.locator(".msg.in").last
    expect(reply.locator(".text")).to_have_text("Replying to you")
    expect(reply.locator(".quote")).to_contain_text("You")
    expect(reply.locator(".quote")).to_contain_text("Hi Alice")
    reply.locator(".quote").click()
    expect(bob.locator(".msg.out.hit .text")).to_have_text("Hi Alice")

    # Bob reacts to the reply; Alice sees it under her message.
    reply.hover()
    reply.get_by_role("button", name="React 👍 to falice's message").click()
    mine = alice.locator(".msg.out").last
    expect(mine.locator(".reactions .chip")).to_have_text("👍👍 from fbob")
    expect(mine.locator(".reactions .chip")).to_have_attribute("title", "fbob")
    reply.get_by_role("combobox", name="Other reaction to falice's message").select_option("❤️")
    expect(mine.locator(".reactions .chip")).to_have_text("❤️❤️ from fbob")

    # Alice edits the reply: Bob sees the new text, marked edited.
    mine.hover()
    mine.get_by_role("button", name="Edit your message").click()
    expect(alice.locator("#composer-text")).to_have_value("Replying to you")
    alice.fill("#composer-text", "Replying to you (edited)")
    alice.press("#composer-text", "Enter")
    expect(reply.locator(".text")).to_have_text("Replying to you (edited)")
    expect(reply.locator(".edited")).to_have_text(" · edited")

    # Bob cannot edit Alice's message: his app refuses with a clear reason.
    with bob_app.http() as http:
        msg_id = http.get("/api/messages").json()["messages"][-1]["id"]
        r = http.post("/api/edit", json={"id": msg_id, "text": "mine now"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_author"

    # Alice deletes her first message for everyone.
    first.hover()
    first.get_by_role("button", name="Delete your message for everyone").click()
    alice.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(first.locator(".text")).to_have_text("message deleted")
    expect(bob.locator(".msg.in").first.locator(".text")).to_have_text("message deleted")

    # Disappearing messages: the timer chosen in Alice's browser shows in both headers.
    alice.get_by_label("Disappearing messages").select_option("30")
    expect(alice.locator("#timer-pill")).to_have_text("⏱ 30 s")
    expect(bob.locator("#timer-pill")).to_have_text("⏱ 30 s")
    expect(bob.get_by_label("Disappearing messages")).to_have_value("30")
    # A short timer (the page offers 30 s and up; the app takes any) makes a message vanish
    # from both screens while the apps run.
    with alice_app.http() as http:
        chat = http.get("/api/chats").json()["chats"][0]["chat"]
        r = http.post(f"/api/chats/{chat}/timer", json={"seconds": 2})
        assert r.json() == {"timer": 2}
    expect(bob.locator("#timer-pill")).to_have_text("⏱ 2 s")
    alice.fill("#composer-text", "This vanishes")
    alice.press("#composer-text", "Enter")
    expect(bob.locator(".msg.in .text").last).to_have_text("This vanishes")
    expect(alice.get_by_text("This vanishes")).to_have_count(0, timeout=8000)
    expect(bob.get_by_text("This vanishes")).to_have_count(0, timeout=8000)
    alice.get_by_label("Disappearing messages").select_option("0")
    expect(bob.locator("#timer-pill")).to_be_hidden()

    # Settings: Bob turns read receipts and typing off; Alice's next message stays
    # "delivered" although Bob has the chat open, and his typing is not shown.
    bob.get_by_role("link", name="Settings", exact=True).click()
    expect(bob.locator("#settings-title")).to_be_focused()
    bob.get_by_role("switch", name="Read receipts").uncheck()
    bob.get_by_role("switch", name="Typing indicators").uncheck()
    with bob_app.http() as http:
        got = http.get("/api/settings").json()
        assert got["read_receipts"] is False and got["typing"] is False
    bob.go_back()
    expect(bob.locator("#chat-title")).to_have_text("falice")
    alice.fill("#composer-text", "Read quietly")
    alice.press("#composer-text", "Enter")
    expect(bob.locator(".msg.in .text").last).to_have_text("Read quietly")
    bob.locator("#composer-text").press_sequentially("hm", delay=30)
    bob.wait_for_timeout(1500)
    expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "delivered")
    expect(alice.locator("#typing")).to_have_text("")
    assert pages.errors(alice) == [] and pages.errors(bob) == []


def wait_for_messages(http: Any, chat: str, text: str) -> list[dict[str, Any]]:
    """The group messages with ``text`` in an app, once they have arrived."""
    for _ in range(150):
        found = http.get(f"/api/groups/{chat}/messages").json()["messages"]
        hits = [m for m in found if m["text"] == text]
        if hits:
            return hits
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never arrived")


def test_group_features_rename_and_promote(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "galice3")
    bob_app = registered(apps, web_server, "gbob3")
    carol_app = registered(apps, web_server, "gcarol3")
    with alice_app.http() as http:
        r = http.post("/api/groups", json={"name": "Chai club", "members": "gbob3, gcarol3"})
        assert r.status_code == 201, r.text
        chat = r.json()["id"]
    alice = online(pages, "alice", alice_app)
    bob = online(pages, "bob", bob_app)
    alice.goto(f"{alice_app.base}/#/group/{chat}")
    expect(alice.locator("#group-title")).to_have_text("Chai club")
    with bob_app.http() as http:
        for _ in range(100):
            if http.get("/api/groups").json()["groups"]:
                break
            bob.wait_for_timeout(100)
    bob.goto(f"{bob_app.base}/#/group/{chat}")
    expect(bob.locator("#group-title")).to_have_text("Chai club")

    alice.fill("#group-composer-text", "Chai at five?")
    alice.press("#group-composer-text", "Enter")
    asked = alice.locator(".msg.out").last
    expect(bob.locator(".msg.in .text").last).to_have_text("Chai at five?")
    # Bob has the group open and read it; Carol has not: the tick stays "delivered" until
    # every member has read it, and only its tooltip tells who did.
    expect(asked.locator(".status")).to_have_attribute("title", re.compile("Read by gbob3"))
    expect(asked).to_have_attribute("data-status", "delivered")
    with carol_app.http() as http:
        found = wait_for_messages(http, chat, "Chai at five?")
        r = http.post(f"/api/groups/{chat}/seen", json={"ids": [found[0]["id"]]})
        assert r.status_code == 200 and r.json() == {"seen": 1}, r.text
    expect(asked).to_have_attribute("data-status", "read")
    # Message info lists both members with the times they received and read it.
    asked.hover()
    asked.get_by_role("button", name="Message info").click()
    info = alice.get_by_role("dialog", name="Message info")
    expect(info.locator("tbody tr")).to_have_count(2)
    for member in ("gbob3", "gcarol3"):
        row = info.get_by_role("row", name=re.compile(member))
        expect(row.locator("td time")).to_have_count(2)
    info.get_by_role("button", name="Close").click()
    expect(info).to_be_hidden()

    # Bob types, then replies to Alice's message.
    bob.locator("#group-composer-text").press_sequentially("Ye", delay=30)
    expect(alice.locator("#typing")).to_have_text("gbob3 is typing…")
    question = bob.locator(".msg.in").last
    question.hover()
    question.get_by_role("button", name="Reply to galice3's message").click()
    bob.fill("#group-composer-text", "Yes, with samosas")
    bob.press("#group-composer-text", "Enter")
    answer = alice.locator(".msg.in").last
    expect(answer.locator(".text")).to_have_text("Yes, with samosas")
    expect(answer.locator(".chat-name")).to_have_text("gbob3:")
    expect(answer.locator(".quote")).to_contain_text("Chai at five?")
    expect(alice.locator("#typing")).to_have_text("")

    # Carol (her app driven over its API) reacts; Alice edits, then deletes her question.
    with carol_app.http() as http:
        ids = [m["id"] for m in wait_for_messages(http, chat, "Chai at five?")]
        r = http.post("/api/react", json={"id": ids[0], "emoji": "❤️"})
        assert r.status_code == 200, r.text
    expect(asked.locator(".reactions .chip")).to_have_text("❤️❤️ from gcarol3")
    asked.hover()
    asked.get_by_role("button", name="Edit your message").click()
    alice.fill("#group-composer-text", "Chai at six?")
    alice.press("#group-composer-text", "Enter")
    expect(bob.locator(".msg.in .text").last).to_have_text("Chai at six?")
    expect(bob.locator(".msg.in .edited")).to_have_text(" · edited")
    asked = alice.locator(".msg.out").last
    asked.hover()
    asked.get_by_role("button", name="Delete your message for everyone").click()
    alice.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(bob.locator(".msg.in .text.deleted")).to_have_text("message deleted")

    # Bob is no admin: renaming is refused with a clear reason.
    bob.locator("#group-details summary").click()
    bob.get_by_label("Group name").fill("Bob's club")
    bob.get_by_role("button", name="Rename").click()
    expect(bob.locator("#group-error")).to_contain_text("Only an admin of this group can do that.")

    # Alice renames and promotes Bob; both screens follow.
    alice.locator("#group-details summary").click()
    alice.get_by_label("Group name").fill("Chai and samosa club")
    alice.get_by_role("button", name="Rename").click()
    expect(alice.locator("#group-title")).to_have_text("Chai and samosa club")
    expect(bob.locator("#group-title")).to_have_text("Chai and samosa club")
    alice.get_by_role("button", name="Make admin: gbob3").click()
    expect(alice.locator("#group-member-list")).to_contain_text("gbob3 · admin")
    expect(bob.locator("#group-member-list")).to_contain_text("gbob3 (you) · admin")
    assert pages.errors(alice) == []
    # Bob's page logged the refused rename (403) on purpose; nothing else.
    assert [e for e in pages.errors(bob) if "403" not in e] == []


def test_link_a_device_with_qr_and_sas(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages, tmp_path: Any
) -> None:
    alice_app = registered(apps, web_server, "dalice")
    alice = online(pages, "alice", alice_app)
    alice.get_by_role("link", name="Devices", exact=True).click()
    expect(alice.locator("#device-list li")).to_have_count(1)
    alice.get_by_role("button", name="Create link code").click()
    qr = alice.get_by_role("img", name="QR code of the link code")
    expect(qr).to_have_js_property("complete", True)
    assert qr.evaluate("i => i.naturalWidth") > 100
    command = alice.get_by_label("Run this on the new device").input_value()
    code = command.removeprefix("baat register --link ")

    env = {**os.environ, "BAAT_PASSPHRASE": PASS}
    second = str(tmp_path / "second")
    out = subprocess.run(
        [sys.executable, "-m", "baat", "register", "--link", code, "--json", "--profile", second],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    sas = json.loads(out.stdout.strip().splitlines()[-1])["sas"]
    # The app saw the device join; both screens show the same code; confirming signs it in.
    expect(alice.locator("#link-sas")).to_have_text(sas)
    rows = alice.locator("#device-list li")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("not yet in the signed list")
    alice.get_by_role("button", name="They match: add the device").click()
    expect(rows.nth(1)).not_to_contain_text("not yet in the signed list")
    expect(alice.locator("#link-sas")).to_have_count(0)
    assert pages.errors(alice) == []
