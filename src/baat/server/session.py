"""One device's WebSocket session: the only code that touches the socket.

Bytes from the socket go to ``proto.ServerConnection``; the frames it returns go to the
handlers below; everything written goes through one queue drained by one task, so a slow
reader costs memory up to ``MAX_QUEUED`` frames and then back-pressure on the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.types import Receive as AsgiReceive
from starlette.types import Send as AsgiSend

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    verify_prekey_signature,
)
from baat.crypto import InvalidSignature as InvalidPrekeySignature
from baat.proto import (
    Ack,
    Authenticate,
    BundleResult,
    Error,
    ErrorCode,
    FetchBundle,
    LocalProtocolError,
    Ping,
    Pong,
    PrekeyRecord,
    PrekeyStatus,
    RemoteProtocolError,
    Send,
    SendResult,
    ServerConnection,
    ServerFrame,
    UploadPrekeys,
    auth_message,
    encode,
    error_frame,
    request_hint,
)
from baat.server.bundles import NoSuchDevice, claim_bundles
from baat.server.delivery import DeviceKey, SendRefused
from baat.server.regions.links import RegionRefused, RegionUnavailable
from baat.server.storage.base import Prekey, StorageUnavailable

if TYPE_CHECKING:
    from baat.server.app import ServerState

log = logging.getLogger("baat.session")

MAX_QUEUED = 1024
CURVE_KEY_BYTES = 32
KEM_KEY_BYTES = frozenset({1184, 1568})  # ML-KEM-768 and ML-KEM-1024 encapsulation keys
_SIGNED_KINDS = (PREKEY_KIND_CURVE_SIGNED, PREKEY_KIND_KEM_LAST_RESORT)
_ONE_TIME_KINDS = (PREKEY_KIND_CURVE_ONE_TIME, PREKEY_KIND_KEM_ONE_TIME)
# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_GOING_AWAY = 1001


class Session:
    """Speaks ASGI's WebSocket messages directly (no framework wrapper on the hot path:
    bench/route.py measured the wrapper and a queue per frame as a large share of the
    server's time per envelope)."""

    def __init__(self, receive: AsgiReceive, send: AsgiSend, state: ServerState) -> None:
        self._asgi_receive = receive
        self._asgi_send = send
        self.state = state
        self.conn = ServerConnection(os.urandom(32), time.monotonic(), state.config.limits)
        self.key: DeviceKey = ("", 0)
        self._out: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._tasks: set[asyncio.Task[object]] = set()

    # -- Outlet --------------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        if self._closed:
            return
        self._out.append(data)
        self._wake.set()
        if len(self._out) >= MAX_QUEUED:
            self._writable.clear()

    async def wait_writable(self) -> None:
        await self._writable.wait()

    def close_removed(self) -> None:
        """The device was removed from its account: it stops receiving at once."""
        self.push(
            encode(
                Error(
                    code=ErrorCode.DEVICE_REMOVED,
                    message="this device was removed from its account",
                    fatal=True,
                )
            )
        )
        self._close_soon()

    def close_superseded(self) -> None:
        """A newer connection of the same device took over."""
        self.push(encode(Error(code="superseded", message="another connection took over")))
        self._close_soon()

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        first = await self._asgi_receive()
        if first["type"] != "websocket.connect":
            return
        await self._asgi_send({"type": "websocket.accept"})
        writer = asyncio.create_task(self._write_loop())
        self.push(self.conn.challenge())
        try:
            while not self._closed:
                message = await self._asgi_receive()
                if message["type"] != "websocket.receive":
                    break  # websocket.disconnect
                data = message.get("bytes")
                if data is None:
                    self.push(
                        encode(
                            Error(
                                code=ErrorCode.MALFORMED_FRAME,
                                message="text messages are not part of this protocol",
                                fatal=True,
                            )
                        )
                    )
                    self._close_soon(CLOSE_POLICY)
                    break
                await self._receive(data)
        except Exception:
            log.exception("session of %s/%s failed", *self.key)
            raise
        finally:
            log.debug("session of %s/%s ended (close code %s)", *self.key, self._close_code)
            self._closed = True
            if self.conn.account_id is not None:
                self.state.router.detach(self)
            self._wake.set()
            with contextlib.suppress(Exception):
                await writer
            for task in list(self._tasks):
                task.cancel()

    async def _write_loop(self) -> None:
        out = self._out
        send = self._asgi_send
        try:
            while True:
                while out:
                    await send({"type": "websocket.send", "bytes": out.popleft()})
                    if len(out) < MAX_QUEUED // 2:
                        self._writable.set()
                if self._closed:
                    break
                self._wake.clear()
                await self._wake.wait()
        except Exception as exc:  # the peer went away mid-write
            log.debug("write to %s/%s failed: %r", *self.key, exc)
            self._closed = True
        finally:
            self._writable.set()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": self._close_code or 1000})

    _close_code: int | None = None

    def _close_soon(self, code: int = CLOSE_POLICY) -> None:
        # Whatever was pushed before (the error frame saying why) still goes out first.
        self._close_code = code
        self._closed = True
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- frames --------------------------------------------------------------------------

    async def _receive(self, data: bytes) -> None:
        try:
            frame = self.conn.receive(data, time.monotonic())
        except RemoteProtocolError as exc:
            request_id, message_id = request_hint(data)
            err = error_frame(exc, request_id)
            if message_id:
                err = msgspec.structs.replace(err, message_id=message_id)
            self.push(encode(err))
            if exc.fatal:
                code = CLOSE_TOO_BIG if exc.code == ErrorCode.FRAME_TOO_LARGE else CLOSE_POLICY
                self._close_soon(code)
            return
        try:
            if isinstance(frame, Send):
                await self._on_send(frame)
            elif isinstance(frame, Ack):
                self.state.router.ack(self.key, frame.guids)
            elif isinstance(frame, Ping):
                self.push(encode(Pong(nonce=frame.nonce)))
            elif isinstance(frame, Authenticate):
                await self._on_authenticate(frame)
            elif isinstance(frame, FetchBundle):
                await self._on_fetch_bundle(frame)
            elif isinstance(frame, UploadPrekeys):
                await self._on_upload(frame)
        except StorageUnavailable as exc:
            self._reply(
                Error(
                    code=ErrorCode.STORAGE_UNAVAILABLE,
                    message=f"storage unavailable, retry: {exc}",
                    request_id=getattr(frame, "request_id", 0),
                    retry_after_ms=1000,
                    message_id=getattr(frame, "message_id", ""),
                )
            )

    def _reply(self, frame: ServerFrame) -> None:
        with contextlib.suppress(LocalProtocolError):  # closed meanwhile
            self.push(self.conn.send(frame))

    async def _on_authenticate(self, frame: Authenticate) -> None:
        device = await self.state.store.device(frame.account_id, frame.device_id)
        if device is None:
            self.push(self.conn.reject("unknown account or device"))
            self._close_soon()
            return
        try:
            Ed25519PublicKey.from_public_bytes(device.identity_key).verify(
                frame.signature, auth_message(self.conn.nonce, frame.account_id, frame.device_id)
            )
        except (InvalidSignature, ValueError):
            self.push(self.conn.reject("signature does not verify"))
            self._close_soon()
            return
        self.key = (frame.account_id, frame.device_id)
        self.push(self.conn.accept(frame.account_id, frame.device_id))
        await self.state.touch(frame.account_id)
        self._spawn(self._attach())

    async def _attach(self) -> None:
        try:
            await self.state.router.attach(self)
        except StorageUnavailable as exc:
            log.warning("could not drain the queue of %s/%s: %s", *self.key, exc)
            self._reply(
                Error(
                    code=ErrorCode.STORAGE_UNAVAILABLE,
                    message=f"could not read the queue: {exc}; reconnect to retry",
                    fatal=True,
                )
            )
            self._close_soon(CLOSE_GOING_AWAY)

    async def _on_send(self, frame: Send) -> None:
        try:
            await self.state.router.accept_send(
                self.key, frame.message_id, frame.envelopes, self._send_result
            )
        except SendRefused as exc:
            self._reply(
                Error(
                    code=exc.code,
                    message=f"{exc.message} (message {frame.message_id})",
                    retry_after_ms=exc.retry_after_ms,
                    message_id=frame.message_id,
                )
            )

    def _send_result(self, result: SendResult) -> None:
        if not self._closed:
            self._reply(result)

    async def _on_fetch_bundle(self, frame: FetchBundle) -> None:
        regions = self.state.regions
        home = regions.home(frame.account_id) if regions is not None else None
        try:
            if regions is not None and home is not None:
                # Stored in another region: claimed there, through its transfer gate.
                records = await regions.fetch_bundle(home, frame.account_id, frame.device_id)
            else:
                records = await claim_bundles(self.state.store, frame.account_id, frame.device_id)
        except (NoSuchDevice, RegionRefused) as exc:
            self._reply(Error(code=exc.code, message=exc.message, request_id=frame.request_id))
            return
        except RegionUnavailable as exc:
            self._reply(
                Error(
                    code=ErrorCode.REGION_UNAVAILABLE,
                    message=str(exc),
                    request_id=frame.request_id,
                    retry_after_ms=1000,
                )
            )
            return
        self._reply(
            BundleResult(request_id=frame.request_id, account_id=frame.account_id, devices=records)
        )

    async def _on_upload(self, frame: UploadPrekeys) -> None:
        device = await self.state.store.device(*self.key)
        if device is None:  # deleted while connected
            self._reply(Error(code=ErrorCode.UNKNOWN_DEVICE, message="device no longer exists"))
            self._close_soon()
            return
        try:
            signed = [_check_prekey(device.identity_key, k, _SIGNED_KINDS) for k in frame.signed]
            one_time = [
                _check_prekey(device.identity_key, k, _ONE_TIME_KINDS) for k in frame.one_time
            ]
        except ValueError as exc:
            self._reply(
                Error(code=ErrorCode.INVALID_PREKEY, message=str(exc), request_id=frame.request_id)
            )
            return
        await self.state.store.store_prekeys(self.key[0], self.key[1], signed, one_time)
        counts = await self.state.store.prekey_counts(*self.key)
        self._reply(PrekeyStatus(request_id=frame.request_id, counts=counts))


