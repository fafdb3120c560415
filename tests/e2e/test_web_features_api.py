"""The feature routes' refusals, fast and without a browser: two web apps served by
uvicorn in threads of this process, on one real ``baat serve``. Each refusal has a stable code: a
message that is not here, a message that is not yours, a change outside the SDK's window
(the client's clock is injected), a group change by a non-admin; and the app's periodic
task deletes an expired message while it runs and tells the page."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from baat.client.features import DELETE_WINDOW_MS, EDIT_WINDOW_MS
from baat.web.app import create_app
from baat.web.runtime import Runtime
from support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e

PASS = "correct horse battery staple"


SECRET = "s" * 43


class App:
    """One web app served in a thread of this process; ``http`` carries the browser's
    cookie. The test reaches into ``runtime`` only to move the client's clock."""

    def __init__(self, runtime: Runtime, port: int) -> None:
        self.runtime = runtime
        self.port = port
        config = uvicorn.Config(
            create_app(runtime, SECRET, port),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20)
        self.http.cookies.set(f"baat_app_{port}", SECRET)

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(20)

    def events(self) -> Any:
        """The page's event socket."""
        return connect(
            f"ws://127.0.0.1:{self.port}/ws",
            additional_headers={"cookie": f"baat_app_{self.port}={SECRET}"},
            open_timeout=5,
        )

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.http.post(path, json=body or {})

    def shift_clock(self, ms: int) -> None:
        client = self.runtime.need_client()
        real = client.clock
        client.clock = lambda: real() + ms


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.fixture
def make_app(web_server: ServerProcess, tmp_path: Path) -> Iterator[Callable[[str], App]]:
    opened: list[App] = []

    def make(name: str) -> App:
        runtime = Runtime(tmp_path / name, web_server.url, PASS)
        app = App(runtime, free_port())
        opened.append(app)
        r = app.post("/api/register", {"server_url": web_server.url, "username": name})
        assert r.status_code == 201, r.text
        wait_for(lambda: runtime.connection == "online")
        return app

    yield make
    for app in opened:
        app.stop()


def code(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["error"]["code"])


def exchange(alice: App, bob: App, bob_name: str, text: str) -> tuple[str, str]:
    """Alice writes to Bob; (chat id on Alice's side, message id) once Bob has it."""
    sent = alice.post("/api/send", {"to": bob_name, "text": text}).json()

    def arrived() -> list[dict[str, Any]]:
        found = bob.http.get("/api/messages").json()["messages"]
        return [m for m in found if m["id"] == sent["id"]]

    wait_for(arrived)
    mine = alice.http.get("/api/messages").json()["messages"]
    return next(m["chat"] for m in mine if m["id"] == sent["id"]), str(sent["id"])


def test_message_refusals_have_stable_codes(make_app: Callable[[str], App]) -> None:
    alice, bob = make_app("apialice"), make_app("apibob")
    alice_chat, mid = exchange(alice, bob, "apibob", "hello")

    # Not here.
    for path, body in [
        ("/api/edit", {"id": "0" * 32, "text": "x"}),
        ("/api/delete", {"id": "0" * 32}),
        ("/api/reply", {"id": "0" * 32, "text": "x"}),
        ("/api/react", {"id": "0" * 32, "emoji": "👍"}),
    ]:
        assert code(alice.post(path, body), 404) == "unknown_message"
    assert code(alice.post("/api/edit", {"text": "x"}), 400) == "invalid_request"
    assert code(alice.post("/api/edit", {"id": mid, "text": " "}), 400) == "invalid_request"

    # Not yours: Bob holds Alice's message but cannot change it.
    assert code(bob.post("/api/edit", {"id": mid, "text": "mine"}), 403) == "not_author"
    assert code(bob.post("/api/delete", {"id": mid}), 403) == "not_author"
    # Reacting and replying to it are fine.
    assert bob.post("/api/react", {"id": mid, "emoji": "👍"}).status_code == 200
    assert bob.post("/api/reply", {"id": mid, "text": "hi back"}).status_code == 200

    # Outside the window, by Alice's own (injected) clock.
    alice.shift_clock(EDIT_WINDOW_MS + 60_000)
    r = alice.post("/api/edit", {"id": mid, "text": "too late"})
    assert code(r, 409) == "too_late"
    assert "too old to be edited" in r.json()["error"]["message"]
    assert alice.post("/api/delete", {"id": mid}).status_code == 200  # 24 h for deletes
    assert code(alice.post("/api/edit", {"id": mid, "text": "x"}), 409) == "deleted"
    _, other = exchange(alice, bob, "apibob", "another")
    alice.shift_clock(DELETE_WINDOW_MS)
    assert code(alice.post("/api/delete", {"id": other}), 409) == "too_late"

    # Timer and typing input.
    bad = alice.post(f"/api/chats/{alice_chat}/timer", {"seconds": -1})
    assert code(bad, 400) == "invalid_timer"
    assert code(alice.post(f"/api/chats/{alice_chat}/timer", {"seconds": "5"}), 400) == (
        "invalid_timer"
    )
    assert code(alice.post("/api/chats/nobody/timer", {"seconds": 30}), 404) == ("unknown_contact")
    assert alice.post("/api/typing", {"chat": "nobody"}).json() == {"sent": False}
    assert code(alice.post("/api/settings", {"typing": "no"}), 400) == "invalid_request"


