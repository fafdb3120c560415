"""Wire records: one WebSocket binary message carries one frame, MessagePack-encoded.

Each frame is a msgspec ``Struct`` encoded as an array whose first element is an integer
tag (``array_like=True, tag=N``): compact, fast to decode, and a new frame type never
changes the encoding of an old one. Tags are part of the wire contract (docs/PROTOCOL.md).
Tags 1-63 travel client to server, 64-127 server to client.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

PROTOCOL_VERSION = 1

# Bounds checked by the decoder itself (issue 14, "bad frames"): a value outside them is a
# malformed frame, refused before any handler or database sees it. They are ceilings far
# above what a correct peer sends; the tighter, configurable limits are in ``Limits``.
# Device ids are stored as 32-bit integers; key ids, request ids and nonces as 64-bit
# signed integers, so that 2**63 can never reach the database as an overflow.
DeviceId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
SignedInt64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Small = Annotated[int, msgspec.Meta(ge=0, le=2**16)]
AccountId = Annotated[str, msgspec.Meta(max_length=128)]
MessageId = Annotated[str, msgspec.Meta(max_length=256)]
Guid = Annotated[bytes, msgspec.Meta(max_length=64)]
KeyBytes = Annotated[bytes, msgspec.Meta(max_length=4096)]
MAX_LIST = 65_536


class _Frame(msgspec.Struct, frozen=True, array_like=True, tag_field="t"):
    pass


# -- client to server ----------------------------------------------------------------------


class Authenticate(_Frame, frozen=True, tag=1):
    """Answer to ``Challenge``: an Ed25519 signature by the device identity key over
    ``auth_message(nonce, account_id, device_id)``."""

    version: Small
    account_id: AccountId
    device_id: DeviceId
    signature: KeyBytes


class OutgoingEnvelope(msgspec.Struct, frozen=True, array_like=True):
    recipient_account: AccountId
    recipient_device: DeviceId
    content: bytes


class Send(_Frame, frozen=True, tag=2):
    """One message, encrypted separately for each recipient device."""

    message_id: MessageId
    envelopes: Annotated[list[OutgoingEnvelope], msgspec.Meta(max_length=MAX_LIST)]


class Ack(_Frame, frozen=True, tag=3):
    """The recipient stored these envelopes; the server may forget them."""

    guids: Annotated[list[Guid], msgspec.Meta(max_length=MAX_LIST)]


class FetchBundle(_Frame, frozen=True, tag=4):
    """Ask for the prekey bundles of an account's devices (all when ``device_id`` is 0)."""

    request_id: Int64
    account_id: AccountId
    device_id: DeviceId = 0


class PrekeyRecord(msgspec.Struct, frozen=True, array_like=True):
    kind: Small
    key_id: Int64
    public_key: KeyBytes
    signature: KeyBytes = b""


class UploadPrekeys(_Frame, frozen=True, tag=5):
    request_id: Int64
    signed: Annotated[list[PrekeyRecord], msgspec.Meta(max_length=MAX_LIST)]
    one_time: Annotated[list[PrekeyRecord], msgspec.Meta(max_length=MAX_LIST)]


class Ping(_Frame, frozen=True, tag=6):
    nonce: SignedInt64


class SealedEnvelope(msgspec.Struct, frozen=True, array_like=True):
    recipient_device: DeviceId
    content: bytes


class SealedSend(_Frame, frozen=True, tag=7):
    """One message to the devices of one account, without naming its sender
    (docs/PROTOCOL.md, "Sealed sender"). Each ``content`` is a sealed-sender message
    (docs/CRYPTO.md §18.2). Allowed before authentication: a sender that wants the server
    not to know it sends on a connection that never authenticates. ``access_key`` is the
    recipient's delivery access key, or empty for a recipient that takes sealed messages
    from anyone."""

    message_id: MessageId
    recipient_account: AccountId
    access_key: Annotated[bytes, msgspec.Meta(max_length=64)]
    envelopes: Annotated[list[SealedEnvelope], msgspec.Meta(max_length=MAX_LIST)]


# -- server to client ----------------------------------------------------------------------


class Challenge(_Frame, frozen=True, tag=64):
    version: int
    nonce: bytes


class Ready(_Frame, frozen=True, tag=65):
    """Authentication succeeded."""

    account_id: str
    device_id: int


class Deliver(_Frame, frozen=True, tag=66):
    """An envelope for this device. A sealed envelope has ``sender_account`` "" and
    ``sender_device`` 0: the sender is inside ``content`` (docs/CRYPTO.md §18.2)."""

    guid: bytes
    sender_account: str
    sender_device: int
    message_id: str
    content: bytes
    server_time_ms: int


class QueueDrained(_Frame, frozen=True, tag=67):
    """Everything that was queued for this device while it was away has been sent."""

    count: int


class RecipientResult(msgspec.Struct, frozen=True, array_like=True):
    recipient_account: str
    recipient_device: int
    status: str  # "delivered" | "stored" | an ErrorCode value


class SendResult(_Frame, frozen=True, tag=68):
    message_id: str
    results: list[RecipientResult]


class DeviceBundleRecord(msgspec.Struct, frozen=True, array_like=True):
    device_id: int
    identity_key: bytes
    identity_dh_key: bytes
    identity_dh_sig: bytes
    signed_prekey: PrekeyRecord | None
    kem_last_resort: PrekeyRecord | None
    one_time_curve: PrekeyRecord | None
    one_time_kem: PrekeyRecord | None


