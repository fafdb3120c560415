"""Wire records: one WebSocket binary message carries one frame, MessagePack-encoded.

Each frame is a msgspec ``Struct`` encoded as an array whose first element is an integer
tag (``array_like=True, tag=N``): compact, fast to decode, and a new frame type never
changes the encoding of an old one. Tags are part of the wire contract (docs/PROTOCOL.md).
Tags 1-63 travel client to server, 64-127 server to client.
"""

from __future__ import annotations

import msgspec

PROTOCOL_VERSION = 1


class _Frame(msgspec.Struct, frozen=True, array_like=True, tag_field="t"):
    pass


# -- client to server ----------------------------------------------------------------------


class Authenticate(_Frame, frozen=True, tag=1):
    """Answer to ``Challenge``: an Ed25519 signature by the device identity key over
    ``auth_message(nonce, account_id, device_id)``."""

    version: int
    account_id: str
    device_id: int
    signature: bytes


class OutgoingEnvelope(msgspec.Struct, frozen=True, array_like=True):
    recipient_account: str
    recipient_device: int
    content: bytes


class Send(_Frame, frozen=True, tag=2):
    """One message, encrypted separately for each recipient device."""

    message_id: str
    envelopes: list[OutgoingEnvelope]


class Ack(_Frame, frozen=True, tag=3):
    """The recipient stored these envelopes; the server may forget them."""

    guids: list[bytes]


class FetchBundle(_Frame, frozen=True, tag=4):
    """Ask for the prekey bundles of an account's devices (all when ``device_id`` is 0)."""

    request_id: int
    account_id: str
    device_id: int = 0


class PrekeyRecord(msgspec.Struct, frozen=True, array_like=True):
    kind: int
    key_id: int
    public_key: bytes
    signature: bytes = b""


class UploadPrekeys(_Frame, frozen=True, tag=5):
    request_id: int
    signed: list[PrekeyRecord]
    one_time: list[PrekeyRecord]


class Ping(_Frame, frozen=True, tag=6):
    nonce: int


# -- server to client ----------------------------------------------------------------------


class Challenge(_Frame, frozen=True, tag=64):
    version: int
    nonce: bytes


class Ready(_Frame, frozen=True, tag=65):
    """Authentication succeeded."""

    account_id: str
    device_id: int


class Deliver(_Frame, frozen=True, tag=66):
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


ClientFrame = Authenticate | Send | Ack | FetchBundle | UploadPrekeys | Ping
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

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: not a valid client frame.
    """
    frame: ClientFrame = _client_decoder.decode(data)
    return frame


def decode_server(data: bytes) -> ServerFrame:
    """Decode a frame sent by a server.

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: not a valid server frame.
    """
    frame: ServerFrame = _server_decoder.decode(data)
    return frame


AUTH_DOMAIN = b"Baat device authentication v1\x00"


def auth_message(nonce: bytes, account_id: str, device_id: int) -> bytes:
    """The bytes a device signs to authenticate a connection (domain-separated)."""
    return AUTH_DOMAIN + nonce + account_id.encode() + b"\x00" + str(device_id).encode()
