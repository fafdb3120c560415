"""A stranger who writes first names themselves: the app asks the server whether the name
is theirs and flags it when it is not (over the app's JSON API; no browser needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from baat.client.sdk import Client

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess
    from support.server import ServerProcess

pytestmark = pytest.mark.e2e
PASS = "correct horse battery staple"


async def eventually(http: httpx.AsyncClient, check: Callable[[Any], Any]) -> Any:
    for _ in range(100):
        found = check((await http.get("/api/chats")).json()["chats"])
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the app never showed it")


async def test_a_borrowed_name_is_flagged(
    server: ServerProcess, apps: Callable[..., AppProcess], tmp_path: Path
) -> None:
    app = apps("alice", server.url, passphrase=PASS)
    bob = await Client.register(tmp_path / "bob", PASS, server.url, "bob")
    mallory = await Client.register(tmp_path / "mallory", PASS, server.url, "mallory")
    cookies = {f"baat_app_{app.port}": app.secret}
    async with httpx.AsyncClient(base_url=app.base, cookies=cookies, timeout=20) as http:
        r = await http.post("/api/register", json={"server_url": server.url, "username": "alice"})
        assert r.status_code == 201, r.text
        try:
            await mallory.connect()
            # Mallory's client claims to be Bob inside the encrypted message.
            mallory.info = replace(mallory.info, username="bob")
            await mallory.send_text("alice", "Hi Alice, it is Bob, new number")
            row = await eventually(
                http, lambda chats: next((c for c in chats if c.get("name_doubt")), None)
            )
            assert row["chat"] == mallory.info.account_id
            assert row["username"] == "~bob"  # the SDK never gives it the bare name
            assert row["name_doubt"] == "on the server, bob is another account"

            # Starting a chat with "bob" reaches the real Bob, not the local impostor ...
            found = (await http.post("/api/lookup", json={"username": "bob"})).json()
            assert found["chat"] == bob.info.account_id
            # ... and a send to "bob" goes to the real Bob, never into the impostor's chat.
            r = await http.post(
                "/api/send", json={"chat": found["chat"], "to": "bob", "text": "Is this you?"}
            )
            assert r.status_code == 200, r.text
            await bob.connect()
            got = []
            for _ in range(10):
                got += await bob.receive(wait=1.0)
                if got:
                    break
            assert [m.body["text"] for m in got] == ["Is this you?"]
        finally:
            await mallory.close()
            await bob.close()
