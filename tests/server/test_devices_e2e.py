"""Linked devices through a real server: link codes, removal, stale device lists."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from baat.client.transport import TransportError
from baat.contract import link_message
from baat.crypto import identity_dh_signature_message, link_commitment, link_nonce
from baat.proto import Deliver, Error, OutgoingEnvelope, QueueDrained, Send, SendResult
from support.devices import DeviceUnderTest, b64, raw, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def link(url: str, primary: DeviceUnderTest) -> DeviceUnderTest:
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post(
            "/v1/devices/link-codes", headers={"authorization": primary.creds.header()}
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        key = Ed25519PrivateKey.generate()
        ik, dh = raw(key), raw(X25519PrivateKey.generate())
        body = {
            "code": code,
            "identity_key": b64(ik),
            "identity_dh_key": b64(dh),
            "identity_dh_sig": b64(key.sign(identity_dh_signature_message(dh))),
            "proof": b64(key.sign(link_message(code, ik, dh))),
            "commitment": b64(link_commitment(link_nonce(), ik)),
        }
        r = await http.post("/v1/devices", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        # A code links exactly one device.
        again = await http.post("/v1/devices", json=body)
        assert again.status_code == 404 and again.json()["error"]["code"] == "invalid_link_code"
    return DeviceUnderTest(out["username"], out["account_id"], out["device_id"], out["token"], key)


async def drained(t: object) -> None:
    while True:
        frame = await t.next_frame(5)  # type: ignore[attr-defined]
        assert frame is not None
        if isinstance(frame, QueueDrained):
            return


async def result_of(t: object, kind: type = SendResult) -> object:
    while True:
        frame = await t.next_frame(5)  # type: ignore[attr-defined]
        assert frame is not None
        if isinstance(frame, kind):
            return frame


async def test_link_send_to_all_devices_and_remove(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    await drained(a)
    # Alice knows one device of Bob's and sends.
    await a.send(Send("m1", [OutgoingEnvelope(bob.account_id, 1, b"one")]))
    assert isinstance(await result_of(a), SendResult)
    bob2 = await link(server.url, bob)
    assert (bob2.account_id, bob2.device_id) == (bob.account_id, 2)
    # Her list is now stale: refused until she addresses both devices.
    await a.send(Send("m2", [OutgoingEnvelope(bob.account_id, 1, b"two")]))
    err = await result_of(a, Error)
    assert isinstance(err, Error) and err.code == "stale_devices"
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/v1/accounts/bob", headers={"authorization": alice.creds.header()})
        assert r.json()["devices"] == [1, 2]
    await a.send(
        Send(
            "m2",
            [
                OutgoingEnvelope(bob.account_id, 1, b"two"),
                OutgoingEnvelope(bob.account_id, 2, b"2"),
            ],
        )
    )
    res = await result_of(a)
    assert isinstance(res, SendResult) and [r.status for r in res.results] == ["stored"] * 2
    b2 = await bob2.connect(server.url)
    got = []
    while True:
        frame = await b2.next_frame(5)
        assert frame is not None
        if isinstance(frame, QueueDrained):
            break
        if isinstance(frame, Deliver):
            got.append(frame.content)
    assert got == [b"2"]  # the new device sees the conversation from the moment it joined
    # The primary removes the new device: its connection is closed at once.
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.delete("/v1/devices/2", headers={"authorization": bob.creds.header()})
        assert r.status_code == 204
    err = await result_of(b2, Error)
    assert isinstance(err, Error) and err.code == "device_removed" and err.fatal
    await asyncio.wait_for(b2.closed.wait(), 5)
    with pytest.raises(TransportError):
        await bob2.connect(server.url)
    await a.send(
        Send(
            "m3",
            [OutgoingEnvelope(bob.account_id, 1, b"x"), OutgoingEnvelope(bob.account_id, 2, b"y")],
        )
    )
    err = await result_of(a, Error)
    assert isinstance(err, Error) and err.code == "stale_devices"


async def test_device_rules_and_signed_list_versions(server: ServerProcess) -> None:
    bob = await register(server.url, "bob")
    bob2 = await link(server.url, bob)
    h1 = {"authorization": bob.creds.header()}
    h2 = {"authorization": bob2.creds.header()}
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/v1/devices/link-codes", headers=h2)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_primary"
        r = await http.delete("/v1/devices/1", headers=h1)
        assert r.status_code == 409 and r.json()["error"]["code"] == "primary_device"
        r = await http.get("/v1/devices", headers=h2)
        assert [(d["device_id"], d["current"]) for d in r.json()["devices"]] == [
            (1, False),
            (2, True),
        ]
        blob = base64.b64encode(b"signed list v2").decode()
        r = await http.put("/v1/device-list", headers=h1, json={"version": 2, "signed_list": blob})
        assert r.status_code == 204
        old = base64.b64encode(b"signed list v1").decode()
        r = await http.put("/v1/device-list", headers=h1, json={"version": 1, "signed_list": old})
        assert r.status_code == 409 and r.json()["error"]["code"] == "stale_version"
        r = await http.put("/v1/device-list", headers=h2, json={"version": 3, "signed_list": blob})
        assert r.status_code == 403
        r = await http.get("/v1/accounts/bob", headers=h2)
        assert r.json()["device_list"] == {"version": 2, "signed_list": blob}
        # A device may remove itself.
        r = await http.delete("/v1/devices/2", headers=h2)
        assert r.status_code == 204
        r = await http.get("/v1/devices", headers=h1)
        assert [d["device_id"] for d in r.json()["devices"]] == [1]
        r = await http.post("/v1/devices", json={"code": "nope"})
        assert r.status_code == 400
