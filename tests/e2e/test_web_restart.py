"""A stable way back to ``baat app``: the secret of its address is kept in the profile
(mode 0600), so a tab open while the app restarts reconnects by itself and a reload or a
bookmark keeps working; a browser without the key gets a page saying what to open, never
raw JSON; the unlock screen names the account, not a path on disk."""

from __future__ import annotations

import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from support.webapps import PASS, registered

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
expect = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
).expect


def test_open_tab_survives_a_restart_and_strangers_get_a_page(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    alice_app = registered(apps, web_server, "kalice")
    registered(apps, web_server, "kbob")
    secret_file = alice_app.profile / "app-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text().strip() == alice_app.secret

    alice = pages.open("alice", alice_app.url)
    expect(alice.locator("#connection")).to_have_text("Online")
    alice.fill("#new-chat-name", "kbob")
    alice.press("#new-chat-name", "Enter")
    expect(alice.locator("#chat-title")).to_have_text("kbob")
    alice.fill("#composer-text", "Before the restart")
    alice.press("#composer-text", "Enter")
    expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "delivered")

    # The app stops and starts again on its port: same secret, and the open tab comes back.
    old_secret = alice_app.secret
    alice_app.stop()
    expect(alice.locator("#connection")).to_contain_text("stopped", timeout=20_000)
    alice_app.start()
    assert alice_app.secret == old_secret
    expect(alice.locator("#connection")).to_have_text("Online", timeout=20_000)
    alice.fill("#composer-text", "After the restart")
    alice.press("#composer-text", "Enter")
    expect(alice.locator(".msg.out").last).to_have_attribute("data-status", "delivered")
    # A reload (or a bookmark of the app's page) works without the printed address.
    alice.reload()
    expect(alice.locator("#chat-title")).to_have_text("kbob")
    expect(alice.locator(".msg.out .text")).to_have_text(
        ["Before the restart", "After the restart"]
    )

    # A browser without the key gets a page that says what to open.
    stranger = pages.open("stranger", alice_app.base + "/#/chat/x")
    expect(stranger.get_by_role("heading", level=1)).to_have_text(
        "Open Baat from the address it printed"
    )
    expect(stranger.locator("body")).not_to_contain_text('"error"')
    with httpx.Client(base_url=alice_app.base) as http:
        r = http.get("/", headers={"accept": "text/html,application/xhtml+xml"})
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
        r = http.get("/api/state")  # scripts still get the typed JSON error
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    # --new-secret signs every tab out; the open one says where to go.
    alice_app.stop()
    alice_app.args = ["--new-secret"]
    alice_app.start()
    assert alice_app.secret != old_secret
    expect(alice.locator("#connection")).to_have_text(
        "The Baat app has a new address: open the one 'baat app' printed", timeout=20_000
    )


def test_unlock_screen_names_the_account_not_the_path(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    app = registered(apps, web_server, "kcarol")
    app.stop()
    app.passphrase = None
    app.start()
    page = pages.open("carol", app.url)
    expect(page.locator("#unlock")).to_be_visible()
    host = web_server.url.split("//", 1)[1]
    expect(page.locator("#unlock-profile")).to_have_text(f"kcarol on {host}")
    expect(page.locator("#unlock")).not_to_contain_text(str(app.profile))
    expect(page.locator("#unlock-passphrase")).to_be_focused()
    page.fill("#unlock-passphrase", PASS)
    page.keyboard.press("Enter")
    expect(page.locator("#connection")).to_have_text("Online")
