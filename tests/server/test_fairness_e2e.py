"""Fairness on a real ``baat serve`` under a few hundred connections (issue 18, item 2).

150 sender -> receiver pairs ping-pong one envelope at a time from a cold start (no device
list cached: the case that starved whole ranges of pairs for seconds), while four greedy
senders pipeline hundreds of ``Send`` frames per write. Every ordinary pair must make
progress, the slowest at least a quarter of the median, and every greedy send must still
get its ``SendResult``: nothing is lost, nobody is starved.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.proto import Ack, Deliver, OutgoingEnvelope, Send, SendResult, decode_server, encode
from support.devices import registration_body
from support.rawws import RawClient, connect
from support.server import ServerProcess

pytestmark = pytest.mark.e2e

PAIRS = 150
GREEDY = 4
GREEDY_SENDS = 1500
SECONDS = 4.0
UNLIMITED = "1000000000"


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path / "server",
        None,
        "--envelopes-per-second",
        UNLIMITED,
        "--frames-per-second",
        UNLIMITED,
        "--recipient-envelopes-per-second",
        UNLIMITED,
        "--registrations-per-minute",
        UNLIMITED,
        "--registrations-per-address",
        UNLIMITED,
        "--max-connections-per-address",
        "0",
    ).start()
    try:
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()
        assert "Traceback" not in proc.log()


async def _register(url: str, n: int) -> list[tuple[str, int, Ed25519PrivateKey]]:
    out: list[tuple[str, int, Ed25519PrivateKey]] = []
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def one(i: int) -> None:
            key = Ed25519PrivateKey.generate()
            async with sem:
                r = await http.post("/v1/accounts", json=registration_body(f"fair{i}", key))
            assert r.status_code == 201, r.text
            body = r.json()
            out.append((body["account_id"], body["device_id"], key))

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


class Pair:
    def __init__(self, sender: RawClient, receiver: RawClient, to: tuple[str, int]) -> None:
        self.sender, self.receiver, self.to = sender, receiver, to
        self.seq = 0
        self.delivered = 0
        self.running = True
        sender.on_message = self._on_sender
        receiver.on_message = self._on_receiver

    def send_one(self) -> None:
        self.seq += 1
        env = OutgoingEnvelope(self.to[0], self.to[1], os.urandom(256))
        self.sender.send(encode(Send(f"m{self.seq}", [env])))

    def _on_sender(self, data: bytes) -> None:
        if isinstance(decode_server(data), SendResult) and self.running:
            self.send_one()

    def _on_receiver(self, data: bytes) -> None:
        frame = decode_server(data)
        if isinstance(frame, Deliver):
            self.receiver.send(encode(Ack([frame.guid])))
            if self.running:
                self.delivered += 1


class Greedy:
    """Pipelines every send at once; its receiver acknowledges each delivery."""

    def __init__(self, sender: RawClient, receiver: RawClient, to: tuple[str, int]) -> None:
        self.sender, self.receiver, self.to = sender, receiver, to
        self.results = 0
        self.done = asyncio.get_running_loop().create_future()
        sender.on_message = self._on_sender
        receiver.on_message = self._on_receiver

    def blast(self) -> None:
        for start in range(0, GREEDY_SENDS, 250):
            self.sender.send_many(
                [
                    encode(Send(f"g{i}", [OutgoingEnvelope(self.to[0], self.to[1], b"x" * 256)]))
                    for i in range(start, min(GREEDY_SENDS, start + 250))
                ]
            )

    def _on_sender(self, data: bytes) -> None:
        frame = decode_server(data)
        assert isinstance(frame, SendResult), frame  # never an error: nothing is refused
        self.results += 1
        if self.results == GREEDY_SENDS and not self.done.done():
            self.done.set_result(None)

    def _on_receiver(self, data: bytes) -> None:
        frame = decode_server(data)
        if isinstance(frame, Deliver):
            self.receiver.send(encode(Ack([frame.guid])))


async def test_every_pair_progresses_under_load(open_server: ServerProcess) -> None:
    port = open_server.port
    devices = await _register(open_server.url, 2 * (PAIRS + GREEDY))
    sem = asyncio.Semaphore(32)

    async def conn(i: int) -> RawClient:
        async with sem:
            return await connect(port, *devices[i])

    clients = await asyncio.gather(*(conn(i) for i in range(len(devices))))
    try:
        pairs = [
            Pair(clients[2 * i], clients[2 * i + 1], devices[2 * i + 1][:2]) for i in range(PAIRS)
        ]
        greedy = [
            Greedy(clients[2 * i], clients[2 * i + 1], devices[2 * i + 1][:2])
            for i in range(PAIRS, PAIRS + GREEDY)
        ]
        # All at once, from a cold start: no recipient's device list is cached yet.
        for g in greedy:
            g.blast()
        for p in pairs:
            p.send_one()
        started = time.monotonic()
        await asyncio.sleep(SECONDS)
        for p in pairs:
            p.running = False
        counts = sorted(p.delivered for p in pairs)
        median = statistics.median(counts)
        assert counts[0] > 0, f"a pair got nothing in {SECONDS} s: {counts[:10]}"
        assert counts[0] >= 0.25 * median, (
            f"starved: fewest {counts[0]}, median {median}, most {counts[-1]}"
        )
        # The greedy senders were slowed, not dropped: every send is answered.
        await asyncio.wait_for(asyncio.gather(*(g.done for g in greedy)), 60)
        assert all(g.results == GREEDY_SENDS for g in greedy)
        assert time.monotonic() - started < 60
    finally:
        for c in clients:
            c.close()
