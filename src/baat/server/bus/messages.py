"""Messages between server nodes, independent of how they travel (in-process or Redis).

Every envelope a node forwards is already committed to the shared database: the bus only
shortens the way to a device connected elsewhere. Losing a bus message costs latency (the
device gets the envelope from the database on its next drain), never the envelope.
"""

from __future__ import annotations

import msgspec


class _NodeMessage(msgspec.Struct, frozen=True, array_like=True, tag_field="t"):
    pass


class Forward(_NodeMessage, frozen=True, tag=1):
    """A stored envelope for a device the receiving node holds."""

    seq: int
    guid: bytes
    recipient_account: str
    recipient_device: int
    sender_account: str
    sender_device: int
    message_id: str
    content: bytes
    stored_at: int


class Kick(_NodeMessage, frozen=True, tag=2):
    """The device connected to another node: close the older connection here."""

    account_id: str
    device_id: int
    by_node: str


class CatchUp(_NodeMessage, frozen=True, tag=3):
    """Some forwards to this node were lost while the bus was down: re-read the database
    for every connected device."""

    by_node: str


class DevicesChanged(_NodeMessage, frozen=True, tag=4):
    """An account gained or lost a device: forget cached device lists, and close the
    removed device's connection if it is held here."""

    account_id: str
    removed_device: int  # 0 when a device was added


class AccountErased(_NodeMessage, frozen=True, tag=5):
    """An account was erased: close its sessions and forget what memory holds about it
    (baat.privacy.erasure)."""

    account_id: str


NodeMessage = Forward | Kick | CatchUp | DevicesChanged | AccountErased

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[NodeMessage])


def encode_batch(messages: list[NodeMessage]) -> bytes:
    return _encoder.encode(messages)


def decode_batch(data: bytes) -> list[NodeMessage]:
    """Raises: msgspec.DecodeError / ValidationError on a malformed batch."""
    batch: list[NodeMessage] = _decoder.decode(data)
    return batch
