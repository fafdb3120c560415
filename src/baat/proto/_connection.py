"""The connection state machines, client and server side, without any IO.

Feed each received WebSocket message to ``receive(data, now)`` and get back a frame (the
event); ask ``send(frame)`` for the bytes to write. Time is an argument, never read from a
clock, so rate limits are tested without sleeping (as aioquic takes ``now``).

Everything that affects the state lives in the two transition tables below.

Server side::

    AWAITING_AUTH --Authenticate--> AUTHENTICATING --accept()--> OPEN
          |                               |--reject()--> CLOSED
          |--SealedSend | Ping--> AWAITING_AUTH   (a sealed send names no sender)
          +--any other frame--> error UNAUTHENTICATED, CLOSED
    OPEN --Send | SealedSend | Ack | FetchBundle | UploadPrekeys | Ping--> OPEN
    OPEN --Authenticate--> error UNEXPECTED_FRAME, CLOSED

Client side::

    CONNECTING --Challenge--> CHALLENGED --authenticate()--> AUTHENTICATING --Ready--> OPEN
    CHALLENGED --SendResult | Error | Pong--> CHALLENGED   (anonymous: SealedSend only)
    AUTHENTICATING --Error(fatal)--> CLOSED
    OPEN --Deliver | QueueDrained | SendResult | BundleResult | PrekeyStatus | Pong
           | Error--> OPEN

The WebSocket layer below delivers whole messages, so a frame is never split or joined
here; a message that is not exactly one frame is malformed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from baat.proto._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from baat.proto._frames import (
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    BundleResult,
    Challenge,
    ClientFrame,
    Deliver,
    Error,
    FetchBundle,
    Ping,
    Pong,
    PrekeysLow,
    PrekeyStatus,
    QueueDrained,
    Ready,
    SealedSend,
    Send,
    SendResult,
    ServerFrame,
    UploadPrekeys,
    auth_message,
    decode_client,
    decode_server,
    encode,
    peek,
)


class State(enum.Enum):
    CONNECTING = "connecting"
    CHALLENGED = "challenged"
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits. Defaults suit a phone; the server may lower them."""

    max_frame_bytes: int = 256 * 1024
    max_envelope_bytes: int = 64 * 1024
    max_recipients: int = 1024
    max_ack_guids: int = 1024
    max_prekeys_per_upload: int = 200
    # Token bucket over frames: sustained rate and burst.
    frames_per_second: float = 2000.0
    frame_burst: float = 4000.0


