"""One device's WebSocket session: the frame handlers, without any socket code.

The transport (``baat.server.transport.ws``, an ``asyncio.Protocol``) owns the socket and
the RFC 6455 codec; it hands every whole binary message to ``Session.receive`` and writes
what the session pushes straight to the socket. Messages of one connection are handled one
at a time, in order: the transport holds the next ones (and stops reading) while a handler
waits for storage. Back-pressure comes from the socket (``pause_writing``), not a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    OutgoingEnvelope,
    Ping,
    Pong,
    PrekeyRecord,
    PrekeysLow,
    PrekeyStatus,
    RemoteProtocolError,
    SealedSend,
    Send,
    SendResult,
    ServerConnection,
    ServerFrame,
    TokenBucket,
    UploadPrekeys,
    auth_message,
    encode,
    error_frame,
    request_hint,
)
from baat.server.bundles import ONE_TIME_PREKEY_CAP, NoSuchDevice, claim_bundles
from baat.server.counters import COUNTS, bump
from baat.server.errors import SendRefused
from baat.server.regions.links import RegionRefused, RegionUnavailable
from baat.server.routed import DeviceKey
from baat.server.sealed_send import sealed_send
from baat.server.storage.base import Prekey, StorageUnavailable, TooManyPrekeys

if TYPE_CHECKING:
    from baat.server.state import ServerState

log = logging.getLogger("baat.session")

CURVE_KEY_BYTES = 32
KEM_KEY_BYTES = frozenset({1184, 1568})  # ML-KEM-768 and ML-KEM-1024 encapsulation keys
_SIGNED_KINDS = (PREKEY_KIND_CURVE_SIGNED, PREKEY_KIND_KEM_LAST_RESORT)
_ONE_TIME_KINDS = (PREKEY_KIND_CURVE_ONE_TIME, PREKEY_KIND_KEM_ONE_TIME)
# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_GOING_AWAY = 1001


class Link(Protocol):
    """What the session needs from its transport."""

    def write_message(self, data: bytes) -> None: ...

    async def wait_writable(self) -> None: ...

    def close(self, code: int) -> None: ...

    def authenticated(self) -> None: ...

    def hold_reading(self) -> None:
        """Stop reading this connection's frames (its sender is over its share)."""

    def release_reading(self) -> None:
        """Read again (the share allows it); frames held meanwhile were never read."""

    @property
    def peer(self) -> str: ...


