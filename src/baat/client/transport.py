"""The client's socket adapter: a WebSocket to the server driving ``proto.ClientConnection``.

The only client code that touches a socket. Frames received after ``Ready`` are handed to
the caller through an asyncio queue; requests with ids are matched to their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import TypeVar

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection as WsConnection

from baat.proto import (
    BundleResult,
    ClientConnection,
    ClientFrame,
    Error,
    FetchBundle,
    PrekeyStatus,
    Ready,
    ServerFrame,
    UploadPrekeys,
)

T = TypeVar("T", bound=ServerFrame)


class TransportError(Exception):
    """The connection failed or the server refused it; ``code`` is the server's, if any."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def ws_url(server_url: str) -> str:
    """``http://host:port`` -> ``ws://host:port/v1/ws``."""
    base = server_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/v1/ws"


class Transport:
    """An authenticated connection to a Baat server."""

    def __init__(self, ws: WsConnection, conn: ClientConnection) -> None:
        self.ws = ws
        self.conn = conn
        self.incoming: asyncio.Queue[ServerFrame | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[ServerFrame]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    @classmethod
    async def connect(
        cls,
        server_url: str,
        account_id: str,
        device_id: int,
        sign: Callable[[bytes], bytes],
        *,
        timeout: float = 10.0,
    ) -> Transport:
        """Connect and authenticate.

        Raises:
            TransportError: unreachable server, refused authentication, protocol error.
        """
        try:
            ws = await asyncio.wait_for(
                websockets.connect(
                    # Ciphertext does not compress; deflate would only cost memory and CPU.
                    ws_url(server_url),
                    max_size=4 * 1024 * 1024,
                    compression=None,
                ),
                timeout,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise TransportError(f"cannot reach {server_url}: {exc}", "unreachable") from exc
        conn = ClientConnection()
        try:
            conn.receive(await asyncio.wait_for(ws.recv(decode=False), timeout))
            await ws.send(conn.authenticate(account_id, device_id, sign))
            frame = conn.receive(await asyncio.wait_for(ws.recv(decode=False), timeout))
        except (websockets.ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise TransportError(f"connection lost during authentication: {exc}") from exc
        if isinstance(frame, Error):
            await ws.close()
            raise TransportError(frame.message, frame.code)
        if not isinstance(frame, Ready):  # pragma: no cover - the state machine forbids it
            await ws.close()
            raise TransportError(f"unexpected {type(frame).__name__}")
        transport = cls(ws, conn)
        transport._reader = asyncio.create_task(transport._read_loop())
        return transport

    @classmethod
    async def connect_anonymous(cls, server_url: str, *, timeout: float = 10.0) -> Transport:
        """Connect without authenticating: only ``SealedSend`` (and ``Ping``) may be sent,
        so the server cannot tell which device sends (docs/PROTOCOL.md, "Sealed sender").
        The server closes such a connection after its authentication deadline.

        Raises:
            TransportError: unreachable server or protocol error.
        """
        try:
            ws = await asyncio.wait_for(
                websockets.connect(ws_url(server_url), max_size=4 * 1024 * 1024, compression=None),
                timeout,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise TransportError(f"cannot reach {server_url}: {exc}", "unreachable") from exc
        conn = ClientConnection()
        try:
            conn.receive(await asyncio.wait_for(ws.recv(decode=False), timeout))
        except (websockets.ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise TransportError(f"connection lost before the challenge: {exc}") from exc
        transport = cls(ws, conn)
        transport._reader = asyncio.create_task(transport._read_loop())
        return transport

    async def _read_loop(self) -> None:
        try:
            async for data in self.ws:
                if isinstance(data, str):
                    continue
                frame = self.conn.receive(data)
                request_id = getattr(frame, "request_id", 0)
                fut = self._pending.pop(request_id, None) if request_id else None
                if fut is not None and not fut.done():
                    fut.set_result(frame)
                else:
                    self.incoming.put_nowait(frame)
        except websockets.ConnectionClosed as exc:
            self.close_reason = str(exc)
        except Exception as exc:
            self.close_reason = f"{type(exc).__name__}: {exc}"
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(TransportError(f"connection closed: {self.close_reason}"))
            self._pending.clear()
            self.incoming.put_nowait(None)

    async def send(self, frame: ClientFrame) -> None:
        """Send a frame.

        Raises:
            TransportError: the connection is closed.
        """
        try:
            await self.ws.send(self.conn.send(frame))
        except websockets.ConnectionClosed as exc:
            raise TransportError(f"connection closed: {exc}") from exc

    async def send_raw(self, data: bytes) -> None:
        """Send bytes that bypass the state machine (tests of the server's defences)."""
        await self.ws.send(data)

    async def request(
        self, frame: FetchBundle | UploadPrekeys, timeout: float = 10.0
    ) -> ServerFrame:
        """Send a request and wait for the frame answering its ``request_id``.

        Raises:
            TransportError: closed, or no answer within ``timeout``.
        """
        if self.closed.is_set():
            raise TransportError(f"connection closed: {self.close_reason}")
        request_id = next(self._ids)
        frame = msgspec.structs.replace(frame, request_id=request_id)
        fut: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            await self.send(frame)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise TransportError("the server did not answer in time") from exc
        finally:
            # Nobody waits for it any more: a later close must not fail it unretrieved.
            self._pending.pop(request_id, None)

    async def fetch_bundle(self, account_id: str, device_id: int = 0) -> BundleResult:
        """Raises: TransportError with the server's code (e.g. unknown_account)."""
        return _expect(await self.request(FetchBundle(0, account_id, device_id)), BundleResult)

    async def upload_prekeys(self, frame: UploadPrekeys) -> PrekeyStatus:
        """Raises: TransportError with the server's code (e.g. invalid_prekey)."""
        return _expect(await self.request(frame), PrekeyStatus)

    async def next_frame(self, timeout: float | None = None) -> ServerFrame | None:
        """The next pushed frame, or None once the connection has closed."""
        if timeout is None:
            return await self.incoming.get()
        try:
            return await asyncio.wait_for(self.incoming.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


def _expect(frame: ServerFrame, kind: type[T]) -> T:
    if isinstance(frame, Error):
        raise TransportError(frame.message, frame.code)
    if not isinstance(frame, kind):
        raise TransportError(f"expected {kind.__name__}, got {type(frame).__name__}")
    return frame
