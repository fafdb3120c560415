"""Nothing is lost when the server restarts in the middle of a fan-out (issue 18, item 4).

A real ``baat serve``; a sender sends one message to 20 members that receive it but do not
acknowledge it yet, so its envelopes sit in the fan-out hold (memory). Then the server
stops, gracefully or with ``kill -9``, and starts again on the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.proto import (
    Ack,
    Deliver,
    OutgoingEnvelope,
    Send,
    SendResult,
    decode_server,
    encode,
)
from support.devices import registration_body
from support.rawws import RawClient, connect
from support.server import ServerProcess

pytestmark = pytest.mark.e2e

MEMBERS = 20
Dev = tuple[str, int, Ed25519PrivateKey]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path / "server",
        None,
        "--registrations-per-address",
        "100",
        "--registrations-per-minute",
        "1000",
        "--max-connections-per-address",
        "0",
        # Long enough that the restart surely comes while the envelopes are held.
        "--fanout-hold",
        "60",
    ).start()
    try:
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()
        assert "Traceback" not in proc.log()


async def _register(url: str, n: int) -> list[Dev]:
    out: list[Dev] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for i in range(n):
            key = Ed25519PrivateKey.generate()
            r = await http.post("/v1/accounts", json=registration_body(f"fan{i}", key))
            assert r.status_code == 201, r.text
            out.append((r.json()["account_id"], r.json()["device_id"], key))
    return out


def _delivers(frames: list[bytes]) -> list[Deliver]:
    return [f for f in map(decode_server, frames) if isinstance(f, Deliver)]


async def _collect(client: RawClient, timeout: float = 20) -> list[Deliver]:
    """Wait for one Deliver on a connected client (without acknowledging it)."""
    while True:
        frame = decode_server(await client.recv(timeout))
        if isinstance(frame, Deliver):
            return [frame]


async def _fan_out(srv: ServerProcess, devs: list[Dev]) -> tuple[RawClient, list[RawClient]]:
    sender = await connect(srv.port, *devs[0])
    members = [await connect(srv.port, *d) for d in devs[1:]]
    envs = [OutgoingEnvelope(a, d, f"for {a}".encode()) for a, d, _ in devs[1:]]
    sender.send(encode(Send("g-1", envs)))
    for m in members:
        got = await _collect(m)
        assert got[0].message_id == "g-1"
    # Every member has it, none acknowledged: no SendResult may exist yet.
    await asyncio.sleep(0.3)
    assert sender.inbox.empty()
    return sender, members


async def _members_get_it_after_restart(srv: ServerProcess, devs: list[Dev]) -> None:
    for a, d, key in devs[1:]:
        m = await connect(srv.port, a, d, key)
        got = _delivers(m.early)
        assert [x.message_id for x in got] == ["g-1"], (a, got)
        assert got[0].content == f"for {a}".encode()
        m.send(encode(Ack([got[0].guid])))
        await asyncio.sleep(0.01)
        m.close()


async def test_graceful_restart_mid_fan_out_stores_the_held_envelopes(
    srv: ServerProcess,
) -> None:
    devs = await _register(srv.url, MEMBERS + 1)
    sender, members = await _fan_out(srv, devs)
    srv.stop()  # SIGTERM: the hold is committed before the process ends
    for m in (sender, *members):
        m.close()
    srv.start()
    # The connection closed before any SendResult reached the sender, so it sends again:
    # the server remembers the send (saved at shutdown) and stores nothing twice.
    sender = await connect(srv.port, *devs[0])
    envs = [OutgoingEnvelope(a, d, f"for {a}".encode()) for a, d, _ in devs[1:]]
    sender.send(encode(Send("g-1", envs)))
    result = decode_server(await sender.recv(20))
    assert isinstance(result, SendResult)
    assert [r.status for r in result.results] == ["duplicate"] * MEMBERS
    sender.close()
    await _members_get_it_after_restart(srv, devs)
    # Acknowledged after the restart: deleted, not delivered a third time.
    for a, d, key in devs[1:4]:
        m = await connect(srv.port, a, d, key)
        assert _delivers(m.early) == []
        m.close()


async def test_kill_mid_fan_out_loses_nothing_the_sender_was_told(srv: ServerProcess) -> None:
    devs = await _register(srv.url, MEMBERS + 1)
    sender, members = await _fan_out(srv, devs)
    srv.kill()  # no flush: the held envelopes are gone, and so is any promise about them
    for m in (sender, *members):
        m.close()
    srv.start()
    # The sender never got a SendResult, so it still has the message and sends it again.
    sender = await connect(srv.port, *devs[0])
    envs = [OutgoingEnvelope(a, d, f"for {a}".encode()) for a, d, _ in devs[1:]]
    sender.send(encode(Send("g-1", envs)))
    members = [await connect(srv.port, *d) for d in devs[1:]]
    for (a, _, _), m in zip(devs[1:], members, strict=True):
        got = _delivers(m.early) or await _collect(m)
        assert got[0].message_id == "g-1" and got[0].content == f"for {a}".encode()
        m.send(encode(Ack([got[0].guid])))
    result = decode_server(await sender.recv(20))
    assert isinstance(result, SendResult)
    assert {r.status for r in result.results} <= {"stored", "delivered"}
    assert len(result.results) == MEMBERS
    for m in (sender, *members):
        m.close()
