"""Device identity keys and prekeys (PQXDH sections 2.4, 2.5 and 3.2).

A device owns two identity keys: an Ed25519 key that signs (and that users compare as safety
numbers) and an X25519 "identity DH key" used in the key agreement, bound to the first by a
signature (see :mod:`baat.crypto._signing`).

Prekeys come as a public record to upload (:class:`PublicPrekey`, the same fields as the
server's prekey record) and a private record the owner keeps (:class:`PrivatePrekey`). The
signed curve prekey and both kinds of ML-KEM prekey are signed by the Ed25519 identity key;
one-time curve prekeys are not, as in PQXDH section 2.5: a server that swaps one only takes the
agreement back to the case without a one-time prekey, and skipping the signature saves a
signature per key on the device and a verification per session on the initiator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

from baat.crypto._codec import decode_record, encode_record
from baat.crypto._errors import InvalidKey, InvalidSignature
from baat.crypto._primitives import (
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    MLKEM768_PUBLIC_KEY_BYTES,
    X25519_KEY_BYTES,
    X25519KeyPair,
    ed25519_from_private_bytes,
    ed25519_generate,
    mlkem_from_seed,
    mlkem_generate,
    mlkem_public_bytes,
)
from baat.crypto._signing import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    identity_dh_signature_message,
    prekey_signature_message,
    verify_identity_dh_signature,
    verify_prekey_signature,
)

__all__ = [
    "IdentityKeyPair",
    "PrekeyLookup",
    "PrekeyPair",
    "PrivatePrekey",
    "PublicIdentity",
    "PublicPrekey",
    "generate_prekey",
    "generate_prekeys",
    "prekey_lookup",
]

_IDENTITY_FORMAT = 1
_IDENTITY_ENCODING = b"\x01"  # type byte of Encode(IK), see PublicIdentity.encode
CURVE_KINDS = frozenset({PREKEY_KIND_CURVE_SIGNED, PREKEY_KIND_CURVE_ONE_TIME})
KEM_KINDS = frozenset({PREKEY_KIND_KEM_LAST_RESORT, PREKEY_KIND_KEM_ONE_TIME})


class PublicIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """The public half of a device identity, as published and as carried in first messages."""

    identity_key: bytes
    """Ed25519 public key, 32 bytes: what safety numbers are computed from."""
    identity_dh_key: bytes
    """X25519 public key, 32 bytes, used for DH1/DH2 of PQXDH."""
    identity_dh_sig: bytes
    """Ed25519 signature of ``identity_dh_key`` by ``identity_key``."""

    def verify(self) -> None:
        """Check sizes and the identity DH key signature.

        Raises:
            InvalidSignature: a key has the wrong size or the signature does not verify.
        """
        if len(self.identity_key) != ED25519_KEY_BYTES:
            raise InvalidSignature("identity key must be 32 bytes")
        verify_identity_dh_signature(self.identity_key, self.identity_dh_key, self.identity_dh_sig)

    def encode(self) -> bytes:
        """Encode(IK) of PQXDH section 3.3: a type byte, the Ed25519 key, the X25519 key.

        Raises: nothing.
        """
        return _IDENTITY_ENCODING + self.identity_key + self.identity_dh_key


class IdentityKeyPair:
    """A device's long-term identity: an Ed25519 signing key and an X25519 agreement key."""

    __slots__ = ("_dh", "_signing", "identity_dh_key", "identity_dh_sig", "identity_key")

    def __init__(self, signing_private: bytes, dh_private: bytes) -> None:
        """Load from raw private keys (32 bytes each).

        Raises:
            InvalidKey: a private key does not have 32 bytes.
        """
        self._signing = ed25519_from_private_bytes(signing_private)
        self._dh = X25519KeyPair.from_private_bytes(dh_private)
        self.identity_key: bytes = self._signing.public_key().public_bytes_raw()
        self.identity_dh_key: bytes = self._dh.public
        # Ed25519 is deterministic, so re-signing on load gives the published signature.
        self.identity_dh_sig: bytes = self._signing.sign(
            identity_dh_signature_message(self._dh.public)
        )

    @classmethod
    def generate(cls) -> IdentityKeyPair:
        """A fresh identity. Raises: nothing."""
        signing = ed25519_generate().private_bytes_raw()
        dh = X25519KeyPair.generate().private_bytes()
        return cls(signing, dh)

    @property
    def public(self) -> PublicIdentity:
        """The three public values to register with the server."""
        return PublicIdentity(
            identity_key=self.identity_key,
            identity_dh_key=self.identity_dh_key,
            identity_dh_sig=self.identity_dh_sig,
        )

    def public_bytes(self) -> bytes:
        """The Ed25519 public key (32 bytes), the identity users compare. Raises: nothing."""
        return self.identity_key

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``. Raises: nothing."""
        return self._signing.sign(message)

    @property
    def dh_pair(self) -> X25519KeyPair:
        """The X25519 identity key pair, which seals and opens sealed-sender messages
        (docs/CRYPTO.md §18.2). Raises: nothing."""
        return self._dh

    def dh(self, peer_public: bytes) -> bytes:
        """X25519 with the identity DH key.

        Raises:
            InvalidKey: the peer key is not 32 bytes or is a low-order point.
        """
        return self._dh.exchange(peer_public)

    def to_bytes(self) -> bytes:
        """65 bytes: a format byte (1), the Ed25519 private key, the X25519 private key.

        Secret: store it encrypted at rest. Raises: nothing.
        """
        return (
            bytes([_IDENTITY_FORMAT]) + self._signing.private_bytes_raw() + self._dh.private_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKeyPair:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidKey: wrong length or unknown format byte.
        """
        if len(data) != 1 + 2 * X25519_KEY_BYTES or data[0] != _IDENTITY_FORMAT:
            raise InvalidKey("not a version 1 identity key pair")
        return cls(data[1:33], data[33:65])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentityKeyPair):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.identity_key)

    def __repr__(self) -> str:
        return f"IdentityKeyPair(identity_key={self.identity_key.hex()})"


