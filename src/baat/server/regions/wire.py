"""Requests between regional deployments (docs/PROTOCOL.md, "Between regions").

MessagePack bodies over HTTP, one request per send, bundle fetch or lookup. Each is signed
with the sending region's own key (``Baat-Signature``, see ``signing``); the receiving region
knows the caller from that key, serves only its own accounts and accepts sends only on
behalf of the calling region's accounts.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from baat.proto import DeviceBundleRecord, OutgoingEnvelope, RecipientResult

# The device of the calling region a blob is fetched for: "<account>.<device>".
FETCHER_HEADER = "baat-fetcher"
MEDIA_TYPE = "application/vnd.baat.region+msgpack"

T = TypeVar("T")


class RegionSend(msgspec.Struct, frozen=True, array_like=True):
    """One send's envelopes for accounts of the receiving region."""

    sender_account: str
    sender_device: int
    message_id: str
    envelopes: list[OutgoingEnvelope]


class RegionSendResult(msgspec.Struct, frozen=True, array_like=True):
    """Final per-envelope results: each was acknowledged by its device or durably stored."""

    results: list[RecipientResult]


class BundleRequest(msgspec.Struct, frozen=True, array_like=True):
    account_id: str
    device_id: int  # 0: every device of the account


class BundleAnswer(msgspec.Struct, frozen=True, array_like=True):
    devices: list[DeviceBundleRecord]


class Refusal(msgspec.Struct, frozen=True, array_like=True):
    """Why a request was refused: a stable ``ErrorCode`` value, as on the socket."""

    code: str
    message: str
    retry_after_ms: int = 0


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(value)


def decode(data: bytes, type_: type[T]) -> T:
    """Raises ``msgspec.DecodeError`` or ``msgspec.ValidationError`` on a bad body."""
    return msgspec.msgpack.decode(data, type=type_)
