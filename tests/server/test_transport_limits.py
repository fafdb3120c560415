"""Issue 14 items 1-3 on a real ``baat serve``: timeouts, connection caps, body limits.

Other clients use other loopback addresses (127.0.0.2, 127.0.0.3, ...): Linux routes all of
127.0.0.0/8 to the loopback interface, so each is a distinct client address to the server.
Every wait polls for a condition with a generous deadline (the machine may be loaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from baat.client.transport import Transport
from baat.proto import (
    Error,
    OutgoingEnvelope,
    Ping,
    Send,
    SendResult,
    decode_server,
    encode,
)
from support.devices import register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProcess]:
    """Short timeouts and small caps, so that each limit is reached quickly."""
    proc = ServerProcess(
        tmp_path / "server",
        None,
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--body-min-rate",
        "1000",
        "--auth-timeout",
        "1.5",
        "--max-connections-per-address",
        "8",
        "--max-json-body",
        "4096",
    ).start()
    try:
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()
        assert "Traceback" not in proc.log()


SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while SOCKETS:
        SOCKETS.pop().close()


def raw_socket(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    SOCKETS.append(s)
    s.bind((source, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    return s


def read_until_closed(s: socket.socket, limit: float = 30.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    start = time.monotonic()
    s.settimeout(limit)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def healthz(server: ServerProcess, source: str = "127.0.0.1") -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(server.url + "/healthz").status_code


# -- item 1: timeouts ----------------------------------------------------------------------


def test_slow_headers_are_cut_and_healthz_keeps_answering(limited: ServerProcess) -> None:
    silent = raw_socket(limited.port)
    partial = raw_socket(limited.port)
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert healthz(limited, "127.0.0.2") == 200
    for s in (silent, partial):
        data, took = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert b'"request_timeout"' in data
        assert took < 10
    assert "request headers from 127.0.0.1 too slow" in limited.log()


def test_oversized_headers_are_refused(limited: ServerProcess) -> None:
    s = raw_socket(limited.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 200_000 + b"\r\n\r\n")
    data, _ = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in data
    assert healthz(limited) == 200


def test_slow_body_is_cut(limited: ServerProcess) -> None:
    s = raw_socket(limited.port)
    s.sendall(
        b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 3000\r\n\r\n{"
    )
    data, took = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert took < 10


async def test_unauthenticated_websocket_is_closed_even_if_it_pings(
    limited: ServerProcess,
) -> None:
    url = limited.url.replace("http", "ws") + "/v1/ws"
    start = time.monotonic()
    frames: list[object] = []
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:

        async def keep_pinging() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:  # pings are allowed before Authenticate, but do not extend it
                    await ws.send(encode(Ping(1)))
                    await asyncio.sleep(0.3)

        pinger = asyncio.create_task(keep_pinging())
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in ws:
                assert isinstance(data, bytes)
                frames.append(decode_server(data))
        pinger.cancel()
        assert ws.close_code == 1008
    errors = [f for f in frames if isinstance(f, Error)]
    assert errors and errors[-1].code == "auth_timeout" and errors[-1].fatal
    assert time.monotonic() - start < 10


async def test_authenticated_connection_outlives_the_auth_timeout(limited: ServerProcess) -> None:
    alice = await register(limited.url, "alice")
    bob = await register(limited.url, "bob")
    t = await alice.connect(limited.url)
    await asyncio.sleep(3)  # twice the authentication limit
    await t.send(Send("m1", [OutgoingEnvelope(bob.account_id, 1, b"to myself")]))
    result = await asyncio.wait_for(_next(t, SendResult), 10)
    assert isinstance(result, SendResult)
    await t.close()


async def _next(t: Transport, kind: type) -> object:
    while True:
        frame = await t.incoming.get()
        assert frame is not None, t.close_reason
        if isinstance(frame, kind):
            return frame


# -- item 2: connection caps ---------------------------------------------------------------


async def test_per_address_cap_refuses_quickly_and_serves_others(limited: ServerProcess) -> None:
    alice = await register(limited.url, "alice")
    bob = await register(limited.url, "bob")
    held = [raw_socket(limited.port, "127.0.0.2") for _ in range(8)]
    # Wait until the server has counted all of them (connection_made runs on its loop).
    extra = raw_socket(limited.port, "127.0.0.2")
    data, took = read_until_closed(extra)
    assert data.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 5" in data.lower()
    assert b'"server_busy"' in data
    assert took < 5
    # Others are served: /healthz, registration, a device connection and a send.
    assert healthz(limited, "127.0.0.3") == 200
    t = await alice.connect(limited.url)
    await t.send(Send("m", [OutgoingEnvelope(bob.account_id, 1, b"hi")]))
    assert isinstance(await asyncio.wait_for(_next(t, SendResult), 10), SendResult)
    await t.close()
    for s in held:
        s.close()


def test_total_cap_keeps_a_reserve_for_healthz(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "server",
        None,
        "--max-connections",
        "24",
        "--connection-reserve",
        "6",
        "--max-connections-per-address",
        "0",
        "--header-timeout",
        "60",
    ).start()
    try:
        # 18 unauthenticated connections from many addresses fill the unreserved part.
        held = [raw_socket(server.port, f"127.0.1.{i + 1}") for i in range(18)]
        _wait_for_log(server, lambda: healthz(server, "127.0.2.1") == 200)
        # In the reserve: /healthz answers, anything else is refused at once.
        s = raw_socket(server.port, "127.0.2.2")
        s.sendall(b"GET /v1/policy HTTP/1.1\r\nHost: x\r\n\r\n")
        data, took = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 503 ") and b"retry-after" in data.lower()
        assert took < 5
        # Past the total: refused without reading anything.
        more = [raw_socket(server.port, f"127.0.3.{i + 1}") for i in range(6)]
        last = raw_socket(server.port, "127.0.4.1")
        data, took = read_until_closed(last)
        assert data.startswith(b"HTTP/1.1 503 ")
        for s in held + more:
            s.close()
        # Once the abuser leaves, everything is served again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with httpx.Client(timeout=10) as c:
                if c.get(server.url + "/v1/policy").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the server did not recover after the connections closed")
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def _wait_for_log(server: ServerProcess, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail("condition not reached")


# -- item 3: bodies ------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_bodies_are_refused_while_reading(limited: ServerProcess) -> None:
    assert limited.proc is not None
    before = _rss_kib(limited.proc.pid)
    # A declared 300 MB body: refused before a byte of it is read.
    s = raw_socket(limited.port)
    s.sendall(
        b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 300000000\r\n\r\n"
    )
    data, _ = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 413 ") and b'"body_too_large"' in data
    # A chunked body that never ends: refused once it crosses the limit.
    s = raw_socket(limited.port)
    s.sendall(
        b"POST /v1/devices HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    try:
        while sent < 50 * 1024 * 1024:
            s.sendall(chunk)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, _ = read_until_closed(s)
    assert data == b"" or data.startswith(b"HTTP/1.1 413 ")
    assert sent < 50 * 1024 * 1024  # the server stopped reading long before the end
    grown = _rss_kib(limited.proc.pid) - before
    assert grown < 20 * 1024, f"server grew by {grown} KiB"
    # A body within the limit still reaches the handler (which validates it).
    with httpx.Client(timeout=10) as c:
        r = c.post(limited.url + "/v1/accounts", json={"username": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] != "body_too_large"