class PublicPrekey(msgspec.Struct, frozen=True):
    """A prekey as uploaded to and served by the server (same fields as its prekey record)."""

    kind: int
    key_id: int
    public_key: bytes
    signature: bytes = b""
    """Empty for one-time curve prekeys, which are not signed."""

    def verify(self, identity_key: bytes) -> None:
        """Check the key size for its kind and, unless unsigned by design, the signature.

        Raises:
            InvalidSignature: wrong kind, wrong size or a signature that does not verify.
        """
        size = X25519_KEY_BYTES if self.kind in CURVE_KINDS else MLKEM768_PUBLIC_KEY_BYTES
        if len(self.public_key) != size:
            raise InvalidSignature(f"prekey {self.key_id} has the wrong size for its kind")
        if self.kind == PREKEY_KIND_CURVE_ONE_TIME:
            return
        if len(self.signature) != ED25519_SIGNATURE_BYTES:
            raise InvalidSignature(f"prekey {self.key_id} is not signed")
        verify_prekey_signature(
            identity_key, self.kind, self.key_id, self.public_key, self.signature
        )


class PrivatePrekey(msgspec.Struct, frozen=True, kw_only=True):
    """The owner's half of a prekey. ``private_key`` is the raw X25519 key (32 bytes) or the
    ML-KEM-768 seed (64 bytes). Secret: store it encrypted at rest."""

    version: int = 1
    kind: int
    key_id: int
    private_key: bytes
    public_key: bytes

    def to_bytes(self) -> bytes:
        """MessagePack, version 1. Raises: nothing."""
        return encode_record(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivatePrekey:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidState: not a version 1 private prekey record.
        """
        return decode_record(data, cls, 1)

    def curve_key(self) -> X25519KeyPair:
        """The X25519 key pair of a curve prekey.

        Raises:
            InvalidKey: this is not a curve prekey, or its bytes are corrupt.
        """
        if self.kind not in CURVE_KINDS:
            raise InvalidKey(f"prekey {self.key_id} is not a curve prekey")
        return X25519KeyPair.from_private_bytes(self.private_key)

    def kem_key(self) -> MLKEM768PrivateKey:
        """The ML-KEM-768 private key of a KEM prekey.

        Raises:
            InvalidKey: this is not a KEM prekey, or its seed is corrupt.
        """
        if self.kind not in KEM_KINDS:
            raise InvalidKey(f"prekey {self.key_id} is not a KEM prekey")
        return mlkem_from_seed(self.private_key)


class PrekeyPair(NamedTuple):
    public: PublicPrekey
    private: PrivatePrekey


PrekeyLookup = Callable[[int, int], PrivatePrekey | None]
"""``lookup(kind, key_id)``: the responder's private prekey, or ``None`` if it is gone."""


def generate_prekey(identity: IdentityKeyPair, kind: int, key_id: int) -> PrekeyPair:
    """A new prekey of ``kind`` (one of the ``PREKEY_KIND_*`` constants).

    Curve kinds are X25519, KEM kinds ML-KEM-768. All but ``PREKEY_KIND_CURVE_ONE_TIME``
    are signed with ``prekey_signature_message``.

    Raises:
        InvalidSignature: unknown kind, or ``key_id`` outside 0..2**32-1.
    """
    prekey_signature_message(kind, key_id, b"")  # validates kind and id before any key work
    if kind in CURVE_KINDS:
        pair = X25519KeyPair.generate()
        private, public = pair.private_bytes(), pair.public
    elif kind in KEM_KINDS:
        kem = mlkem_generate()
        private, public = kem.private_bytes_raw(), mlkem_public_bytes(kem)
    else:  # pragma: no cover - prekey_signature_message rejected it already
        raise InvalidSignature(f"unknown prekey kind {kind}")
    message = prekey_signature_message(kind, key_id, public)
    signature = b"" if kind == PREKEY_KIND_CURVE_ONE_TIME else identity.sign(message)
    return PrekeyPair(
        PublicPrekey(kind, key_id, public, signature),
        PrivatePrekey(kind=kind, key_id=key_id, private_key=private, public_key=public),
    )


def generate_prekeys(
    identity: IdentityKeyPair, kind: int, key_ids: Iterable[int]
) -> list[PrekeyPair]:
    """:func:`generate_prekey` for each id in ``key_ids``.

    Raises:
        InvalidSignature: unknown kind or an id out of range.
    """
    return [generate_prekey(identity, kind, key_id) for key_id in key_ids]


def prekey_lookup(prekeys: Iterable[PrivatePrekey]) -> PrekeyLookup:
    """A :data:`PrekeyLookup` over private prekeys held in memory. Raises: nothing."""
    table = {(p.kind, p.key_id): p for p in prekeys}

    def lookup(kind: int, key_id: int) -> PrivatePrekey | None:
        return table.get((kind, key_id))

    return lookup