class Session:
    """One connection's protocol state and handlers; the router's ``Outlet``."""

    __slots__ = ("_closed", "_sealed_bucket", "_tasks", "conn", "key", "link", "state")

    def __init__(self, link: Link, state: ServerState) -> None:
        self.link = link
        self.state = state
        self.conn = ServerConnection(os.urandom(32), time.monotonic(), state.config.limits)
        self.key: DeviceKey = ("", 0)
        self._closed = False
        self._tasks: set[asyncio.Task[object]] | None = None
        # The sealed-send rate of this connection (server/sealed.py), made on first use.
        self._sealed_bucket: TokenBucket | None = None

    # -- Outlet --------------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        if not self._closed:
            self.link.write_message(data)

    async def wait_writable(self) -> None:
        await self.link.wait_writable()

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

    def close_suspended(self) -> None:
        """The operator suspended the account: its devices stop at once."""
        self.push(
            encode(
                Error(
                    code=ErrorCode.ACCOUNT_SUSPENDED,
                    message="this account is suspended by the server's operator",
                    fatal=True,
                )
            )
        )
        self._close_soon()

    def close_superseded(self) -> None:
        """A newer connection of the same device took over."""
        self.push(encode(Error(code="superseded", message="another connection took over")))
        self._close_soon()

    # -- lifecycle (called by the transport) ---------------------------------------------

    def start(self) -> None:
        self.push(self.conn.challenge())

    def refuse(self, code: ErrorCode, message: str, close_code: int = CLOSE_POLICY) -> None:
        """A fatal error decided by the transport (text message, timeout, slow reader)."""
        log.info("%s refused: %s (%s)", self._who(), code, message)
        self.push(encode(Error(code=code, message=message, fatal=True)))
        self._close_soon(close_code)

    def closed(self) -> None:
        """The socket is gone: stop routing to this session."""
        if self._closed and self.conn.account_id is None:
            return
        self._closed = True
        if self.conn.account_id is not None:
            self.state.router.detach(self)
            self.conn.account_id = None
        for task in list(self._tasks or ()):
            task.cancel()

    def _close_soon(self, code: int = CLOSE_POLICY) -> None:
        # Whatever was pushed before (the error frame saying why) still goes out first.
        if not self._closed:
            self._closed = True
            self.link.close(code)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        if self._tasks is None:
            self._tasks = set()
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _who(self) -> str:
        if self.key[0]:
            return f"{self.key[0]}/{self.key[1]}"
        return f"unauthenticated {self.link.peer}"

    # -- frames --------------------------------------------------------------------------

    def receive(self, data: bytes) -> tuple[Coroutine[Any, Any, None] | None, bool]:
        """Handle one whole binary message.

        Returns ``(None, _)`` when it was handled at once (``Ack``, ``Ping``, a refused
        frame, and the hot path: a ``Send`` the router decides from memory), else the
        coroutine that handles it and whether that coroutine may be started outside a task:
        true only for a ``SealedSend`` whose checks are all cached, which then completes
        without touching storage.
        """
        if self._closed:
            return None, False
        try:
            frame = self.conn.receive(data, time.monotonic())
        except RemoteProtocolError as exc:
            # One line per refused frame; never a traceback for what a client sent.
            log.info("%s sent a refused frame: %s", self._who(), exc)
            bump(COUNTS.frames_refused, str(exc.code))
            request_id, message_id = request_hint(data)
            err = error_frame(exc, request_id)
            if message_id:
                err = msgspec.structs.replace(err, message_id=message_id)
            self.push(encode(err))
            if exc.fatal:
                code = CLOSE_TOO_BIG if exc.code == ErrorCode.FRAME_TOO_LARGE else CLOSE_POLICY
                self._close_soon(code)
            return None, False
        COUNTS.frames += 1
        if isinstance(frame, Ack):
            self.state.router.ack(self.key, frame.guids)
            return None, False
        if isinstance(frame, Ping):
            self.push(encode(Pong(nonce=frame.nonce)))
            return None, False
        if isinstance(frame, SealedSend):
            return self._on_sealed_send(frame), self._sealed_eager(frame)
        if isinstance(frame, Send) and self._send_now(frame):
            return None, False
        # What is left reads storage (a cold device list, a queue's size, another region,
        # authentication, bundles, prekeys): a task.
        return self._handle(frame), False

    async def _handle(self, frame: Send | Authenticate | FetchBundle | UploadPrekeys) -> None:
        try:
            if isinstance(frame, Send):
                await self._on_send(frame)
            elif isinstance(frame, Authenticate):
                await self._on_authenticate(frame)
            elif isinstance(frame, FetchBundle):
                await self._on_fetch_bundle(frame)
            elif isinstance(frame, UploadPrekeys):
                await self._on_upload(frame)
        except StorageUnavailable as exc:
            COUNTS.storage_errors += 1
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
        # All of the account's devices in the one read: the router keeps their ids, so a
        # send to this account while it is online never waits for the database (a cold
        # device list used to stall the first send of every pair: server/fairness.py).
        devices = await self.state.store.devices(frame.account_id)
        device = next((d for d in devices if d.device_id == frame.device_id), None)
        if device is not None:
            self.state.router.learn_devices(
                frame.account_id, frozenset(d.device_id for d in devices)
            )
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
        if self._closed:  # the socket went away while the device was looked up
            return
        if frame.account_id in self.state.router.suspended:
            self.close_suspended()
            return
        self.key = (frame.account_id, frame.device_id)
        self.push(self.conn.accept(frame.account_id, frame.device_id))
        self.link.authenticated()
        await self.state.touch(frame.account_id)
        if not self._closed:
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

    def _send_now(self, frame: Send) -> bool:
        """The hot path: a send the router can decide from memory, handled right here with
        no coroutine at all (``Router.try_accept_send``). False when it needs storage."""
        router = self.state.router
        try:
            if not router.try_accept_send(
                self.key, frame.message_id, frame.envelopes, self._send_result
            ):
                return False
        except SendRefused as exc:
            self._send_refused(frame, exc)
            return True
        self._check_share()
        return True

    async def _on_send(self, frame: Send) -> None:
        try:
            await self.state.router.accept_send(
                self.key, frame.message_id, frame.envelopes, self._send_result
            )
        except SendRefused as exc:
            self._send_refused(frame, exc)
            return
        self._check_share()

    def _check_share(self) -> None:
        shares = self.state.router.shares
        if shares.outstanding(self.key) > shares.share() and not shares.is_held(self.key):
            # Over its share of what the server holds: this sender waits, others do not
            # (server/fairness.py, item 2).
            self.link.hold_reading()
            shares.hold(self.key, self.link.release_reading)

    def _send_refused(self, frame: Send, exc: SendRefused) -> None:
        bump(COUNTS.sends_refused, str(exc.code))
        self._reply(
            Error(
                code=exc.code,
                message=f"{exc.message} (message {frame.message_id})",
                retry_after_ms=exc.retry_after_ms,
                message_id=frame.message_id,
            )
        )

    def _sealed_eager(self, frame: SealedSend) -> bool:
        """As for ``Send``: a sealed send checked from memory runs without a task."""
        gate, router = self.state.sealed, self.state.router
        return (
            gate is not None
            and self.state.regions is None
            and gate.cached(frame.recipient_account)
            and router.knows_devices(frame.recipient_account)
            and (
                router.quotas is None
                or router.quotas.answers_from_memory(
                    [
                        OutgoingEnvelope(frame.recipient_account, e.recipient_device, e.content)
                        for e in frame.envelopes
                    ],
                    router.online,
                )
            )
        )

    async def _on_sealed_send(self, frame: SealedSend) -> None:
        # Nothing here names this connection's account: a sealed send may come from a
        # connection that never authenticated, and one that did is not asked who it is.
        if self._sealed_bucket is None:
            self._sealed_bucket = TokenBucket(
                self.state.config.envelopes_per_second,
                self.state.config.envelope_burst,
                time.monotonic(),
            )

        def reply(code: ErrorCode, message: str, retry_after_ms: int) -> None:
            self._reply(
                Error(
                    code=code,
                    message=f"{message} (message {frame.message_id})",
                    retry_after_ms=retry_after_ms,
                    message_id=frame.message_id,
                )
            )

        try:
            await sealed_send(self.state, frame, self._sealed_bucket, reply, self._send_result)
        except StorageUnavailable as exc:
            reply(ErrorCode.STORAGE_UNAVAILABLE, f"storage unavailable, retry: {exc}", 1000)

    def _send_result(self, result: SendResult) -> None:
        table = COUNTS.send_results
        for one in result.results:
            table[one.status] = table.get(one.status, 0) + 1
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
                records = await claim_bundles(
                    self.state.store,
                    frame.account_id,
                    frame.device_id,
                    requester=self.key[0],
                    limiter=self.state.prekey_drain,
                    on_low=self._tell_low,
                )
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

    def _tell_low(self, account_id: str, device_id: int, counts: dict[int, int]) -> None:
        outlet = self.state.router.online.get((account_id, device_id))
        if outlet is not None:
            outlet.push(encode(PrekeysLow(counts=counts)))

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
        try:
            await self.state.store.store_prekeys(
                self.key[0], self.key[1], signed, one_time, cap=ONE_TIME_PREKEY_CAP
            )
        except TooManyPrekeys as exc:
            code = ErrorCode.TOO_MANY_PREKEYS
            self._reply(Error(code=code, message=str(exc), request_id=frame.request_id))
            return
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
