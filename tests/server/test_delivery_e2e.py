"""Real-process tests: a ``baat serve`` subprocess and clients over real WebSockets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from baat.client.transport import Transport, TransportError
from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    prekey_signature_message,
)
from baat.proto import (
    Ack,
    Deliver,
    Error,
    OutgoingEnvelope,
    Ping,
    Pong,
    PrekeyRecord,
    QueueDrained,
    Send,
    SendResult,
    UploadPrekeys,
    encode,
)
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def next_of(t: Transport, kind: type, timeout: float = 5.0) -> object:
    """The next frame of ``kind``, skipping others (e.g. QueueDrained)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        frame = await t.next_frame(max(left, 0.01))
        if frame is None:
            raise AssertionError(f"no {kind.__name__} within {timeout}s ({t.close_reason})")
        if isinstance(frame, kind):
            return frame


async def send(t: Transport, to: DeviceUnderTest, mid: str, body: bytes) -> SendResult:
    await t.send(Send(mid, [OutgoingEnvelope(to.account_id, to.device_id, body)]))
    result = await next_of(t, SendResult)
    assert isinstance(result, SendResult) and result.message_id == mid
    return result


async def drain(t: Transport, ack: bool = True) -> list[Deliver]:
    """Every queued envelope up to QueueDrained."""
    got: list[Deliver] = []
    while True:
        frame = await t.next_frame(5)
        assert frame is not None, t.close_reason
        if isinstance(frame, Deliver):
            got.append(frame)
        if isinstance(frame, QueueDrained):
            break
    if ack and got:
        await t.send(Ack([d.guid for d in got]))
    return got