def test_group_changes_need_an_admin(make_app: Callable[[str], App]) -> None:
    alice, bob = make_app("gapialice"), make_app("gapibob")
    r = alice.post("/api/groups", {"name": "Tiffin", "members": ["gapibob"]})
    assert r.status_code == 201, r.text
    chat = r.json()["id"]
    wait_for(lambda: bob.http.get("/api/groups").json()["groups"])

    assert code(bob.post(f"/api/groups/{chat}/rename", {"name": "Mine"}), 403) == "not_admin"
    assert code(bob.post(f"/api/groups/{chat}/promote", {"member": "gapibob"}), 403) == (
        "not_admin"
    )
    assert code(alice.post(f"/api/groups/{chat}/promote", {"member": "nobody"}), 403) == (
        "not_member"
    )
    assert code(alice.post("/api/groups/g:nothing/rename", {"name": "x"}), 404) == ("unknown_group")

    assert alice.post(f"/api/groups/{chat}/rename", {"name": "Tiffin club"}).json()["name"] == (
        "Tiffin club"
    )
    promoted = alice.post(f"/api/groups/{chat}/promote", {"member": "gapibob"}).json()
    assert sorted(promoted["admins"]) == ["gapialice", "gapibob"]
    again = alice.post(f"/api/groups/{chat}/promote", {"member": "gapibob"})
    # The SDK's own code for it, passed through.
    assert code(again, 400) == "already_admin"

    def bob_sees() -> Any:
        g = bob.http.get(f"/api/groups/{chat}").json()
        return g["name"] == "Tiffin club" and g["admin"]

    wait_for(bob_sees)
    # Now an admin, Bob may rename too.
    assert bob.post(f"/api/groups/{chat}/rename", {"name": "Bob's tiffin"}).status_code == 200


def test_expiry_runs_while_the_app_runs(make_app: Callable[[str], App]) -> None:
    alice, bob = make_app("expalice"), make_app("expbob")
    alice_chat, _ = exchange(alice, bob, "expbob", "first")
    r = alice.post(f"/api/chats/{alice_chat}/timer", {"seconds": 2})
    assert r.json() == {"timer": 2}

    def texts() -> list[str]:
        found = alice.http.get(f"/api/messages?chat={alice_chat}").json()["messages"]
        return [m["text"] for m in found]

    with alice.events() as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "state"
        sent = alice.post("/api/send", {"to": "expbob", "text": "gone in two seconds"}).json()
        assert "gone in two seconds" in texts()
        # Nobody calls receive or sync: the client's own timer deletes the message on time
        # and the page is told.
        started = time.monotonic()
        event = json.loads(ws.recv(timeout=10))
        while event["type"] != "expired":
            event = json.loads(ws.recv(timeout=10))
        assert event["count"] == 1 and event["chat"] == alice_chat
        assert 1.0 <= time.monotonic() - started <= 8.0
    # The notice of the timer change stays: it is history, not a message that expires.
    assert texts() == ["first", "You turned on disappearing messages: 2 seconds"]
    assert sent["id"]
