"""The socket path's share of the loop (``transport/ws.py`` with ``server/fairness.py``):
a quantum of messages per connection per turn, and a held sender that reads nothing more.

The protocol object is the real one with the real codec; its transport records what the
protocol asks of it and its session records the messages it is handed, so each loop turn
can be inspected. (The e2e test in ``test_fairness_e2e.py`` runs all of it for real.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from baat.proto import WebSocketCodec
from baat.server.fairness import MESSAGES_PER_TURN
from baat.server.transport.guard import ConnectionGuard, TransportSettings
from baat.server.transport.ws import Hub, WebSocketProtocol


class Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.written: list[bytes] = []

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


class Session:
    """Records messages; holds its link when it sees b"greedy"."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.link: WebSocketProtocol | None = None

    def receive(self, data: bytes) -> tuple[Coroutine[Any, Any, None] | None, bool]:
        self.log.append(self.name)
        if data == b"greedy" and self.link is not None:
            self.link.hold_reading()
        return None, False

    def closed(self) -> None:
        pass


def _frames(payloads: list[bytes]) -> bytes:
    # Masked with a zero key, as a client must mask (RFC 6455 section 5.3).
    return b"".join(bytes((0x82, 0x80 | len(p))) + b"\0\0\0\0" + p for p in payloads)


def _conn(hub: Hub, name: str, log: list[str]) -> tuple[WebSocketProtocol, Transport, Session]:
    proto = WebSocketProtocol(hub, "127.0.0.1")
    transport = Transport()
    proto.transport = transport  # type: ignore[assignment]
    proto._codec = WebSocketCodec(65536)
    session = Session(name, log)
    session.link = proto
    proto.session = session  # type: ignore[assignment]
    return proto, transport, session


def _hub() -> Hub:
    settings = TransportSettings()
    return Hub(settings, ConnectionGuard(settings), lambda: None, 65536)


async def test_a_pipelining_connection_gets_one_quantum_per_turn() -> None:
    log: list[str] = []
    hub = _hub()
    big, big_t, _ = _conn(hub, "big", log)
    small, small_t, _ = _conn(hub, "small", log)
    big.data_received(_frames([b"m"] * 100))
    assert log == ["big"] * MESSAGES_PER_TURN and big_t.paused
    small.data_received(_frames([b"m"] * 3))  # the next socket callback of the same turn
    assert log[-3:] == ["small"] * 3 and not small_t.paused
    turns = 0
    while big_t.paused and turns < 50:
        await asyncio.sleep(0)
        turns += 1
    assert log.count("big") == 100
    assert turns >= 100 // MESSAGES_PER_TURN  # one quantum per turn, never all at once
    assert not big_t.paused  # backlog done: reading again


async def test_a_held_sender_handles_nothing_more_until_released() -> None:
    log: list[str] = []
    hub = _hub()
    conn, transport, _ = _conn(hub, "c", log)
    conn.data_received(_frames([b"m", b"greedy", b"m", b"m"]))
    assert log == ["c", "c"] and transport.paused  # held after the second
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["c", "c"] and transport.paused
    conn.release_reading()
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["c"] * 4 and not transport.paused