async def test_healthz_and_registration_errors(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        await register(server.url, "Alice")
        from support.devices import registration_body

        r = await http.post("/v1/accounts", json=registration_body("ALICE"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
        r = await http.post("/v1/accounts", json=registration_body("no spaces!"))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_username"
        body = registration_body("mallory")
        body["proof"] = body["identity_dh_sig"]  # a signature over something else
        r = await http.post("/v1/accounts", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_proof"
        body = registration_body("mallory")
        body["identity_dh_sig"] = body["proof"]
        r = await http.post("/v1/accounts", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_key"
        r = await http.post("/v1/accounts", content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        r = await http.get("/v1/accounts/alice")
        assert r.status_code == 401


async def test_online_and_offline_delivery_in_order(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    await drain(a)
    # Bob offline: the sends are stored.
    for n in range(3):
        result = await send(a, bob, f"off{n}", b"offline %d" % n)
        assert result.results[0].status == "stored"
    b = await bob.connect(server.url)
    got = await drain(b)
    assert [d.content for d in got] == [b"offline 0", b"offline 1", b"offline 2"]
    assert {d.sender_account for d in got} == {alice.account_id}
    # Bob online: pushed at once, and acknowledged before the write.
    await a.send(Send("on1", [OutgoingEnvelope(bob.account_id, 1, b"live")]))
    live = await next_of(b, Deliver)
    assert isinstance(live, Deliver) and live.content == b"live"
    await b.send(Ack([live.guid]))
    result = await next_of(a, SendResult)
    assert isinstance(result, SendResult) and result.results[0].status in ("delivered", "stored")
    await b.close()
    # Acknowledged envelopes are gone; nothing is delivered twice.
    b = await bob.connect(server.url)
    assert await drain(b) == []
    await a.close()
    await b.close()


async def test_unacknowledged_envelopes_come_back(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    b = await bob.connect(server.url)
    await drain(b)
    await send(a, bob, "m1", b"one")
    first = await next_of(b, Deliver)
    await b.close()  # never acknowledged
    b = await bob.connect(server.url)
    again = await drain(b)
    assert [d.content for d in again] == [b"one"]
    assert isinstance(first, Deliver) and again[0].guid == first.guid
    await a.close()
    await b.close()


async def test_retried_send_is_never_delivered_twice(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    assert (await send(a, bob, "same", b"x")).results[0].status == "stored"
    assert (await send(a, bob, "same", b"x")).results[0].status == "duplicate"
    await a.close()
    server.restart()  # the memory of recent sends survives a graceful restart
    a = await alice.connect(server.url)
    assert (await send(a, bob, "same", b"x")).results[0].status == "duplicate"
    b = await bob.connect(server.url)
    assert len(await drain(b)) == 1
    await a.close()
    await b.close()


async def test_unknown_recipients_are_reported_per_envelope(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    await a.send(
        Send(
            "m",
            [
                OutgoingEnvelope(bob.account_id, 1, b"ok"),
                OutgoingEnvelope("0" * 32, 1, b"no such account"),
            ],
        )
    )
    result = await next_of(a, SendResult)
    assert isinstance(result, SendResult)
    assert [r.status for r in result.results] == ["stored", "unknown_account"]
    # Addressing a device the account does not have means the sender's list is stale:
    # the whole send is refused, so that the sender refreshes and encrypts for each device.
    await a.send(
        Send(
            "m2",
            [OutgoingEnvelope(bob.account_id, 1, b"x"), OutgoingEnvelope(bob.account_id, 9, b"y")],
        )
    )
    err = await next_of(a, Error)
    assert isinstance(err, Error) and err.code == "stale_devices" and err.message_id == "m2"
    assert not err.fatal
    await a.close()


@pytest.mark.parametrize("how", ["graceful", "kill"])
async def test_restart_between_send_and_receive_loses_nothing(
    server: ServerProcess, how: str
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    for n in range(20):
        assert (await send(a, bob, f"m{n}", b"%d" % n)).results[0].status == "stored"
    if how == "kill":
        # Every envelope was acknowledged to the sender as stored, so even kill -9 keeps it.
        server.kill()
        server.start()
    else:
        server.restart()
    b = await bob.connect(server.url)
    got = await drain(b)
    assert [d.content for d in got] == [b"%d" % n for n in range(20)]


async def test_graceful_shutdown_flushes_pushed_unacknowledged(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    b = await bob.connect(server.url)
    await drain(b)
    a = await alice.connect(server.url)
    await a.send(Send("m", [OutgoingEnvelope(bob.account_id, 1, b"in flight")]))
    await next_of(b, Deliver)  # received, never acknowledged
    server.restart()
    b = await bob.connect(server.url)
    assert [d.content for d in await drain(b)] == [b"in flight"]


def signed(key: DeviceUnderTest, kind: int, key_id: int, public: bytes) -> PrekeyRecord:
    return PrekeyRecord(
        kind, key_id, public, key.sign(prekey_signature_message(kind, key_id, public))
    )


async def test_last_one_time_prekey_goes_to_exactly_one_racer(server: ServerProcess) -> None:
    bob = await register(server.url, "bob")
    b = await bob.connect(server.url)
    status = await b.upload_prekeys(
        UploadPrekeys(
            0,
            [signed(bob, PREKEY_KIND_CURVE_SIGNED, 1, os.urandom(32))],
            [PrekeyRecord(PREKEY_KIND_CURVE_ONE_TIME, 7, os.urandom(32))],
        )
    )
    assert status.counts[PREKEY_KIND_CURVE_ONE_TIME] == 1
    racers = [await (await register(server.url, f"racer{i}")).connect(server.url) for i in range(6)]
    results = await asyncio.gather(*(r.fetch_bundle(bob.account_id) for r in racers))
    claimed = [r.devices[0].one_time_curve for r in results if r.devices[0].one_time_curve]
    assert len(claimed) == 1 and claimed[0].key_id == 7
    assert all(r.devices[0].signed_prekey is not None for r in results)
    with pytest.raises(TransportError) as info:
        await racers[0].fetch_bundle("f" * 32)
    assert info.value.code == "unknown_account"


async def test_bad_prekey_signature_is_refused(server: ServerProcess) -> None:
    bob = await register(server.url, "bob")
    b = await bob.connect(server.url)
    bad = PrekeyRecord(PREKEY_KIND_CURVE_SIGNED, 1, os.urandom(32), b"\x00" * 64)
    with pytest.raises(TransportError) as info:
        await b.upload_prekeys(UploadPrekeys(0, [bad], []))
    assert info.value.code == "invalid_prekey"
    assert isinstance(await b.request(UploadPrekeys(0, [], [])), object)


async def test_garbage_closes_only_the_offender(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    mallory = await register(server.url, "mallory")
    a = await alice.connect(server.url)
    b = await bob.connect(server.url)
    await drain(b)
    m = await mallory.connect(server.url)
    await m.send_raw(b"\xc1\xc1 definitely not msgpack")
    err = await next_of(m, Error)
    assert isinstance(err, Error) and err.code == "malformed_frame" and err.fatal
    await asyncio.wait_for(m.closed.wait(), 5)
    # Everyone else is still served.
    await a.send(Send("after", [OutgoingEnvelope(bob.account_id, 1, b"still here")]))
    got = await next_of(b, Deliver)
    assert isinstance(got, Deliver) and got.content == b"still here"
    await a.close()
    await b.close()


async def test_oversized_and_text_frames(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    await a.send(Send("big", [OutgoingEnvelope(bob.account_id, 1, b"x" * (64 * 1024 + 1))]))
    err = await next_of(a, Error)
    assert isinstance(err, Error) and err.code == "envelope_too_large" and not err.fatal
    await a.send(Ping(5))
    assert await next_of(a, Pong) == Pong(5)
    await a.send_raw(encode(Ping(1)) + b"x" * (300 * 1024))
    err = await next_of(a, Error)
    assert isinstance(err, Error) and err.code == "frame_too_large"
    await asyncio.wait_for(a.closed.wait(), 5)
    a = await alice.connect(server.url)
    await a.ws.send("text is not allowed")
    err = await next_of(a, Error)
    assert isinstance(err, Error) and err.code == "malformed_frame"


async def test_authentication_failures(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    impostor = await register(server.url, "impostor")
    with pytest.raises(TransportError) as info:
        await Transport.connect(server.url, alice.account_id, 1, impostor.sign)
    assert info.value.code == "auth_failed"
    with pytest.raises(TransportError) as info:
        await Transport.connect(server.url, "nobody", 1, alice.sign)
    assert info.value.code == "auth_failed"
    with pytest.raises(TransportError) as info:
        await Transport.connect("http://127.0.0.1:1", alice.account_id, 1, alice.sign)
    assert info.value.code == "unreachable"


async def test_rate_limits_refuse_only_the_excess(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "srv", None, "--frames-per-second", "5", "--envelopes-per-second", "3"
    ).start()
    try:
        alice = await register(server.url, "alice")
        bob = await register(server.url, "bob")
        a = await alice.connect(server.url)
        await drain(a)
        codes = []
        for n in range(12):
            await a.send(Send(f"m{n}", [OutgoingEnvelope(bob.account_id, 1, b"x")]))
        for _ in range(12):
            frame = await a.next_frame(5)
            assert frame is not None
            codes.append(frame.code if isinstance(frame, Error) else "ok")
        assert "rate_limited" in codes and "ok" in codes
        await asyncio.sleep(1.5)
        assert (await send(a, bob, "later", b"x")).results[0].status == "stored"
    finally:
        server.stop()


async def test_server_keeps_no_plaintext_or_addresses(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    a = await alice.connect(server.url)
    await send(a, bob, "m", b"SECRET-CIPHERTEXT-MARKER")
    await a.close()
    server.stop()
    log = server.log()
    assert "SECRET-CIPHERTEXT-MARKER" not in log
    # The only address in the log is the server's own listening address.
    assert log.count("127.0.0.1") == log.count(f"127.0.0.1:{server.port}")
    server.start()
