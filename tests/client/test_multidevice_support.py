"""Helpers for the multi-device, group and feature tests: SDK clients against a real
server process, linked devices, waiting until every device has what it should."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable
from pathlib import Path

from baat.client.linked import register_linked
from baat.client.sdk import Client
from baat.client.store import StoredMessage
from baat.proto import OutgoingEnvelope, SendResult

PASS = "correct horse battery staple"


async def account(root: Path, url: str, name: str) -> Client:
    client = await Client.register(root / name, PASS, url, name)
    await client.connect()
    return client


async def link(root: Path, primary: Client, label: str) -> Client:
    """A second device for ``primary``'s account; both screens show the same code."""
    before = {d["device_id"] for d in await primary.devices.server_devices()}
    code, _ = await primary.devices.create_link_code()
    joining = asyncio.create_task(register_linked(root / label, PASS, code.to_text()))
    new = await joined_device(primary, before)
    on_primary = await primary.devices.confirm_link(
        code, int(new["device_id"]), base64.b64decode(str(new["identity_key"]))
    )
    device, sas = await joining
    assert on_primary == sas
    await primary.devices.publish(include=[int(new["device_id"])])
    await device.connect()
    return device


async def joined_device(primary: Client, before: set[int]) -> dict[str, object]:
    """The device that joined ``primary``'s account since ``before`` was listed."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        now = await primary.devices.server_devices()
        new = [d for d in now if d["device_id"] not in before]
        if new:
            return dict(new[0])
        assert asyncio.get_running_loop().time() < deadline, "no device joined"
        await asyncio.sleep(0.1)


def texts(client: Client, chat: str | None = None) -> list[str]:
    return [str(m.body.get("text")) for m in client.store.messages(chat=chat)]


async def until(clients: Iterable[Client], ok: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let every client receive and flush until ``ok()`` holds."""
    everyone = list(clients)
    deadline = asyncio.get_running_loop().time() + timeout
    while not ok():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the devices to agree")
        for c in everyone:
            if c.connected:
                await c.receive()
        await asyncio.sleep(0.05)


class Recorder:
    """Keeps every Send a client makes (to replay envelopes by hand)."""

    def __init__(self, client: Client) -> None:
        self.sent: list[tuple[str, list[OutgoingEnvelope]]] = []
        original = client.send_envelopes

        async def send(message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
            self.sent.append((message_id, list(envelopes)))
            return await original(message_id, envelopes)

        client.send_envelopes = send  # type: ignore[method-assign]


def bodies(messages: Iterable[StoredMessage]) -> list[dict[str, object]]:
    return [m.body for m in messages]
