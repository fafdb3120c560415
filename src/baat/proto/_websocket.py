"""RFC 6455 WebSocket framing and the server's opening handshake, sans-IO.

The server feeds every received chunk to ``WebSocketCodec.receive(data)`` and gets back
whole events: a ``Message`` (binary or text, reassembled from fragments), a ``PingEvent``,
a ``PongEvent`` or a ``CloseEvent``. It asks the codec for the bytes of what it sends
(``binary``, ``pong``, ``ping``, ``close``). No socket, no clock, no task: the asyncio
adapter (``baat.server.transport``) calls it from ``data_received``.

Deliberately small (docs/ARCHITECTURE.md, "The socket path"):

- no extension is ever negotiated, so the three RSV bits must be zero (RFC 6455 section
  5.2) and permessage-deflate (RFC 7692) is declined by omission: envelopes are ciphertext
  and do not compress, and a deflate context costs tens of KiB per connection;
- no subprotocol is selected;
- an idle connection holds no buffer (``b""``) and a handful of slots.

Errors are ``WebSocketError`` with the close code the peer is sent (section 7.4.1):
1002 protocol error, 1007 invalid UTF-8, 1009 message too big.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

try:  # the websockets package's C routine: ~20x faster than the pure version below
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - websockets is a dependency; keep working without it
    _c_apply_mask = None  # type: ignore[assignment]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPS = frozenset({OP_TEXT, OP_BINARY})
_CONTROL_OPS = frozenset({OP_CLOSE, OP_PING, OP_PONG})

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005  # never sent on the wire (section 7.4.1)
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013

# Section 7.4.1 and the IANA registry: the codes a peer may put in a Close frame.
_VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # section 1.3
MAX_CONTROL_PAYLOAD = 125  # section 5.5


class WebSocketError(Exception):
    """The peer broke RFC 6455; ``close_code`` is what to send it before closing."""

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.message = message


@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    text: bool


@dataclass(frozen=True, slots=True)
class PingEvent:
    payload: bytes


@dataclass(frozen=True, slots=True)
class PongEvent:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseEvent:
    code: int  # CLOSE_NO_STATUS when the frame carried none
    reason: str


Event = Message | PingEvent | PongEvent | CloseEvent


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (section 5.3)."""
    if _c_apply_mask is not None:
        return bytes(_c_apply_mask(data, mask))
    n = len(data)
    if not n:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


