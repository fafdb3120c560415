"""Signatures over prekeys, shared by the client (which signs) and the server (which checks).

PQXDH section 2.5 has Bob sign ``EncodeEC(SPKB)`` and ``EncodeKEM(PQSPKB)`` with his identity
key. Baat signs with a separate Ed25519 identity key (``cryptography`` has no XEdDSA), and
domain-separates the message so that a signature over one kind of key can never be replayed
as a signature over another kind or another key id.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PREKEY_KIND_CURVE_SIGNED = 1
PREKEY_KIND_KEM_LAST_RESORT = 2
PREKEY_KIND_CURVE_ONE_TIME = 3
PREKEY_KIND_KEM_ONE_TIME = 4
_KINDS = frozenset(
    {
        PREKEY_KIND_CURVE_SIGNED,
        PREKEY_KIND_KEM_LAST_RESORT,
        PREKEY_KIND_CURVE_ONE_TIME,
        PREKEY_KIND_KEM_ONE_TIME,
    }
)
_DOMAIN = b"Baat prekey signature v1\x00"


class InvalidSignature(ValueError):
    """A signature did not verify, or the key or kind it names is malformed."""


def prekey_signature_message(kind: int, key_id: int, public_key: bytes) -> bytes:
    """The exact bytes an identity key signs for one prekey.

    Raises:
        InvalidSignature: ``kind`` is unknown or ``key_id`` does not fit in 32 bits.
    """
    if kind not in _KINDS:
        raise InvalidSignature(f"unknown prekey kind {kind}")
    if not 0 <= key_id < 2**32:
        raise InvalidSignature("prekey id out of range")
    return _DOMAIN + struct.pack(">BI", kind, key_id) + public_key


def verify_prekey_signature(
    identity_key: bytes, kind: int, key_id: int, public_key: bytes, signature: bytes
) -> None:
    """Check that ``identity_key`` (raw Ed25519, 32 bytes) signed this prekey.

    Raises:
        InvalidSignature: the signature, the identity key or the prekey fields are invalid.
    """
    message = prekey_signature_message(kind, key_id, public_key)
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, message)
    except (_CryptoInvalidSignature, ValueError) as exc:
        raise InvalidSignature("prekey signature does not verify") from exc
