"""A chat with a business in the web app, in Chromium (docs/BUSINESS.md §3): the disclosure
card before the first message, the verified badge, acceptance, the hold when the business
adds a host, acceptance again, withdrawal. The business runs the real ``baat`` CLI.

With BAAT_WEB_SCREENSHOTS=1 it also refreshes docs/screenshots/business.png for the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.cli import baat, lines

from .test_web_chat import PASS, expect, register

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def received(shop: Path) -> list[object]:
    return [m["text"] for m in lines(baat(shop, "sync", "--json"))]


def test_disclosure_card_acceptance_and_hold(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages, tmp_path: Path
) -> None:
    shop = tmp_path / "chai"
    baat(shop, "register", "chai", "--server", web_server.url, "--business", "Chai Corner")
    baat(
        shop,
        "business",
        "profile",
        "--entity",
        "Chai Corner Pvt Ltd",
        "--purpose",
        "taking and tracking your orders",
        "--retention",
        "90 days after your last order",
        "--contact",
        "help@chai.example",
    )
    asha_app = apps("meera", web_server.url, passphrase=PASS)
    page = pages.open("meera", asha_app.url, width=1100, height=760)
    register(page, web_server.url, "meera", None)
    expect(page.locator("#me")).to_have_text("Signed in as meera")

    # The card comes before the first message; nothing can be written yet.
    page.fill("#new-chat-name", "chai")
    page.press("#new-chat-name", "Enter")
    card = page.locator("#business-card")
    expect(card).to_be_visible()
    expect(page.locator("#business-badge")).to_have_text("Unverified business")
    expect(page.locator("#business-readers li")).to_have_count(1)
    expect(page.locator("#business-readers li")).to_contain_text("Chai Corner Pvt Ltd")
    expect(card).to_contain_text("taking and tracking your orders")
    expect(card).to_contain_text("90 days after your last order")
    expect(page.locator(".composer")).to_be_hidden()

    # The operator verifies the business: the badge shows on the next visit.
    db = f"sqlite:///{web_server.data_dir / 'baat.sqlite3'}"
    data = str(web_server.data_dir)
    baat(shop, "admin", "verify-business", "chai", "--data", data, "--db", db)
    page.reload()
    page.fill("#new-chat-name", "chai")
    page.press("#new-chat-name", "Enter")
    expect(page.locator("#business-badge")).to_have_text("✓ Verified business")

    page.get_by_role("button", name="Accept and chat").click()
    expect(page.locator("#business-state")).to_have_text("You accepted this disclosure.")
    expect(page.locator(".composer")).to_be_visible()
    page.fill("#composer-text", "One masala chai, please")
    page.press("#composer-text", "Enter")
    sent = page.locator(".msg.out").last
    expect(sent).to_have_attribute("data-status", re.compile("^(sent|delivered)$"))
    assert received(shop) == ["One masala chai, please"]
    baat(shop, "send", "meera", "On its way! Order 1042.")
    expect(page.locator(".msg.in .text").last).to_have_text("On its way! Order 1042.")
    if os.environ.get("BAAT_WEB_SCREENSHOTS"):
        page.evaluate(
            "document.getElementById('toast').hidden = true; document.activeElement.blur()"
        )
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / "business.png"))

    # The business adds a host: the card says so, and the next message is held.
    baat(shop, "business", "profile", "--processor", "CloudDesk GmbH:DE:host:2")
    page.reload()
    page.locator("#chat-list a").first.click()
    expect(page.locator("#business-state")).to_contain_text("changed who can read this chat")
    expect(page.locator("#business-readers li")).to_have_count(2)
    expect(page.locator("#business-readers li").nth(1)).to_contain_text("CloudDesk GmbH")
    expect(page.locator("#business-readers li").nth(1)).to_contain_text("DE")
    page.fill("#composer-text", "And a samosa")
    page.press("#composer-text", "Enter")
    expect(page.locator(".msg.out").last).to_have_attribute("data-status", "held")
    assert received(shop) == []
    page.get_by_role("button", name="Accept the new disclosure").click()
    expect(page.locator("#business-state")).to_have_text("You accepted this disclosure.")
    assert _eventually(lambda: received(shop)) == ["And a samosa"]

    # Withdrawn: the chat is read-only.
    page.get_by_role("button", name="Withdraw consent").click()
    page.get_by_role("button", name="Withdraw", exact=True).click()
    expect(page.locator("#business-state")).to_contain_text("read-only")
    expect(page.locator(".composer")).to_be_hidden()
    assert pages.errors(page) == []


def _eventually(fetch: Callable[[], list[object]], tries: int = 20) -> list[object]:
    got: list[object] = []
    for _ in range(tries):
        got += fetch()
        if got:
            return got
    return got
