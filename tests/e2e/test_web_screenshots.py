"""Refresh the README's screenshots with the real app: a conversation, the same at phone
width, a group and the privacy screen. Off by default (the images are committed); run with

    BAAT_WEB_SCREENSHOTS=1 .venv/bin/pytest tests/e2e/test_web_screenshots.py
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .test_web_chat import PASS, expect, register

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages
    from support.server import ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("BAAT_WEB_SCREENSHOTS"),
        reason="set BAAT_WEB_SCREENSHOTS=1 to refresh docs/screenshots",
    ),
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

ASHA = ["Ravi! Are we still on for chai at 5? ☕", "Perfect. I'll bring the photos from Goa 🏖️"]
RAVI = [
    "Yes! The usual place near the station 🙂",
    "Can't wait. Also: I checked our safety number, it matches ✅",
]


def test_readme_screenshots(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    asha_app = apps("asha", web_server.url, passphrase=PASS)
    ravi_app = apps("ravi", web_server.url, passphrase=PASS)
    asha = pages.open("asha", asha_app.url, width=1100, height=680)
    ravi = pages.open("ravi", ravi_app.url)
    register(asha, web_server.url, "asha", None)
    register(ravi, web_server.url, "ravi", None)
    expect(ravi.locator("#me")).to_have_text("Signed in as ravi")

    asha.fill("#new-chat-name", "ravi")
    asha.press("#new-chat-name", "Enter")
    for mine, theirs in zip(ASHA, RAVI, strict=True):
        asha.fill("#composer-text", mine)
        asha.press("#composer-text", "Enter")
        expect(ravi.locator("#chat-list .chat-last")).to_have_text(mine)
        ravi.locator("#chat-list a").first.click()
        ravi.fill("#composer-text", theirs)
        ravi.press("#composer-text", "Enter")
        expect(asha.locator(".msg.in .text").last).to_have_text(theirs)
    asha.get_by_role("link", name="Safety number", exact=True).click()
    asha.get_by_role("button", name="Mark as verified").click()
    asha.get_by_role("button", name="They match: mark as verified").click()
    expect(asha.locator("#contact-state")).to_have_text("✓ You verified ravi.")
    asha.get_by_role("link", name="Back to the chat").click()
    expect(asha.locator("#chat-verified")).to_be_visible()
    expect(asha.locator(".msg")).to_have_count(4)
    asha.locator("#composer-text").fill("See you soon!")
    quiet(asha)
    DOCS.mkdir(parents=True, exist_ok=True)
    asha.screenshot(path=str(DOCS / "conversation.png"))

    # Ravi's side at phone width: one-row top bar, compact header, reactions as chips.
    phone = pages.open("ravi-phone", ravi_app.url, width=390, height=844)
    phone.locator("#chat-list a").first.click()
    expect(phone.locator(".msg")).to_have_count(4)
    mine = phone.locator(".msg.out").last
    with asha_app.http() as http:
        found = http.get("/api/messages").json()["messages"]
        target = next(m["id"] for m in found if m["text"] == RAVI[-1])
        assert http.post("/api/react", json={"id": target, "emoji": "❤️"}).status_code == 200
    expect(mine.locator(".reactions .chip")).to_have_count(1)
    phone.locator("#composer-text").fill("Bringing samosas too 😋")
    quiet(phone)
    phone.screenshot(path=str(DOCS / "phone.png"))

    asha.get_by_role("link", name="Privacy").click()
    asha.get_by_role("switch", name="Improve Baat").check()
    expect(asha.locator("#purpose-improve .receipt")).to_be_visible()
    asha.set_viewport_size({"width": 1100, "height": 900})
    quiet(asha)
    asha.screenshot(path=str(DOCS / "privacy.png"))


def test_group_screenshot(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages
) -> None:
    from .test_web_features import online, registered

    priya_app = registered(apps, web_server, "priya")
    kabir_app = registered(apps, web_server, "kabir")
    meera_app = registered(apps, web_server, "meera")
    with priya_app.http() as http:
        r = http.post("/api/groups", json={"name": "Goa trip 🏖️", "members": "kabir, meera"})
        chat = r.json()["id"]
    priya = pages.open("priya", priya_app.url, width=1100, height=680)
    expect(priya.locator("#connection")).to_have_text("Online")
    kabir = online(pages, "kabir", kabir_app)
    meera = online(pages, "meera", meera_app)
    for page, app in ((kabir, kabir_app), (meera, meera_app)):
        with app.http() as http:
            for _ in range(100):
                if http.get("/api/groups").json()["groups"]:
                    break
                page.wait_for_timeout(100)
        page.goto(f"{app.base}/#/group/{chat}")
        expect(page.locator("#group-title")).to_have_text("Goa trip 🏖️")
    priya.goto(f"{priya_app.base}/#/group/{chat}")

    def say(page: object, text: str) -> None:
        page.fill("#group-composer-text", text)  # type: ignore[attr-defined]
        page.press("#group-composer-text", "Enter")  # type: ignore[attr-defined]
        expect(priya.locator(".msg .text").last).to_have_text(text)

    say(priya, "Train tickets are booked for Friday 🚆")
    say(meera, "Yay! Who brings the speaker?")
    question = kabir.locator(".msg.in").last
    question.hover()
    question.get_by_role("button", name="Reply to meera's message").click()
    say(kabir, "Me, and the badminton set")
    tickets = meera.locator(".msg.in", has_text="Train tickets")
    tickets.hover()
    tickets.get_by_role("button", name="React 👍 to priya's message").click()
    expect(
        priya.locator(".msg.out", has_text="Train tickets").locator(".reactions")
    ).to_contain_text("meera")
    priya.locator("#group-composer-text").fill("Perfect, see you at the station")
    quiet(priya)
    priya.screenshot(path=str(DOCS / "group.png"))


def quiet(page: object) -> None:
    """No toast, no focus ring and no hovered message in a picture."""
    page.mouse.move(1, 1)  # type: ignore[attr-defined]
    page.evaluate(  # type: ignore[attr-defined]
        "document.getElementById('toast').hidden = true; document.activeElement.blur()"
    )
