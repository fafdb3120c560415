"""The Baat ciphertext format, version 1 (described in docs/CRYPTO.md).

::

    ciphertext      = format_version:u8 (=1) || type:u8 || body
    type 1 MESSAGE  : body = ratchet_message
    type 2 PREKEY   : body = initial_message (1262 bytes) || ratchet_message
    ratchet_message = header (41 bytes, see ratchet.Header) || aead (CBC blocks || 32-byte tag)
"""

from __future__ import annotations

from typing import Final, NamedTuple

from baat.crypto._errors import MalformedMessage, UnsupportedVersion
from baat.crypto._primitives import AEAD_TAG_BYTES
from baat.crypto.pqxdh import INITIAL_MESSAGE_BYTES, InitialMessage
from baat.crypto.ratchet import HEADER_BYTES, Header

FORMAT_VERSION: Final = 1
MESSAGE_TYPE_NORMAL: Final = 1
MESSAGE_TYPE_PREKEY: Final = 2
_MIN_AEAD: Final = 16 + AEAD_TAG_BYTES
_PREFIX_NORMAL: Final = bytes([FORMAT_VERSION, MESSAGE_TYPE_NORMAL])
_PREFIX_PREKEY: Final = bytes([FORMAT_VERSION, MESSAGE_TYPE_PREKEY])


class ParsedCiphertext(NamedTuple):
    message_type: int
    initial: InitialMessage | None
    initial_bytes: bytes
    header: Header
    aead: bytes


def message_type(data: bytes) -> int:
    """``MESSAGE_TYPE_NORMAL`` or ``MESSAGE_TYPE_PREKEY``, from the first two bytes only.

    Raises:
        UnsupportedVersion: the format version is not 1.
        MalformedMessage: too short or an unknown type.
    """
    if len(data) < 2:
        raise MalformedMessage("ciphertext too short")
    if data[0] != FORMAT_VERSION:
        raise UnsupportedVersion(f"ciphertext format version {data[0]} is not supported")
    if data[1] not in (MESSAGE_TYPE_NORMAL, MESSAGE_TYPE_PREKEY):
        raise MalformedMessage(f"unknown ciphertext type {data[1]}")
    return data[1]


def encode(header: Header, aead: bytes, initial: bytes | None) -> bytes:
    """Frame a ratchet message, behind the encoded initial message if there is one."""
    if initial is None:
        return _PREFIX_NORMAL + header.encode() + aead
    return _PREFIX_PREKEY + initial + header.encode() + aead


def parse(data: bytes) -> ParsedCiphertext:
    """Split a ciphertext into its parts.

    Raises:
        UnsupportedVersion: unknown format or header version.
        MalformedMessage: anything else that does not parse.
    """
    kind = message_type(data)
    offset = 2
    initial = None
    initial_bytes = b""
    if kind == MESSAGE_TYPE_PREKEY:
        initial_bytes = data[2 : 2 + INITIAL_MESSAGE_BYTES]
        initial = InitialMessage.decode(initial_bytes)
        offset += INITIAL_MESSAGE_BYTES
    header = Header.decode(data[offset : offset + HEADER_BYTES])
    aead = data[offset + HEADER_BYTES :]
    if len(aead) < _MIN_AEAD or (len(aead) - AEAD_TAG_BYTES) % 16:
        raise MalformedMessage("ciphertext body has an impossible length")
    return ParsedCiphertext(kind, initial, initial_bytes, header, aead)
