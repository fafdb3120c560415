"""The server's own WebSocket codec against independent clients: ``websockets``,
``wsproto`` (over a plain socket) and ``aiohttp``; Chromium is in tests/e2e/test_web_ws.py.

Each client authenticates as a real device, sends a fragmented message where it can, pings
at the WebSocket level, and closes with its own code, which the server must echo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
import websockets
import wsproto
import wsproto.connection
import wsproto.events as wse

from baat.proto import (
    Authenticate,
    Challenge,
    Error,
    OutgoingEnvelope,
    Ready,
    Send,
    SendResult,
    auth_message,
    decode_server,
    encode,
)
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def authenticate(device: DeviceUnderTest, challenge: bytes) -> bytes:
    frame = decode_server(challenge)
    assert isinstance(frame, Challenge)
    sig = device.sign(auth_message(frame.nonce, device.account_id, device.device_id))
    return encode(Authenticate(1, device.account_id, device.device_id, sig))


def a_send(to: DeviceUnderTest, mid: str) -> bytes:
    return encode(Send(mid, [OutgoingEnvelope(to.account_id, to.device_id, b"x" * 3000)]))


async def until(recv: Callable[[], object], kind: type) -> object:
    while True:
        frame = decode_server(await recv())  # type: ignore[misc]
        assert not isinstance(frame, Error), frame
        if isinstance(frame, kind):
            return frame


async def test_websockets_client(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    url = server.url.replace("http", "ws") + "/v1/ws"
    async with websockets.connect(url, compression=None) as ws:
        # The server declines permessage-deflate even when it is offered.
        assert ws.protocol.extensions == []
        await ws.send(authenticate(alice, await ws.recv()))  # type: ignore[arg-type]
        assert isinstance(await until(ws.recv, Ready), Ready)
        data = a_send(bob, "frag")
        await ws.send([data[:10], data[10:2000], data[2000:]])  # one message, three frames
        result = await until(ws.recv, SendResult)
        assert isinstance(result, SendResult) and result.message_id == "frag"
        latency = await asyncio.wait_for(await ws.ping(b"hello"), 10)
        assert latency >= 0
        await ws.close(4001, "bye")
        assert ws.close_code == 4001


async def test_websockets_client_offering_deflate_gets_none(server: ServerProcess) -> None:
    url = server.url.replace("http", "ws") + "/v1/ws"
    async with websockets.connect(url) as ws:  # offers permessage-deflate by default
        assert ws.protocol.extensions == []
        assert isinstance(decode_server(await ws.recv()), Challenge)  # type: ignore[arg-type]


async def test_wsproto_client(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    messages: asyncio.Queue[bytes] = asyncio.Queue()
    pongs: asyncio.Queue[bytes] = asyncio.Queue()
    closed: asyncio.Queue[int] = asyncio.Queue()
    buffer = bytearray()

    async def pump() -> None:
        while data := await reader.read(65536):
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, wse.BytesMessage):
                    buffer.extend(event.data)
                    if event.message_finished:
                        messages.put_nowait(bytes(buffer))
                        buffer.clear()
                elif isinstance(event, wse.Pong):
                    pongs.put_nowait(bytes(event.payload))
                elif isinstance(event, wse.CloseConnection):
                    closed.put_nowait(event.code)
                    if conn.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                        writer.write(conn.send(event.response()))
                elif isinstance(event, wse.AcceptConnection):
                    assert event.extensions == []
        conn.receive_data(None)

    writer.write(conn.send(wse.Request(host="127.0.0.1", target="/v1/ws")))
    task = asyncio.create_task(pump())
    try:
        writer.write(conn.send(wse.Message(authenticate(alice, await messages.get()))))
        assert isinstance(await until(messages.get, Ready), Ready)
        data = a_send(bob, "wsproto")
        for i in range(0, len(data), 700):  # a message in many fragments
            part = data[i : i + 700]
            writer.write(conn.send(wse.Message(part, message_finished=i + 700 >= len(data))))
            writer.write(conn.send(wse.Ping(b"between")))  # a control frame in between
        result = await until(messages.get, SendResult)
        assert isinstance(result, SendResult) and result.message_id == "wsproto"
        assert await asyncio.wait_for(pongs.get(), 10) == b"between"
        writer.write(conn.send(wse.CloseConnection(code=4002, reason="done")))
        assert await asyncio.wait_for(closed.get(), 10) == 4002
        await asyncio.wait_for(task, 10)  # the server closes the TCP connection
    finally:
        task.cancel()
        writer.close()


async def test_aiohttp_client(server: ServerProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/v1/ws", autoping=False, compress=0) as ws,
    ):
        await ws.send_bytes(authenticate(alice, await ws.receive_bytes()))
        assert isinstance(await until(ws.receive_bytes, Ready), Ready)
        await ws.send_bytes(a_send(bob, "aio"))
        result = await until(ws.receive_bytes, SendResult)
        assert isinstance(result, SendResult) and result.message_id == "aio"
        await ws.ping(b"aio-ping")
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"aio-ping"
        await ws.close(code=4003, message=b"later")
        assert ws.close_code == 4003


async def test_text_and_protocol_errors_have_close_codes(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "/v1/ws", autoping=False) as ws:
            await ws.receive_bytes()
            await ws.send_str("text is not part of the protocol")
            frame = decode_server(await ws.receive_bytes())
            assert isinstance(frame, Error) and frame.code == "malformed_frame"
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
        # A frame with a reserved bit set: close code 1002 (RFC 6455 section 5.2).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        writer.write(conn.send(wse.Request(host="127.0.0.1", target="/v1/ws")))
        data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert data.startswith(b"HTTP/1.1 101 ")  # RFC 6455 4.1: data only after the 101
        writer.write(b"\xc2\x81abcd\x00")  # FIN + RSV1, binary, masked, 1 byte
        data = b""
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            data += chunk
        writer.close()
        assert b"\x88" in data and b"\x03\xea" in data  # a Close frame with code 1002
    assert "Traceback" not in server.log()


async def test_unknown_path_and_bad_version_are_refused(server: ServerProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(server.url.replace("http", "ws") + "/elsewhere"):
            pass
    assert info.value.response.status_code == 404
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
    data = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert data.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13" in data
