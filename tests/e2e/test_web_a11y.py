"""Accessibility and phone width on every screen of the web app, in Chromium.

axe-core (the npm package, installed by ``make axe`` into ``.cache/axe``) is injected into
each screen, at 1280x800 and at 390x844, and must report no violation of impact "serious"
or "critical". At 390 px nothing may overflow sideways and no control may be cut off.
``BAAT_AXE_REPORT=FILE`` writes every violation found, per screen and width, as JSON.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
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

AXE = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BLOCKING = {"serious", "critical"}
RUN_AXE = """async () => {
  const r = await axe.run(document, { resultTypes: ["violations"] });
  return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5), count: v.nodes.length }));
}"""
# Controls (and the page) that reach past the right or left edge of the screen.
OVERFLOW = """() => {
  const w = document.documentElement.clientWidth;
  const out = [];
  const page = document.documentElement.scrollWidth;
  if (page > w) out.push(`page ${page}px`);
  const controls = "button, a[href], input, select, textarea, h1, h2, .msg";
  for (const el of document.querySelectorAll(controls)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === "hidden") continue;
    // Inside a box that scrolls sideways on purpose (a wide table) is not cut off.
    let box = el.parentElement;
    while (box && !["auto", "scroll"].includes(getComputedStyle(box).overflowX)) {
      box = box.parentElement;
    }
    if (box && box !== document.documentElement && box !== document.body) continue;
    // Wholly off screen is hidden on purpose (the skip link until it has the focus).
    const partly = (r.right > w + 1 && r.left < w) || (r.left < -1 && r.right > 0);
    const name = `${el.tagName.toLowerCase()}#${el.id}.${el.className}`;
    if (partly) out.push(`${name} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return out;
}"""


def axe(page: Any) -> list[dict[str, Any]]:
    if not page.evaluate("typeof axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the app's CSP (no inline script) stays on.
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    return page.evaluate(RUN_AXE)  # type: ignore[no-any-return]


def png() -> bytes:
    image = pytest.importorskip("PIL.Image", reason="the image needs Pillow")
    out = io.BytesIO()
    image.new("RGB", (40, 30), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def stage_file(page: Any, folder: Path) -> None:
    note = folder / "list.txt"
    note.write_text("milk, tea\n")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach a file or image").click()
    chooser.value.set_files(str(note))


class Audit:
    def __init__(self) -> None:
        self.found: dict[str, list[dict[str, Any]]] = {}
        self.overflow: dict[str, list[str]] = {}

    def check(self, page: Any, screen: str, *, both: bool = True) -> None:
        sizes = [("1280", WIDE), ("390", PHONE)] if both else [("390", PHONE)]
        for label, size in sizes:
            page.set_viewport_size(size)
            page.wait_for_timeout(150)  # layout and any reload the resize caused
            self.found[f"{screen}@{label}"] = axe(page)
            if label == "390":
                self.overflow[screen] = page.evaluate(OVERFLOW)
        page.set_viewport_size(WIDE)

    def blocking(self) -> dict[str, list[str]]:
        out = {}
        for key, violations in self.found.items():
            bad = [
                f"{v['id']} ({v['impact']}): {v['nodes']}"
                for v in violations
                if v["impact"] in BLOCKING
            ]
            if bad:
                out[key] = bad
        return out

    def save(self) -> None:
        target = os.environ.get("BAAT_AXE_REPORT")
        if target:
            Path(target).write_text(
                json.dumps({"axe": self.found, "overflow": self.overflow}, indent=1)
            )


def test_every_screen_passes_axe_at_both_widths(
    web_server: ServerProcess, apps: Callable[..., AppProcess], pages: Pages, tmp_path: Path
) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (make axe)")
    audit = Audit()
    alice_app = registered(apps, web_server, "axalice")
    bob_app = registered(apps, web_server, "axbob")
    with bob_app.http() as http:
        for text in ("Salaam! Tea at five? https://example.org/menu", "👍", "مرحبا، الساعة 5"):
            assert http.post("/api/send", json={"to": "axalice", "text": text}).status_code == 200
    with bob_app.http() as http:  # an image, for the viewer
        chat = http.post("/api/lookup", json={"username": "axalice"}).json()["chat"]
        r = http.post(
            "/api/attachments",
            params={"chat": chat, "to": "axalice", "name": "tea.png", "upload": "a11yupload1"},
            content=png(),
            headers={"x-baat-request": "1", "content-type": "application/octet-stream"},
        )
        assert r.status_code == 201, r.text
    with alice_app.http() as http:
        group = http.post("/api/groups", json={"name": "Chai club", "members": "axbob"}).json()[
            "id"
        ]
        assert (
            http.post(f"/api/groups/{group}/send", json={"text": "Hello group"}).status_code == 200
        )

    # Onboarding, then unlocking, on a profile of its own.
    new_app = apps("axnew", web_server.url)
    page = pages.open("new", new_app.url, **WIDE)
    expect(page.locator("#onboarding")).to_be_visible()
    audit.check(page, "onboarding")
    with new_app.http() as http:
        r = http.post(
            "/api/register",
            json={"server_url": web_server.url, "username": "axnew", "passphrase": PASS},
        )
        assert r.status_code == 201, r.text
    new_app.stop()
    new_app.start()
    page.goto(new_app.url)
    expect(page.locator("#unlock")).to_be_visible()
    audit.check(page, "unlock")
    pages.close(page)

    alice = pages.open("alice", alice_app.url, **WIDE)
    expect(alice.locator("#connection")).to_have_text("Online")
    expect(alice.locator("#chat-list a")).to_have_count(2)
    audit.check(alice, "chat list")
    alice.fill("#search", "tea")  # the message, and the image by its file name
    expect(alice.locator("#search-results a")).to_have_count(2)
    audit.check(alice, "search")
    alice.fill("#search", "")

    alice.locator("#chat-list a", has_text="axbob").click()
    expect(alice.locator(".msg.in")).to_have_count(4)
    alice.fill("#composer-text", "Yes, see you")
    alice.press("#composer-text", "Enter")
    expect(alice.locator(".msg.out")).to_have_count(1)
    expect(alice.locator(".msg.out")).to_have_attribute("data-status", "delivered")
    with bob_app.http() as http:  # Bob reads it: the "Read" tick is on screen too
        found = http.get("/api/messages").json()["messages"]
        seen = [m for m in found if m["text"] == "Yes, see you"]
        http.post(f"/api/chats/{seen[0]['chat']}/seen", json={"ids": [seen[0]["id"]]})
    expect(alice.locator(".msg.out .status.read")).to_have_count(1)
    audit.check(alice, "conversation")
    mine = alice.locator(".msg.out").last
    info = mine.get_by_role("button", name="Message info")
    if info.count():
        mine.focus()
        info.click()
        expect(alice.get_by_role("dialog")).to_be_visible()
        audit.check(alice, "message info")
        alice.keyboard.press("Escape")
    dialogs = [
        ("image viewer", lambda: alice.get_by_role("button", name="Open tea.png").click()),
        ("shortcuts", lambda: alice.locator("#messages").press("Shift+Slash")),
        ("caption", lambda: stage_file(alice, tmp_path)),
    ]
    for name, opening in dialogs:
        if name == "image viewer":
            expect(alice.get_by_role("button", name="Open tea.png")).to_be_visible(timeout=15_000)
        opening()
        expect(alice.locator("dialog[open]")).to_have_count(1)
        audit.check(alice, name)
        alice.keyboard.press("Escape")
        expect(alice.locator("dialog[open]")).to_have_count(0)
    alice.set_viewport_size(PHONE)
    menu = alice.get_by_role("button", name="Chat options")
    if menu.count() and menu.is_visible():
        menu.click()
        audit.check(alice, "chat options", both=False)
        alice.keyboard.press("Escape")
    alice.set_viewport_size(WIDE)

    alice.get_by_role("link", name="Safety number", exact=True).click()
    expect(alice.locator("#contact-title")).to_be_visible()
    audit.check(alice, "safety number")

    screens = [
        ("groups", "#/groups", "#groups-title"),
        ("group", f"#/group/{group}", "#group-title"),
        ("devices", "#/devices", "#devices-title"),
        ("settings", "#/settings", "#settings-title"),
        ("import", "#/import", "#import-title"),
        ("privacy", "#/privacy", "#privacy-title"),
    ]
    for name, route, ready in screens:
        alice.goto(alice_app.base + "/" + route)
        expect(alice.locator(ready)).to_be_visible()
        if name == "group":
            alice.locator("#group-details summary").click()
            expect(alice.locator(".msg.out")).to_have_count(1)
        audit.check(alice, name)

    alice.set_viewport_size(PHONE)
    alice.goto(alice_app.base + "/#/")
    expect(alice.locator("#chat-list a")).to_have_count(2)
    # One row: the top bar is no taller than one line of controls.
    bar = alice.locator(".topbar").bounding_box()
    audit.overflow["top bar in one row"] = [] if bar and bar["height"] < 64 else [f"{bar}"]
    toggle = alice.get_by_role("button", name="Menu")
    if toggle.count() and toggle.is_visible():
        toggle.click()
        audit.check(alice, "menu", both=False)
    audit.save()
    assert audit.blocking() == {}
    assert {k: v for k, v in audit.overflow.items() if v} == {}
    assert pages.errors(alice) == []
