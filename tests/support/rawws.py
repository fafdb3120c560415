"""A bare RFC 6455 client on ``asyncio.Protocol`` for load tests with hundreds of sockets.

One object per connection, no task per message: each whole binary message from the server
goes to ``on_message``. Frames are masked with a zero key (still valid RFC 6455; the server
unmasks anyway). Servers here never fragment, so the parser does not reassemble.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.proto import (
    PROTOCOL_VERSION,
    Authenticate,
    Challenge,
    Error,
    QueueDrained,
    Ready,
    auth_message,
    decode_server,
    encode,
)


class RawClient(asyncio.Protocol):
    def __init__(self, port: int) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self._request = (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.on_message: Callable[[bytes], None] = self.inbox.put_nowait
        self.closed = False
        self._buf = b""
        self.early: list[bytes] = []  # messages received before QueueDrained

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during upgrade"))
        self.inbox.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        data = self._buf + data
        self._buf = b""
        if not self.upgraded.done():
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            if b" 101 " not in data[: data.find(b"\r\n")]:
                self.upgraded.set_exception(ConnectionError(data[:end].decode()))
                return
            self.upgraded.set_result(None)
            data = data[end + 4 :]
        pos, n = 0, len(data)
        while pos + 2 <= n:
            length, head = data[pos + 1] & 0x7F, 2
            if length == 126:
                if pos + 4 > n:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > n:
                break
            opcode = data[pos] & 0x0F
            if opcode == 2:
                self.on_message(data[pos + head : end])
            elif opcode == 9:
                self._frame(0x8A, data[pos + head : end])
            pos = end
        self._buf = data[pos:]

    def _frame(self, first: int, payload: bytes) -> bytes:
        n = len(payload)
        if n < 126:
            head = bytes((first, 0x80 | n))
        elif n < 65536:
            head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
        frame = head + b"\x00\x00\x00\x00" + payload
        if self.transport is not None and not self.closed:
            self.transport.write(frame)
        return frame

    def send(self, payload: bytes) -> None:
        self._frame(0x82, payload)

    def send_many(self, payloads: list[bytes]) -> None:
        """Several messages in one write, as a client that pipelines."""
        assert self.transport is not None
        frames = []
        for p in payloads:
            n = len(p)
            short = n < 126
            head = bytes((0x82, 0x80 | n if short else 0xFE)) + (
                b"" if short else n.to_bytes(2, "big")
            )
            frames.append(head + b"\x00\x00\x00\x00" + p)
        self.transport.write(b"".join(frames))

    async def recv(self, timeout: float) -> bytes:
        data = await asyncio.wait_for(self.inbox.get(), timeout)
        if data is None:
            raise ConnectionError("connection closed")
        return data

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


async def connect(
    port: int, account_id: str, device_id: int, key: Ed25519PrivateKey, timeout: float = 30
) -> RawClient:
    """Open, authenticate, and wait for ``QueueDrained`` (the device is then online); what
    the queue held is in ``client.early``."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: RawClient(port), "127.0.0.1", port)
    await asyncio.wait_for(client.upgraded, timeout)
    challenge = decode_server(await client.recv(timeout))
    assert isinstance(challenge, Challenge)
    sig = key.sign(auth_message(challenge.nonce, account_id, device_id))
    client.send(encode(Authenticate(PROTOCOL_VERSION, account_id, device_id, sig)))
    while True:
        data = await client.recv(timeout)
        frame = decode_server(data)
        if isinstance(frame, Error):
            raise ConnectionError(f"{frame.code}: {frame.message}")
        if isinstance(frame, QueueDrained):
            return client
        if not isinstance(frame, Ready):  # the queue's envelopes come before QueueDrained
            client.early.append(data)