def _check_prekey(identity_key: bytes, rec: PrekeyRecord, kinds: tuple[int, ...]) -> Prekey:
    """Refuse prekeys of the wrong kind, size or signature before they reach storage."""
    if rec.kind not in kinds:
        raise ValueError(f"prekey kind {rec.kind} not allowed here")
    curve = rec.kind in (PREKEY_KIND_CURVE_SIGNED, PREKEY_KIND_CURVE_ONE_TIME)
    if curve and len(rec.public_key) != CURVE_KEY_BYTES:
        raise ValueError(f"curve prekey {rec.key_id} must be 32 bytes")
    if not curve and len(rec.public_key) not in KEM_KEY_BYTES:
        raise ValueError(f"KEM prekey {rec.key_id} has an unsupported size")
    # X3DH/PQXDH leave one-time curve prekeys unsigned (PQXDH section 2.5); all others
    # must carry the identity key's signature.
    if rec.kind != PREKEY_KIND_CURVE_ONE_TIME or rec.signature:
        try:
            verify_prekey_signature(
                identity_key, rec.kind, rec.key_id, rec.public_key, rec.signature
            )
        except InvalidPrekeySignature as exc:
            raise ValueError(f"prekey {rec.key_id} (kind {rec.kind}): {exc}") from exc
    return Prekey(rec.kind, rec.key_id, rec.public_key, rec.signature)