class BundleResult(_Frame, frozen=True, tag=69):
    request_id: int
    account_id: str
    devices: list[DeviceBundleRecord]


class PrekeyStatus(_Frame, frozen=True, tag=70):
    """How many one-time prekeys of each kind the server still holds for this device."""

    request_id: int
    counts: dict[int, int]


class Pong(_Frame, frozen=True, tag=71):
    nonce: int


class PrekeysLow(_Frame, frozen=True, tag=73):
    """Pushed when a bundle fetch left this device few one-time prekeys: upload more now,
    while connected (docs/PROTOCOL.md, "Prekeys")."""

    counts: dict[int, int]


class Error(_Frame, frozen=True, tag=72):
    code: str
    message: str
    request_id: int = 0
    fatal: bool = False
    retry_after_ms: int = 0
    # The Send this error refuses, if any (appended in version 1; empty otherwise).
    message_id: str = ""


ClientFrame = Authenticate | Send | Ack | FetchBundle | UploadPrekeys | Ping | SealedSend
ServerFrame = (
    Challenge
    | Ready
    | Deliver
    | QueueDrained
    | SendResult
    | BundleResult
    | PrekeyStatus
    | Pong
    | Error
    | PrekeysLow
)
AnyFrame = ClientFrame | ServerFrame

_encoder = msgspec.msgpack.Encoder()
_client_decoder = msgspec.msgpack.Decoder(ClientFrame)
_server_decoder = msgspec.msgpack.Decoder(ServerFrame)


def encode(frame: AnyFrame) -> bytes:
    return _encoder.encode(frame)


def decode_client(data: bytes) -> ClientFrame:
    """Decode a frame sent by a client.

    Nesting is bounded by the schema for every known field. Fields appended by a newer
    peer are skipped by msgspec's C decoder, which guards its own recursion: nesting deeper
    than the interpreter's recursion limit there is refused as a ``ValueError`` here instead
    of escaping as ``RecursionError``.

    Raises:
        msgspec.DecodeError / msgspec.ValidationError / ValueError: not a valid client frame.
    """
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except RecursionError:
        raise ValueError("frame is nested too deeply") from None
    return frame


def decode_server(data: bytes) -> ServerFrame:
    """Decode a frame sent by a server.

    Raises:
        msgspec.DecodeError / msgspec.ValidationError / ValueError: not a valid server frame.
    """
    try:
        frame: ServerFrame = _server_decoder.decode(data)
    except RecursionError:
        raise ValueError("frame is nested too deeply") from None
    return frame


def peek(data: bytes) -> tuple[int | None, int | str | None]:
    """The tag and first field of a MessagePack frame array, read from its first bytes
    without decoding the rest (so without recursion, whatever follows).

    Used to answer a refused frame with the request id or message id it carried, and to
    tell a newer peer's unknown frame type from garbage. ``(None, None)`` when the bytes do
    not start like a frame.
    """
    view = memoryview(data)
    first = view[:1].tobytes()
    if not first:
        return None, None
    b = first[0]
    if 0x90 <= b <= 0x9F:
        count, pos = b & 0x0F, 1
    elif b == 0xDC and len(view) >= 3:
        count, pos = int.from_bytes(view[1:3], "big"), 3
    elif b == 0xDD and len(view) >= 5:
        count, pos = int.from_bytes(view[1:5], "big"), 5
    else:
        return None, None
    if count == 0:
        return None, None
    tag, pos = _peek_scalar(view, pos)
    if not isinstance(tag, int) or count < 2:
        return (tag if isinstance(tag, int) else None), None
    second, _ = _peek_scalar(view, pos)
    return tag, second


_INT_WIDTHS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_STR_WIDTHS = {0xD9: 1, 0xDA: 2, 0xDB: 4}


def _peek_scalar(view: memoryview, pos: int) -> tuple[int | str | None, int]:
    """One integer or string at ``pos`` (MessagePack spec, "Formats"); anything else is
    ``None``."""
    if pos >= len(view):
        return None, pos
    b = view[pos]
    if b <= 0x7F:
        return b, pos + 1
    if b >= 0xE0:
        return b - 0x100, pos + 1
    if b in _INT_WIDTHS:
        width = _INT_WIDTHS[b]
        raw = view[pos + 1 : pos + 1 + width]
        if len(raw) < width:
            return None, pos
        return int.from_bytes(raw, "big", signed=b >= 0xD0), pos + 1 + width
    if 0xA0 <= b <= 0xBF:
        size, start = b & 0x1F, pos + 1
    elif b in _STR_WIDTHS:
        width = _STR_WIDTHS[b]
        size = int.from_bytes(view[pos + 1 : pos + 1 + width], "big")
        start = pos + 1 + width
    else:
        return None, pos
    raw = view[start : start + size]
    if len(raw) < size:
        return None, pos
    try:
        return bytes(raw).decode(), start + size
    except UnicodeDecodeError:
        return None, pos


AUTH_DOMAIN = b"Baat device authentication v1\x00"


def auth_message(nonce: bytes, account_id: str, device_id: int) -> bytes:
    """The bytes a device signs to authenticate a connection (domain-separated)."""
    return AUTH_DOMAIN + nonce + account_id.encode() + b"\x00" + str(device_id).encode()