class TokenBucket:
    """A token bucket on an injected clock."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0.0 on success or the seconds until they exist."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.rate


# (state, frame type) -> next state. A pair that is absent is a protocol violation.
_SERVER_TRANSITIONS: dict[tuple[State, type[ClientFrame]], State] = {
    (State.AWAITING_AUTH, Authenticate): State.AUTHENTICATING,
    (State.AWAITING_AUTH, Ping): State.AWAITING_AUTH,
    # A sealed send names no sender: it needs no authentication (docs/PROTOCOL.md).
    (State.AWAITING_AUTH, SealedSend): State.AWAITING_AUTH,
    (State.AUTHENTICATING, Ping): State.AUTHENTICATING,
    (State.OPEN, Send): State.OPEN,
    (State.OPEN, Ack): State.OPEN,
    (State.OPEN, FetchBundle): State.OPEN,
    (State.OPEN, UploadPrekeys): State.OPEN,
    (State.OPEN, Ping): State.OPEN,
    (State.OPEN, SealedSend): State.OPEN,
}

_CLIENT_TRANSITIONS: dict[tuple[State, type[ServerFrame]], State] = {
    (State.CONNECTING, Challenge): State.CHALLENGED,
    # An anonymous connection (sealed sends only) stays CHALLENGED.
    (State.CHALLENGED, SendResult): State.CHALLENGED,
    (State.CHALLENGED, Error): State.CHALLENGED,
    (State.CHALLENGED, Pong): State.CHALLENGED,
    (State.AUTHENTICATING, Ready): State.OPEN,
    (State.AUTHENTICATING, Pong): State.AUTHENTICATING,
    (State.OPEN, Deliver): State.OPEN,
    (State.OPEN, QueueDrained): State.OPEN,
    (State.OPEN, SendResult): State.OPEN,
    (State.OPEN, BundleResult): State.OPEN,
    (State.OPEN, PrekeyStatus): State.OPEN,
    (State.OPEN, PrekeysLow): State.OPEN,
    (State.OPEN, Pong): State.OPEN,
}


_CLIENT_TAGS = frozenset(
    t.__struct_config__.tag
    for t in (Authenticate, Send, Ack, FetchBundle, UploadPrekeys, Ping, SealedSend)
)


def _unknown_tag(data: bytes) -> bool:
    """True when ``data`` starts like a frame array whose tag no client frame uses (read
    from the first bytes only: the rest may be anything, nested arbitrarily deep)."""
    tag, _ = peek(data)
    return tag is not None and tag not in _CLIENT_TAGS


def request_hint(data: bytes) -> tuple[int, str]:
    """Best effort: the request id or message id of a refused frame, so that the peer can
    match the error to what it sent."""
    tag, second = peek(data)
    if (
        tag in (FetchBundle.__struct_config__.tag, UploadPrekeys.__struct_config__.tag)
        and isinstance(second, int)
        and 0 <= second < 2**63
    ):
        return second, ""
    if tag in (Send.__struct_config__.tag, SealedSend.__struct_config__.tag) and isinstance(
        second, str
    ):
        return 0, second[:64]
    return 0, ""


def error_frame(exc: RemoteProtocolError | LocalProtocolError, request_id: int = 0) -> Error:
    return Error(code=str(exc.code), message=exc.message, request_id=request_id, fatal=exc.fatal)


class ServerConnection:
    """The server's view of one device connection."""

    # One per connected device: slots keep an idle connection small (docs/PERFORMANCE.md).
    __slots__ = ("_bucket", "account_id", "device_id", "limits", "nonce", "state")

    def __init__(self, nonce: bytes, now: float, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.state = State.AWAITING_AUTH
        self.nonce = nonce
        self.account_id: str | None = None
        self.device_id: int | None = None
        self._bucket = TokenBucket(self.limits.frames_per_second, self.limits.frame_burst, now)

    def challenge(self) -> bytes:
        """The first frame the server sends."""
        return encode(Challenge(version=PROTOCOL_VERSION, nonce=self.nonce))

    def receive(self, data: bytes, now: float) -> ClientFrame:
        """Parse one received message and advance the state.

        Raises:
            RemoteProtocolError: malformed, oversized, rate-limited or out-of-order frame.
                When ``exc.fatal`` the state is CLOSED and the caller closes the socket.
        """
        if self.state is State.CLOSED:
            raise RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, "connection is closed")
        if len(data) > self.limits.max_frame_bytes:
            self._fail()
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"frame of {len(data)} bytes exceeds {self.limits.max_frame_bytes}",
            )
        wait = self._bucket.take(now)
        if wait:
            # Refuse this frame only; the connection stays usable.
            raise RemoteProtocolError(
                ErrorCode.RATE_LIMITED, f"too many frames; retry in {int(wait * 1000) + 1} ms"
            )
        try:
            frame = decode_client(data)
        except (msgspec.MsgspecError, ValueError) as exc:
            if _unknown_tag(data):
                # A newer peer's frame: refuse it alone so that old servers stay usable.
                raise RemoteProtocolError(ErrorCode.UNKNOWN_FRAME, str(exc)) from exc
            self._fail()
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, str(exc)) from exc
        next_state = _SERVER_TRANSITIONS.get((self.state, type(frame)))
        if next_state is None:
            code = (
                ErrorCode.UNAUTHENTICATED
                if self.state in (State.AWAITING_AUTH, State.AUTHENTICATING)
                else ErrorCode.UNEXPECTED_FRAME
            )
            self._fail()
            raise RemoteProtocolError(
                code, f"{type(frame).__name__} is not allowed in state {self.state.value}"
            )
        if isinstance(frame, Authenticate) and frame.version != PROTOCOL_VERSION:
            self._fail()
            raise RemoteProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {frame.version}; this server speaks {PROTOCOL_VERSION}",
            )
        self._check_sizes(frame)
        self.state = next_state
        return frame

    def _check_sizes(self, frame: ClientFrame) -> None:
        lim = self.limits
        # Non-fatal: only this request is refused.
        if isinstance(frame, Send | SealedSend):
            if not frame.envelopes or len(frame.envelopes) > lim.max_recipients:
                raise RemoteProtocolError(
                    ErrorCode.TOO_MANY_RECIPIENTS,
                    f"a send needs 1 to {lim.max_recipients} envelopes",
                )
            if not 0 < len(frame.message_id) <= 64:
                raise RemoteProtocolError(
                    ErrorCode.MALFORMED_FRAME, "message_id must be 1-64 chars"
                )
            for env in frame.envelopes:
                if len(env.content) > lim.max_envelope_bytes:
                    raise RemoteProtocolError(
                        ErrorCode.ENVELOPE_TOO_LARGE,
                        f"envelope of {len(env.content)} bytes exceeds {lim.max_envelope_bytes}",
                    )
        elif isinstance(frame, Ack) and len(frame.guids) > lim.max_ack_guids:
            raise RemoteProtocolError(
                ErrorCode.MALFORMED_FRAME, f"at most {lim.max_ack_guids} guids per Ack"
            )
        elif (
            isinstance(frame, UploadPrekeys)
            and len(frame.one_time) + len(frame.signed) > lim.max_prekeys_per_upload
        ):
            raise RemoteProtocolError(
                ErrorCode.INVALID_PREKEY,
                f"at most {lim.max_prekeys_per_upload} prekeys per upload",
            )

    def accept(self, account_id: str, device_id: int) -> bytes:
        """The handler verified the signature: open the connection.

        Raises:
            LocalProtocolError: no authentication is pending.
        """
        if self.state is not State.AUTHENTICATING:
            raise LocalProtocolError(ErrorCode.UNEXPECTED_FRAME, "no authentication pending")
        self.state = State.OPEN
        self.account_id, self.device_id = account_id, device_id
        return encode(Ready(account_id=account_id, device_id=device_id))

    def reject(self, message: str) -> bytes:
        """The signature or device was not valid: a fatal error frame."""
        self._fail()
        return encode(Error(code=ErrorCode.AUTH_FAILED, message=message, fatal=True))

    def send(self, frame: ServerFrame) -> bytes:
        """Encode a frame for this connection.

        Raises:
            LocalProtocolError: the frame may not be sent in this state.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError(ErrorCode.UNEXPECTED_FRAME, "connection is closed")
        if (
            self.state is not State.OPEN
            and not isinstance(frame, Error | Pong | Challenge)
            and not (self.state is State.AWAITING_AUTH and isinstance(frame, SendResult))
        ):
            raise LocalProtocolError(
                ErrorCode.UNAUTHENTICATED, f"cannot send {type(frame).__name__} before Ready"
            )
        return encode(frame)

    def _fail(self) -> None:
        self.state = State.CLOSED


class ClientConnection:
    """A device's view of its connection to the server."""

    def __init__(self) -> None:
        self.state = State.CONNECTING
        self.nonce: bytes | None = None

    def receive(self, data: bytes) -> ServerFrame:
        """Parse one message from the server.

        Raises:
            RemoteProtocolError: the server broke the protocol.
        """
        try:
            frame = decode_server(data)
        except (msgspec.MsgspecError, ValueError) as exc:
            self.state = State.CLOSED
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, str(exc)) from exc
        if isinstance(frame, Error):
            if frame.fatal:
                self.state = State.CLOSED
            return frame
        next_state = _CLIENT_TRANSITIONS.get((self.state, type(frame)))
        if next_state is None:
            self.state = State.CLOSED
            raise RemoteProtocolError(
                ErrorCode.UNEXPECTED_FRAME,
                f"server sent {type(frame).__name__} in state {self.state.value}",
            )
        if isinstance(frame, Challenge):
            if frame.version != PROTOCOL_VERSION:
                self.state = State.CLOSED
                raise RemoteProtocolError(
                    ErrorCode.UNSUPPORTED_VERSION, f"server speaks version {frame.version}"
                )
            self.nonce = frame.nonce
        self.state = next_state
        return frame

    def authenticate(
        self, account_id: str, device_id: int, sign: Callable[[bytes], bytes]
    ) -> bytes:
        """Answer the challenge with a signature made by ``sign``.

        Raises:
            LocalProtocolError: no challenge has arrived.
        """
        if self.state is not State.CHALLENGED or self.nonce is None:
            raise LocalProtocolError(ErrorCode.UNEXPECTED_FRAME, "no challenge to answer")
        signature = sign(auth_message(self.nonce, account_id, device_id))
        self.state = State.AUTHENTICATING
        return encode(
            Authenticate(
                version=PROTOCOL_VERSION,
                account_id=account_id,
                device_id=device_id,
                signature=signature,
            )
        )

    def send(self, frame: ClientFrame) -> bytes:
        """Encode a request frame.

        Raises:
            LocalProtocolError: not authenticated yet, or closed.
        """
        anonymous = self.state is State.CHALLENGED and isinstance(frame, SealedSend)
        if self.state is not State.OPEN and not isinstance(frame, Ping) and not anonymous:
            raise LocalProtocolError(
                ErrorCode.UNAUTHENTICATED, f"cannot send {type(frame).__name__} in {self.state}"
            )
        return encode(frame)