class WebSocketCodec:
    """One side of a WebSocket connection after the handshake.

    ``client=False`` (the server) requires every received frame to be masked and sends
    unmasked frames; ``client=True`` does the opposite (section 5.1) and exists for tests
    and tools. ``max_message`` bounds a message after reassembly of its fragments.
    """

    __slots__ = (
        "_buf",
        "_client",
        "_frag_op",
        "_frags",
        "_size",
        "close_received",
        "close_sent",
        "max_message",
    )

    def __init__(self, max_message: int, *, client: bool = False) -> None:
        self.max_message = max_message
        self._client = client
        self._buf: bytes | bytearray = b""
        self._frag_op = 0  # opcode of the message being reassembled; 0 when none
        self._frags: list[bytes] | None = None
        self._size = 0
        self.close_received = False
        self.close_sent = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole frame or message."""
        return len(self._buf) + self._size

    # -- receiving ------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Parse ``data`` (any split of the byte stream) into whole events.

        Raises:
            WebSocketError: the peer broke the protocol; send ``close(exc.close_code)``.
        """
        if self.close_received:
            return []  # section 5.5.1: nothing after a Close frame is processed
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b0 & 0x70:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved bits set, no extension")
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            if bool(masked) == self._client:
                side = "unmasked" if not self._client else "masked"
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"{side} frames are not allowed")
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if end - head < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, head)
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, head)
                if length >> 63:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "payload length has its top bit set")
                head += 8
            control = opcode in _CONTROL_OPS
            if control:
                if not b0 & 0x80:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
            elif opcode not in _DATA_OPS and opcode != OP_CONTINUATION:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            elif self._size + length > self.max_message:
                # Refused from the header alone: nothing of it is buffered.
                raise WebSocketError(CLOSE_TOO_BIG, f"message over {self.max_message} bytes")
            mask_at = head
            if masked:
                head += 4
            if end - head < length:
                break
            payload: bytes
            if masked:
                payload = apply_mask(
                    memoryview(buf)[head : head + length], bytes(buf[mask_at : mask_at + 4])
                )
            else:
                payload = bytes(buf[head : head + length])
            pos = head + length
            if control:
                event = self._control(opcode, payload)
                events.append(event)
                if isinstance(event, CloseEvent):
                    self._buf = b""
                    return events
            else:
                message = self._data(opcode, bool(b0 & 0x80), payload)
                if message is not None:
                    events.append(message)
        # Keep only the unparsed tail; an idle connection holds no buffer at all.
        self._buf = bytes(buf[pos:]) if pos < end else b""
        return events

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == OP_PING:
            return PingEvent(payload)
        if opcode == OP_PONG:
            return PongEvent(payload)
        self.close_received = True
        if not payload:
            return CloseEvent(CLOSE_NO_STATUS, "")
        if len(payload) == 1:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        (code,) = struct.unpack_from("!H", payload)
        if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            raise WebSocketError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
        return CloseEvent(code, reason)

    def _data(self, opcode: int, fin: bool, payload: bytes) -> Message | None:
        if opcode == OP_CONTINUATION:
            if self._frags is None:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            self._frags.append(payload)
            self._size += len(payload)
            if not fin:
                return None
            data = b"".join(self._frags)
            opcode = self._frag_op
            self._frags, self._frag_op, self._size = None, 0, 0
        elif self._frags is not None:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        elif not fin:
            self._frags, self._frag_op, self._size = [payload], opcode, len(payload)
            return None
        else:
            data = payload
        if opcode == OP_TEXT:
            try:
                data.decode()
            except UnicodeDecodeError:
                raise WebSocketError(CLOSE_INVALID_DATA, "text message is not UTF-8") from None
            return Message(data, True)
        return Message(data, False)

    # -- sending --------------------------------------------------------------------------

    def frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
        """One frame; masked with a random key when this is the client side."""
        n = len(payload)
        first = (0x80 if fin else 0) | opcode
        mask_bit = 0x80 if self._client else 0
        if n < 126:
            header = bytes((first, mask_bit | n))
        elif n < 65536:
            header = struct.pack("!BBH", first, mask_bit | 126, n)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, n)
        if self._client:
            key = os.urandom(4)
            return header + key + apply_mask(payload, key)
        return header + payload

    def binary(self, payload: bytes) -> bytes:
        return self.frame(OP_BINARY, payload)

    def text(self, payload: str) -> bytes:
        return self.frame(OP_TEXT, payload.encode())

    def ping(self, payload: bytes = b"") -> bytes:
        return self.frame(OP_PING, payload[:MAX_CONTROL_PAYLOAD])

    def pong(self, payload: bytes) -> bytes:
        return self.frame(OP_PONG, payload[:MAX_CONTROL_PAYLOAD])

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        """The Close frame (section 5.5.1); sent once, later calls return ``b""``."""
        if self.close_sent:
            return b""
        self.close_sent = True
        if code == CLOSE_NO_STATUS:
            return self.frame(OP_CLOSE, b"")
        raw = reason.encode()[: MAX_CONTROL_PAYLOAD - 2]
        return self.frame(OP_CLOSE, struct.pack("!H", code) + raw)


# -- the opening handshake (section 4.2) ---------------------------------------------------


class HandshakeError(Exception):
    """The upgrade request is not one this server accepts; answer ``response()``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> bytes:
        reason = {
            400: "Bad Request",
            404: "Not Found",
            426: "Upgrade Required",
            503: "Service Unavailable",
        }.get(self.status, "Error")
        body = (
            '{"error": {"code": "bad_upgrade", "message": ' + _json_string(self.message) + "}}"
        ).encode()
        extra = "Sec-WebSocket-Version: 13\r\n" if self.status == 426 else ""
        return (
            f"HTTP/1.1 {self.status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
        ).encode() + body


def _json_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Handshake:
    path: str
    key: str
    origin: str | None


MAX_HANDSHAKE_BYTES = 16 * 1024


def parse_handshake(request: bytes) -> Handshake:
    """Check a client's opening handshake (section 4.2.1).

    Raises:
        HandshakeError: 400 for a malformed request, 426 for another protocol version.
    """
    if len(request) > MAX_HANDSHAKE_BYTES:
        raise HandshakeError(400, "handshake too large")
    head, sep, _ = request.partition(b"\r\n\r\n")
    if not sep:
        raise HandshakeError(400, "incomplete handshake")
    try:
        lines = head.decode("latin-1").split("\r\n")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HandshakeError(400, "undecodable handshake") from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        raise HandshakeError(400, "the upgrade must be GET ... HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise HandshakeError(400, "malformed header line")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(headers.get("connection", "")):
        raise HandshakeError(400, "missing Connection: Upgrade")
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeError(426, "only WebSocket version 13 is supported")
    key = headers.get("sec-websocket-key", "")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    path = parts[1].split("?", 1)[0]
    return Handshake(path=path, key=key, origin=headers.get("origin"))


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


def accept_response(key: str) -> bytes:
    """The 101 answer (section 4.2.2): no extension and no subprotocol selected."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455 mandates SHA-1 here
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


def client_handshake(host: str, path: str, key: str) -> bytes:
    """A client's opening handshake, for tests and tools."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
