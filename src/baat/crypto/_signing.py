"""Signatures over prekeys, shared by the client (which signs) and the server (which checks).

PQXDH section 2.5 has Bob sign ``EncodeEC(SPKB)`` and ``EncodeKEM(PQSPKB)`` with his identity
key. Baat signs with a separate Ed25519 identity key (``cryptography`` has no XEdDSA), and
domain-separates the message so that a signature over one kind of key can never be replayed
as a signature over another kind or another key id. The ``kind`` byte plays the role of the
type byte of ``EncodeEC``/``EncodeKEM``.

Because the identity key used for agreement (X25519, "identity DH key") is separate from the
Ed25519 identity key, it is bound to it by a signature too, over a message with its own
domain string. Neither domain string is a prefix of the other, so a prekey signature can
never be taken for an identity DH key signature or the other way round.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from baat.crypto._errors import InvalidSignature

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
_IDENTITY_DH_DOMAIN = b"Baat identity DH key v1\x00"
_X25519_KEY_BYTES = 32

__all__ = [
    "PREKEY_KIND_CURVE_ONE_TIME",
    "PREKEY_KIND_CURVE_SIGNED",
    "PREKEY_KIND_KEM_LAST_RESORT",
    "PREKEY_KIND_KEM_ONE_TIME",
    "InvalidSignature",
    "identity_dh_signature_message",
    "prekey_signature_message",
    "verify_identity_dh_signature",
    "verify_prekey_signature",
]


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
    _verify(identity_key, signature, message, "prekey signature does not verify")


def identity_dh_signature_message(identity_dh_key: bytes) -> bytes:
    """The exact bytes the Ed25519 identity key signs to vouch for its X25519 identity DH key.

    Raises:
        InvalidSignature: ``identity_dh_key`` is not 32 bytes.
    """
    if len(identity_dh_key) != _X25519_KEY_BYTES:
        raise InvalidSignature("identity DH key must be 32 bytes")
    return _IDENTITY_DH_DOMAIN + identity_dh_key


def verify_identity_dh_signature(
    identity_key: bytes, identity_dh_key: bytes, signature: bytes
) -> None:
    """Check that ``identity_key`` (raw Ed25519) signed ``identity_dh_key`` (raw X25519).

    Raises:
        InvalidSignature: the signature or either key is invalid.
    """
    message = identity_dh_signature_message(identity_dh_key)
    _verify(identity_key, signature, message, "identity DH key signature does not verify")


def _verify(identity_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, message)
    except (_CryptoInvalidSignature, ValueError) as exc:
        raise InvalidSignature(what) from exc
