"""The privacy dashboard in the browser against a real server: consents with receipts that
the server and ``baat consent list`` agree with, what the server holds, downloads, a changed
policy with its diff, and deleting the account."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from baat.client.profile import load_credentials

from .test_web_chat import PASS, expect, no_console_errors, no_sideways_scroll, register

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def cli_consents(app: AppProcess) -> dict[str, bool]:
    env = {**os.environ, "BAAT_PASSPHRASE": PASS}
    out = subprocess.run(
        [sys.executable, "-m", "baat", "consent", "list", "--json", "--profile", str(app.profile)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return {c["purpose"]: c["effective"] for c in json.loads(out.stdout)["consents"]}


def test_consents_export_policy_change_and_deletion(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    app = apps("carol", web_server.url, passphrase=PASS)
    page = pages.open("carol", app.url)
    register(page, web_server.url, "carol", None)
    expect(page.locator("#me")).to_have_text("Signed in as carol")
    server_url, creds = load_credentials(app.profile, PASS)
    auth = {"authorization": creds.header()}

    page.get_by_role("link", name="Privacy").click()
    switches = page.get_by_role("switch")
    expect(switches).to_have_count(7)  # six optional purposes, and sealed from anyone
    for i in range(7):
        expect(switches.nth(i)).not_to_be_checked()  # every one is off by default

    # Sealed sender: the fallback counts are shown, "from anyone" reaches the server.
    expect(page.locator("#sealed-stats")).to_contain_text("Sent sealed: 0.")
    anyone = page.get_by_role("switch", name="Sealed messages from anyone")
    anyone.check()
    expect(
        page.get_by_role("status").filter(has_text="Sealed messages from anyone: on")
    ).to_be_visible()
    access = httpx.get(server_url + "/v1/profile/access", headers={"authorization": creds.header()})
    assert access.json()["anyone"] is True
    anyone.uncheck()
    expect(anyone).not_to_be_checked()

    # Granting shows the signed receipt; the server and the CLI agree.
    improve = page.get_by_role("switch", name="Improve Baat")
    improve.focus()
    page.keyboard.press("Space")  # a switch works from the keyboard
    expect(improve).to_be_checked()
    receipt = page.locator("#purpose-improve .receipt")
    expect(receipt.locator("summary")).to_contain_text("Signed receipt: consent given")
    jws = receipt.locator("textarea").input_value()
    assert jws.count(".") == 2
    record = json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "=="))["record"]
    assert record["method"] == "web"  # the collection method actually used
    assert record["notice"]["url"] == f"{server_url}/v1/policy"
    assert record["identity_key"]["device_id"] == creds.device_id
    # The profile remembers the ledger head and this receipt, shared with the CLI.
    watched = json.loads((app.profile / "ledger-watch.json").read_text())
    assert watched["receipts"]["improve"]["record_id"] == record["record_id"]
    expect(page.locator("#ledger-warnings")).to_have_count(0)
    page.get_by_role("switch", name="Tell you about Baat features and offers").check()
    expect(page.locator("#purpose-market .receipt summary")).to_contain_text("consent given")
    on = cli_consents(app)
    assert on == {k: k in ("improve", "market") for k in on}

    # Withdrawing takes one click too.
    page.get_by_role("switch", name="Improve Baat").uncheck()
    expect(receipt.locator("summary")).to_contain_text("consent withdrawn")
    listed = httpx.get(f"{server_url}/v1/consents", headers=auth).json()["consents"]
    assert {c["purpose"]: c["effective"] for c in listed}["improve"] is False

    # What the server holds, readable, and downloadable.
    page.get_by_role("button", name="Show what the server holds").click()
    held = page.locator("#export-view")
    expect(held).to_contain_text("Stored about you")
    expect(held.locator(".row-data").first).to_contain_text("carol")
    expect(held).to_contain_text("device.auth_token")  # left out, with the reason
    expect(held.locator("text=Improve Baat, withdrawn")).to_have_count(1)
    with page.expect_download() as done:
        page.get_by_role("link", name="Download all my data").click()
    mine = json.loads(done.value.path().read_text())
    assert mine["server"]["account_id"] == creds.account_id
    assert mine["account"]["username"] == "carol"
    assert mine["device"]["messages"] == []

    # The policy changed since Carol last looked: she sees what changed, is asked to review
    # the purpose she allowed, and messaging is untouched.
    seen_file = app.profile / "policy-seen.json"
    current = json.loads(seen_file.read_text())
    older = copy.deepcopy(current)
    older["version"] = current["version"] - 1
    older["sha256"] = "0" * 64
    older["data"] = [d for d in older["data"] if d["id"] != "blob.id"]
    for entry in older["data"]:
        if entry["id"] == "account.username":
            entry["purposes"].remove("market")
    seen_file.write_text(json.dumps(older))
    page.reload()
    banner = page.locator("#policy-changes")
    expect(banner).to_contain_text(f"version {older['version']} → {current['version']}")
    expect(banner).to_contain_text("Attachment id: new field")
    expect(banner.locator(".review")).to_contain_text("Tell you about Baat features and offers")
    expect(page.get_by_role("link", name="Chats")).to_be_enabled()
    page.get_by_role("button", name="I have read the changes").click()
    expect(banner).to_have_count(0)
    assert json.loads(seen_file.read_text())["sha256"] == current["sha256"]

    # Usable on a phone.
    page.set_viewport_size({"width": 375, "height": 740})
    no_sideways_scroll(page)

    # Leaving: confirm with the username; the server forgets the account, the device too.
    page.get_by_role("button", name="Delete my account…").click()
    page.get_by_label("Type your username (carol) to confirm").fill("carol")
    page.get_by_role("button", name="Delete my account", exact=True).click()
    expect(page.locator("#onboarding")).to_be_visible()
    assert httpx.get(f"{server_url}/v1/consents", headers=auth).status_code == 401
    assert not (app.profile / "profile.json").exists()
    assert not (app.profile / "store.sqlite3").exists()
    no_console_errors(pages, page)
