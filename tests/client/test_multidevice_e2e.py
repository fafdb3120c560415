"""Several devices per account through a real server (docs/GROUPS.md §2 and §4): a linked
device receives and sends, copies of sent messages reach our other devices, a removed
device gets nothing more, stale device lists are refreshed, signed lists are checked."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from baat.client.core import NotConnected
from baat.client.devices import DeviceError
from baat.client.sdk import Client
from baat.crypto import DeviceList, IdentityKeyPair, sign_device_list
from client.test_multidevice_support import (
    PASS,
    account,
    joined_device,
    link,
    texts,
    until,
)
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def test_linked_device_receives_sends_and_is_removed(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    clients = [alice, bob]
    try:
        await bob.send_text("alice", "before the laptop")
        await until(clients, lambda: "before the laptop" in texts(alice))
        laptop = await link(tmp_path, alice, "alice-laptop")
        clients.append(laptop)
        # Bob's view of Alice's devices is stale: the server refuses, Bob refreshes the
        # signed list and retries, and both of Alice's devices get the message.
        await bob.send_text("alice", "hello both")
        await until(clients, lambda: "hello both" in texts(laptop) and "hello both" in texts(alice))
        assert "before the laptop" not in texts(laptop)  # from the moment it joined
        # What the laptop sends shows on the phone too, filed under Bob.
        await laptop.send_text("bob", "typed on the laptop")
        await until(
            clients,
            lambda: "typed on the laptop" in texts(bob) and "typed on the laptop" in texts(alice),
        )
        copy = next(m for m in alice.store.messages() if m.body["text"] == "typed on the laptop")
        assert copy.direction == "out" and copy.chat == bob.info.account_id
        assert copy.sender_device == laptop.info.device_id
        # The laptop is removed: closed at once, told why, and gets nothing more.
        await alice.devices.remove(laptop.info.device_id)
        await until(clients, lambda: laptop.removed)
        assert [i.kind for i in laptop.incidents if i.kind == "device_removed"] == [
            "device_removed"
        ]
        await bob.send_text("alice", "only the phone")
        await until(clients, lambda: "only the phone" in texts(alice))
        assert "only the phone" not in texts(laptop)
        with pytest.raises(NotConnected) as caught:
            await laptop.connect()
        assert "removed" in str(caught.value)
        listed = [d["device_id"] for d in await alice.devices.server_devices()]
        assert listed == [1]
    finally:
        for c in clients:
            await c.close()


async def test_device_lists_are_verified(tmp_path: Path, server: ServerProcess) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    try:
        await bob.send_text("alice", "hi")
        found = await bob.devices.refresh(alice.info.account_id)
        assert found == {1: alice.identity.identity_key}
        # Only the primary signs; a list signed by another key is refused.
        with pytest.raises(DeviceError):
            laptop = await link(tmp_path, alice, "alice-laptop")
            await laptop.devices.publish()
        mallory = IdentityKeyPair.generate()
        forged = DeviceList.build(alice.info.account_id, 9, [(1, mallory.identity_key)], 0)
        blob = sign_device_list(mallory, forged)
        import httpx

        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.put(
                "/v1/device-list",
                headers={"authorization": alice.credentials.header()},
                json={"version": 9, "signed_list": base64.b64encode(blob).decode()},
            )
            assert r.status_code == 204  # the server cannot tell; the peers can
        from baat.client.core import IdentityChanged

        with pytest.raises(IdentityChanged):
            await bob.devices.refresh(alice.info.account_id)
        await laptop.close()
    finally:
        await alice.close()
        await bob.close()


async def test_link_code_errors(tmp_path: Path, server: ServerProcess) -> None:
    from baat.client.core import RegistrationFailed
    from baat.client.linked import register_linked
    from baat.crypto import InvalidLinkCode

    alice = await account(tmp_path, server.url, "alice")
    try:
        code, _ = await alice.devices.create_link_code()
        text = code.to_text()
        # One wrong letter inside the secret: the checksum catches it.
        typo = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
        with pytest.raises(InvalidLinkCode):
            await register_linked(tmp_path / "x", PASS, typo)
        before = {d["device_id"] for d in await alice.devices.server_devices()}
        joining = asyncio.create_task(register_linked(tmp_path / "y", PASS, text))
        new = await joined_device(alice, before)
        await alice.devices.confirm_link(
            code, int(new["device_id"]), base64.b64decode(str(new["identity_key"]))
        )
        device, _ = await joining
        await device.close()
        with pytest.raises(RegistrationFailed) as used:
            await register_linked(tmp_path / "z", PASS, text)
        assert used.value.code == "invalid_link_code"
        client: Client = alice
        assert client.devices.is_primary
    finally:
        await alice.close()
