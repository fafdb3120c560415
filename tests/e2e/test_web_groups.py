"""Groups and devices in the web app: Alice (in Chromium) creates a group with Bob, writes
in it, and Bob's app (a second real ``baat app``, driven over its JSON API) receives it;
the Devices screen lists Alice's one device."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect

PASS = "correct horse battery staple"


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def test_group_created_in_the_browser_reaches_bob(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = apps("galice", web_server.url, passphrase=PASS)
    bob_app = apps("gbob", web_server.url, passphrase=PASS)
    with bob_app.http() as http:
        r = http.post("/api/register", json={"server_url": web_server.url, "username": "gbob"})
        assert r.status_code == 201, r.text

    alice = pages.open("alice", alice_app.url)
    expect(alice.locator("#onboarding")).to_be_visible()
    alice.fill("#reg-server", web_server.url)
    alice.fill("#reg-username", "galice")
    alice.get_by_role("button", name="Create account").click()
    expect(alice.locator("#connection")).to_have_text("Online")

    # The Groups screen: create a group with Bob, by keyboard.
    alice.get_by_role("link", name="Groups", exact=True).click()
    expect(alice.locator("#groups-title")).to_be_focused()
    expect(alice.locator("#nav-groups")).to_have_attribute("aria-current", "")
    alice.get_by_label("Group name").fill("Chai club")
    alice.get_by_label("Members").fill("gbob")
    alice.get_by_label("Members").press("Enter")
    expect(alice.locator("#group-title")).to_have_text("Chai club")
    alice.locator("#group-details summary").click()
    members = alice.locator("#group-member-list")
    expect(members).to_contain_text("galice (you) · admin")
    expect(members).to_contain_text("gbob")
    expect(alice.get_by_role("button", name="Remove gbob")).to_be_visible()

    # A group message, sent with Enter.
    alice.get_by_label("Message to Chai club").fill("Chai at five ☕")
    alice.get_by_label("Message to Chai club").press("Enter")
    sent = alice.locator("#messages .msg.out").last
    expect(sent.locator(".text")).to_have_text("Chai at five ☕")
    expect(sent).to_have_attribute("data-status", re.compile("^(sent|delivered)$"))

    # Bob's app received the group and the message.
    with bob_app.http() as http:
        groups = wait_for(lambda: http.get("/api/groups").json()["groups"])
        assert groups[0]["name"] == "Chai club"
        assert [m["name"] for m in groups[0]["members"]] == ["galice", "gbob"]
        chat = groups[0]["id"]

        def arrived() -> list[dict[str, Any]]:
            found = http.get(f"/api/groups/{chat}/messages").json()["messages"]
            return [m for m in found if m["text"] == "Chai at five ☕"]

        got = wait_for(arrived)
        assert got[0]["sender"] == "galice" and got[0]["direction"] == "in"
        # Bob is no admin: the SDK's typed refusal comes through with its code.
        r = http.post(f"/api/groups/{chat}/remove", json={"member": "galice"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_admin"

    # A reaction on the message, from the keyboard.
    alice.get_by_role("button", name=re.compile("^React 👍 to You")).press("Enter")
    expect(sent.locator(".reactions .chip")).to_have_text("👍👍 from You")

    # Devices: one, the primary, the one in use; a link code in its text form.
    alice.get_by_role("link", name="Devices", exact=True).click()
    expect(alice.locator("#devices-title")).to_be_focused()
    rows = alice.locator("#device-list li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Primary")
    expect(rows.first).to_contain_text("This device")
    alice.get_by_role("button", name="Create link code").click()
    expect(alice.get_by_label("Run this on the new device")).to_have_value(
        re.compile(r"^baat register --link \S+$")
    )
    assert pages.errors(alice) == []
