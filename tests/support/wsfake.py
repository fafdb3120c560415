"""A real ``WebSocketProtocol`` and codec over a transport that records what the protocol
asks of it, with a stand-in session: each loop turn of the socket path can be inspected
(``tests/server/test_ws_fairness.py``, ``tests/server/test_ws_writes.py``)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from baat.proto import WebSocketCodec
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
        self.key = (name, 1)
        self.link: WebSocketProtocol | None = None

    def receive(self, data: bytes) -> tuple[Coroutine[Any, Any, None] | None, bool]:
        self.log.append(self.name)
        if data == b"greedy" and self.link is not None:
            self.link.hold_reading()
        return None, False

    def closed(self) -> None:
        pass


def frames(payloads: list[bytes]) -> bytes:
    # Masked with a zero key, as a client must mask (RFC 6455 section 5.3).
    return b"".join(bytes((0x82, 0x80 | len(p))) + b"\0\0\0\0" + p for p in payloads)


def conn(hub: Hub, name: str, log: list[str]) -> tuple[WebSocketProtocol, Transport, Session]:
    proto = WebSocketProtocol(hub, "127.0.0.1")
    transport = Transport()
    proto.transport = transport  # type: ignore[assignment]
    proto._codec = WebSocketCodec(65536)
    session = Session(name, log)
    session.link = proto
    proto.session = session  # type: ignore[assignment]
    return proto, transport, session


def hub() -> Hub:
    settings = TransportSettings()
    return Hub(settings, ConnectionGuard(settings), lambda: None, 65536)
