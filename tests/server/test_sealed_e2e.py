"""Sealed sends through a real ``baat serve`` on SQLite and PostgreSQL (issue 16): the access
check, its stable refusal, the anonymous connection, and no sender left behind."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import httpx
import pytest

from baat.client.transport import Transport
from baat.crypto import identity_dh_signature_message
from baat.crypto.keys import IdentityKeyPair
from baat.crypto.sealed import (
    CertificateValidator,
    access_key,
    access_verifier,
    new_profile_key,
    open_sealed,
    seal,
)
from baat.proto import Deliver, Error, QueueDrained, SealedEnvelope, SealedSend, SendResult
from baat.server.accounts import registration_message
from support.devices import OPEN_TRANSPORTS, DeviceUnderTest, b64
from support.sealed_scan import linking_rows, server_db
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def register(url: str, username: str) -> tuple[DeviceUnderTest, IdentityKeyPair]:
    ident = IdentityKeyPair.generate()
    ik, dh = ident.identity_key, ident.identity_dh_key
    body = {
        "username": username,
        "identity_key": b64(ik),
        "identity_dh_key": b64(dh),
        "identity_dh_sig": b64(ident.sign(identity_dh_signature_message(dh))),
        "proof": b64(ident.sign(registration_message(username, ik, dh))),
    }
    async with httpx.AsyncClient() as http:
        r = await http.post(url + "/v1/accounts", json=body)
    assert r.status_code == 201, r.text
    data = r.json()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(ident.to_bytes()[1:33])
    dut = DeviceUnderTest(
        data["username"], data["account_id"], data["device_id"], data["token"], key
    )
    return dut, ident


def bearer(d: DeviceUnderTest) -> dict[str, str]:
    return {"Authorization": f"Bearer {d.account_id}.{d.device_id}.{d.token}"}


async def anonymous(url: str) -> Transport:
    t = await Transport.connect_anonymous(url)
    OPEN_TRANSPORTS.append(t)
    return t


async def next_frame(t: Transport, kinds: tuple[type, ...], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        frame = await t.next_frame(max(deadline - time.monotonic(), 0.01))
        assert frame is not None, t.close_reason
        if isinstance(frame, kinds):
            return frame


async def test_sealed_send_needs_the_access_key_and_leaves_no_sender(
    sealed_server: ServerProcess, db_url: str
) -> None:
    url = sealed_server.url
    alice, alice_id = await register(url, "alice")
    bob, bob_id = await register(url, "bob")
    async with httpx.AsyncClient(base_url=url) as http:
        keys = (await http.get("/.well-known/baat/keys")).json()["sealed_sender"]
        root = base64.b64decode(keys["trust_root"])
        assert len(keys["server_certificates"]) == 2  # this week's and the next
        r = await http.get("/v1/certificate/delivery", headers=bearer(alice))
        assert r.status_code == 200
        cert = base64.b64decode(r.json()["certificate"])
        assert (await http.get("/v1/certificate/delivery")).status_code == 401
        profile_key = new_profile_key()
        key = access_key(profile_key)
        r = await http.put(
            "/v1/profile/access",
            headers=bearer(bob),
            json={"verifier": b64(access_verifier(key)), "anyone": False},
        )
        assert r.status_code == 200 and r.json()["anyone"] is False
        bad = await http.put("/v1/profile/access", headers=bearer(bob), json={"verifier": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"

    sealed = seal(bob_id.identity_dh_key, alice_id.dh_pair, cert, b"hello bob")
    t = await anonymous(url)
    # Without the key: refused with the stable code, nothing accepted, connection usable.
    await t.send(SealedSend("s-1", bob.account_id, b"\0" * 16, [SealedEnvelope(1, sealed)]))
    err = await next_frame(t, (Error,))
    assert isinstance(err, Error) and err.code == "sealed_access_denied"
    assert err.message_id == "s-1" and not err.fatal
    await t.send(SealedSend("s-2", bob.account_id, key, [SealedEnvelope(1, sealed)]))
    result = await next_frame(t, (SendResult,))
    assert isinstance(result, SendResult) and result.results[0].status == "stored"
    # A retry with the same id is recognised without any sender.
    await t.send(SealedSend("s-2", bob.account_id, key, [SealedEnvelope(1, sealed)]))
    again = await next_frame(t, (SendResult,))
    assert isinstance(again, SendResult) and again.results[0].status == "duplicate"
    # An anonymous connection may do nothing else.
    assert t.conn.state.value == "challenged"

    await _assert_no_sender(sealed_server, db_url, alice, bob.account_id)

    receiver = await bob.connect(url)
    got = await next_frame(receiver, (Deliver,))
    assert isinstance(got, Deliver)
    assert (got.sender_account, got.sender_device) == ("", 0)
    validator = CertificateValidator([root])
    opened = open_sealed(got.content, bob_id.dh_pair, validator, int(time.time() * 1000))
    assert opened.inner == b"hello bob"
    assert (opened.sender.account_id, opened.sender.device_id) == (alice.account_id, 1)
    assert isinstance(await next_frame(receiver, (QueueDrained,)), QueueDrained)

    # Rotating the key (a new profile key): the old one is refused at once.
    async with httpx.AsyncClient(base_url=url) as http:
        new_key = access_key(new_profile_key())
        await http.put(
            "/v1/profile/access",
            headers=bearer(bob),
            json={"verifier": b64(access_verifier(new_key)), "anyone": False},
        )
    await t.send(SealedSend("s-3", bob.account_id, key, [SealedEnvelope(1, sealed)]))
    err = await next_frame(t, (Error,))
    assert isinstance(err, Error) and err.code == "sealed_access_denied"
    await t.send(SealedSend("s-4", bob.account_id, new_key, [SealedEnvelope(1, sealed)]))
    ok = await next_frame(t, (SendResult,))
    assert isinstance(ok, SendResult) and ok.results[0].status in ("delivered", "stored")
    await sealed_server_stop(sealed_server)
    await _assert_no_sender(sealed_server, db_url, alice, bob.account_id)
    assert alice.account_id not in sealed_server.log()


async def sealed_server_stop(server: ServerProcess) -> None:
    # A graceful stop writes the duplicate-send memory to ``recent_sends``.
    await asyncio.to_thread(server.stop)


async def test_from_anyone_is_off_by_default_and_devices_are_checked(
    sealed_server: ServerProcess,
) -> None:
    url = sealed_server.url
    alice, alice_id = await register(url, "alice")
    bob, bob_id = await register(url, "bob")
    async with httpx.AsyncClient(base_url=url) as http:
        cert = base64.b64decode(
            (await http.get("/v1/certificate/delivery", headers=bearer(alice))).json()[
                "certificate"
            ]
        )
        state = (await http.get("/v1/profile/access", headers=bearer(bob))).json()
        assert state == {"verifier": None, "anyone": False}
    sealed = seal(bob_id.identity_dh_key, alice_id.dh_pair, cert, b"hi")
    t = await anonymous(url)
    await t.send(SealedSend("a-1", bob.account_id, b"", [SealedEnvelope(1, sealed)]))
    err = await next_frame(t, (Error,))
    assert isinstance(err, Error) and err.code == "sealed_access_denied"
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.put(
            "/v1/profile/access", headers=bearer(bob), json={"verifier": None, "anyone": True}
        )
        assert r.json()["anyone"] is True
    await t.send(SealedSend("a-2", bob.account_id, b"", [SealedEnvelope(1, sealed)]))
    ok = await next_frame(t, (SendResult,))
    assert isinstance(ok, SendResult) and ok.results[0].status == "stored"
    # A wrong device list is refused as for any send.
    await t.send(SealedSend("a-3", bob.account_id, b"", [SealedEnvelope(2, sealed)]))
    err = await next_frame(t, (Error,))
    assert isinstance(err, Error) and err.code == "stale_devices"


async def _assert_no_sender(
    server: ServerProcess, db_url: str, sender: DeviceUnderTest, recipient: str
) -> None:
    """No row of any table names the sender next to the recipient; envelopes hold no
    sender at all."""
    db = server_db(server.data_dir, None if "sqlite" in db_url else db_url)
    assert await linking_rows(db, [sender.account_id], recipient) == []


async def test_rate_limits_per_access_key_and_per_connection(tmp_path: Path) -> None:
    # One envelope a second, bursts of two: for each access key and each connection.
    server = ServerProcess(tmp_path / "server", None, "--envelopes-per-second", "1").start()
    try:
        url = server.url
        alice, alice_id = await register(url, "alice")
        bob, bob_id = await register(url, "bob")
        carol, carol_id = await register(url, "carol")
        keys = {}
        async with httpx.AsyncClient(base_url=url) as http:
            cert = base64.b64decode(
                (await http.get("/v1/certificate/delivery", headers=bearer(alice))).json()[
                    "certificate"
                ]
            )
            for who in (bob, carol):
                keys[who.account_id] = access_key(new_profile_key())
                await http.put(
                    "/v1/profile/access",
                    headers=bearer(who),
                    json={"verifier": b64(access_verifier(keys[who.account_id])), "anyone": False},
                )

        async def send(t: Transport, mid: str, to: DeviceUnderTest, dh: bytes) -> str:
            body = seal(dh, alice_id.dh_pair, cert, b"x")
            await t.send(
                SealedSend(mid, to.account_id, keys[to.account_id], [SealedEnvelope(1, body)])
            )
            frame = await next_frame(t, (SendResult, Error))
            return frame.results[0].status if isinstance(frame, SendResult) else frame.code

        first = await anonymous(url)
        got = [await send(first, f"a{i}", bob, bob_id.identity_dh_key) for i in range(3)]
        assert got == ["stored", "stored", "rate_limited"]
        # Bob's key is spent whichever connection presents it ...
        second = await anonymous(url)
        assert await send(second, "b0", bob, bob_id.identity_dh_key) == "rate_limited"
        # ... while Carol's is not, and the second connection still has its own allowance.
        assert await send(second, "b1", carol, carol_id.identity_dh_key) == "stored"
        # The first connection's allowance is spent, whichever key it presents.
        assert await send(first, "a5", carol, carol_id.identity_dh_key) == "rate_limited"
        await asyncio.sleep(1.2)  # the buckets refill
        assert await send(first, "a6", bob, bob_id.identity_dh_key) == "stored"
    finally:
        server.stop()
