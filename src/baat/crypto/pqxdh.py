"""PQXDH key agreement (Signal specification, revision 3, sections 2 and 3).

Parameters (section 2.1): curve X25519, hash SHA-256, pqkem ML-KEM-768, info
:data:`PQXDH_INFO`. ``EncodeEC``/``EncodeKEM`` are the raw public keys; in signatures the
prekey kind byte of :func:`prekey_signature_message` names the key type instead.

Differences from the specification, all forced by having no XEdDSA:

* The identity key IK is a pair: an Ed25519 key that signs and an X25519 identity DH key that
  takes part in DH1 and DH2, bound to the Ed25519 key by a signature that both sides verify
  (Alice from the bundle, Bob from the initial message).
* ``Encode(IK)`` in the associated data is ``0x01 || Ed25519 key || X25519 key``, so
  ``AD = Encode(IKA) || Encode(IKB)`` (130 bytes) binds both complete identities.

ML-KEM binds the encapsulation key into the shared secret (FIPS 203 hashes ``H(ek)`` into the
derivation of K), which is what PQXDH section 4 asks of the pqkem against re-encapsulation.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple, Protocol

import msgspec

from baat.crypto._errors import (
    InvalidKey,
    InvalidSignature,
    MalformedMessage,
    UnknownPrekey,
)
from baat.crypto._primitives import (
    HASH_BYTES,
    MLKEM768_CIPHERTEXT_BYTES,
    X25519_KEY_BYTES,
    X25519KeyPair,
    hkdf_sha256,
    mlkem_decapsulate,
    mlkem_encapsulate,
)
from baat.crypto._signing import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
)
from baat.crypto.keys import (
    KEM_KINDS,
    IdentityKeyPair,
    PrekeyLookup,
    PrivatePrekey,
    PublicIdentity,
    PublicPrekey,
)

__all__ = [
    "INITIAL_MESSAGE_BYTES",
    "PQXDH_INFO",
    "InitialMessage",
    "InitiatorResult",
    "PrekeyBundle",
    "ResponderResult",
    "UsedPrekeys",
    "pqxdh_initiate",
    "pqxdh_respond",
]

PQXDH_INFO: Final = b"Baat_PQXDH_X25519_SHA-256_ML-KEM-768"
_F: Final = b"\xff" * 32  # section 2.2: 32 0xFF bytes for X25519 (XEdDSA domain separation)
_ZERO_SALT: Final = bytes(HASH_BYTES)

# Initial message, fixed layout (all integers big-endian):
#   identity_key 32 | identity_dh_key 32 | identity_dh_sig 64 | ephemeral_key 32 |
#   signed_prekey_id u32 | kem_prekey_kind u8 | kem_prekey_id u32 |
#   has_one_time_prekey u8 | one_time_prekey_id u32 | kem_ciphertext 1088
_INITIAL = struct.Struct(">32s32s64s32sIBIBI1088s")
INITIAL_MESSAGE_BYTES: Final = _INITIAL.size  # 1262


class _PrekeyLike(Protocol):
    @property
    def kind(self) -> int: ...
    @property
    def key_id(self) -> int: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...


class PrekeyBundle(msgspec.Struct, frozen=True, kw_only=True):
    """What Alice fetches for one of Bob's devices (section 3.2)."""

    identity_key: bytes
    identity_dh_key: bytes
    identity_dh_sig: bytes
    signed_prekey: PublicPrekey
    """Kind ``PREKEY_KIND_CURVE_SIGNED``."""
    kem_prekey: PublicPrekey
    """Kind ``PREKEY_KIND_KEM_ONE_TIME`` if the server had one, else ``..._KEM_LAST_RESORT``."""
    one_time_prekey: PublicPrekey | None = None
    """Kind ``PREKEY_KIND_CURVE_ONE_TIME``, if the server had one."""

    @property
    def kem_last_resort(self) -> bool:
        return self.kem_prekey.kind == PREKEY_KIND_KEM_LAST_RESORT

    @classmethod
    def from_parts(
        cls,
        identity_key: bytes,
        identity_dh_key: bytes,
        identity_dh_sig: bytes,
        signed_prekey: _PrekeyLike,
        kem_last_resort: _PrekeyLike,
        one_time_curve: _PrekeyLike | None = None,
        one_time_kem: _PrekeyLike | None = None,
    ) -> PrekeyBundle:
        """Build a bundle from the server's records, preferring the one-time KEM prekey
        (section 3.3). Nothing is verified here; :func:`pqxdh_initiate` does that.

        Raises: nothing.
        """
        kem = one_time_kem if one_time_kem is not None else kem_last_resort
        return cls(
            identity_key=identity_key,
            identity_dh_key=identity_dh_key,
            identity_dh_sig=identity_dh_sig,
            signed_prekey=_public(signed_prekey),
            kem_prekey=_public(kem),
            one_time_prekey=None if one_time_curve is None else _public(one_time_curve),
        )

    @property
    def identity(self) -> PublicIdentity:
        return PublicIdentity(
            identity_key=self.identity_key,
            identity_dh_key=self.identity_dh_key,
            identity_dh_sig=self.identity_dh_sig,
        )

    def verify(self) -> None:
        """Every check Alice makes before using the bundle (section 3.3).

        Raises:
            InvalidSignature: a key has the wrong kind or size, or a signature does not verify.
        """
        self.identity.verify()
        if self.signed_prekey.kind != PREKEY_KIND_CURVE_SIGNED:
            raise InvalidSignature("signed prekey has the wrong kind")
        if self.kem_prekey.kind not in KEM_KINDS:
            raise InvalidSignature("KEM prekey has the wrong kind")
        if self.one_time_prekey is not None:
            if self.one_time_prekey.kind != PREKEY_KIND_CURVE_ONE_TIME:
                raise InvalidSignature("one-time prekey has the wrong kind")
            self.one_time_prekey.verify(self.identity_key)
        self.signed_prekey.verify(self.identity_key)
        self.kem_prekey.verify(self.identity_key)


def _public(record: _PrekeyLike) -> PublicPrekey:
    return PublicPrekey(record.kind, record.key_id, record.public_key, record.signature)


class InitialMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The key-agreement part of Alice's first messages (section 3.3)."""

    identity: PublicIdentity
    ephemeral_key: bytes
    signed_prekey_id: int
    kem_prekey_kind: int
    kem_prekey_id: int
    one_time_prekey_id: int | None
    kem_ciphertext: bytes

    def encode(self) -> bytes:
        """The fixed 1262-byte layout above. Raises: nothing (fields were validated)."""
        has_otp = self.one_time_prekey_id is not None
        return _INITIAL.pack(
            self.identity.identity_key,
            self.identity.identity_dh_key,
            self.identity.identity_dh_sig,
            self.ephemeral_key,
            self.signed_prekey_id,
            self.kem_prekey_kind,
            self.kem_prekey_id,
            int(has_otp),
            self.one_time_prekey_id or 0,
            self.kem_ciphertext,
        )

    @classmethod
    def decode(cls, data: bytes) -> InitialMessage:
        """Inverse of :meth:`encode`.

        Raises:
            MalformedMessage: wrong length, unknown KEM kind or flag.
        """
        if len(data) != INITIAL_MESSAGE_BYTES:
            raise MalformedMessage("initial message has the wrong length")
        ik, ik_dh, ik_sig, ek, spk_id, kem_kind, kem_id, has_otp, otp_id, ct = _INITIAL.unpack(data)
        if kem_kind not in KEM_KINDS or has_otp not in (0, 1) or (not has_otp and otp_id):
            raise MalformedMessage("initial message has invalid prekey fields")
        return cls(
            identity=PublicIdentity(identity_key=ik, identity_dh_key=ik_dh, identity_dh_sig=ik_sig),
            ephemeral_key=ek,
            signed_prekey_id=spk_id,
            kem_prekey_kind=kem_kind,
            kem_prekey_id=kem_id,
            one_time_prekey_id=otp_id if has_otp else None,
            kem_ciphertext=ct,
        )


class UsedPrekeys(msgspec.Struct, frozen=True, kw_only=True):
    """Which of Bob's prekeys a first message used (section 3.4)."""

    signed_prekey_id: int
    kem_prekey_kind: int
    kem_prekey_id: int
    one_time_prekey_id: int | None

    def one_time(self) -> list[tuple[int, int]]:
        """``(kind, key_id)`` of each used one-time prekey: delete these private keys now.

        Raises: nothing.
        """
        used = []
        if self.one_time_prekey_id is not None:
            used.append((PREKEY_KIND_CURVE_ONE_TIME, self.one_time_prekey_id))
        if self.kem_prekey_kind == PREKEY_KIND_KEM_ONE_TIME:
            used.append((PREKEY_KIND_KEM_ONE_TIME, self.kem_prekey_id))
        return used


class InitiatorResult(NamedTuple):
    shared_secret: bytes
    """SK, 32 bytes."""
    associated_data: bytes
    """AD = Encode(IKA) || Encode(IKB)."""
    initial_message: InitialMessage
    remote_ratchet_key: bytes
    """Bob's signed prekey: his first ratchet public key (Double Ratchet section 5.1)."""


class ResponderResult(NamedTuple):
    shared_secret: bytes
    associated_data: bytes
    ratchet_key: X25519KeyPair
    """Bob's signed prekey pair: his first ratchet key pair."""
    used: UsedPrekeys


def _kdf(key_material: bytes) -> bytes:
    # Section 2.2: HKDF with salt = hash-length zeros, IKM = F || KM, info, 32 bytes out.
    return hkdf_sha256(_F + key_material, _ZERO_SALT, PQXDH_INFO, 32)


def pqxdh_initiate(identity: IdentityKeyPair, bundle: PrekeyBundle) -> InitiatorResult:
    """Alice's side (section 3.3): verify the bundle, then derive SK and AD.

    Raises:
        InvalidSignature: a bundle signature, kind or size is wrong.
        InvalidKey: a bundle key is unusable (low-order point, bad ML-KEM key).
    """
    bundle.verify()
    spk = bundle.signed_prekey.public_key
    ek = X25519KeyPair.generate()
    dh = [
        identity.dh(spk),  # DH1 = DH(IKA, SPKB)
        ek.exchange(bundle.identity_dh_key),  # DH2 = DH(EKA, IKB)
        ek.exchange(spk),  # DH3 = DH(EKA, SPKB)
    ]
    otp = bundle.one_time_prekey
    if otp is not None:
        dh.append(ek.exchange(otp.public_key))  # DH4 = DH(EKA, OPKB)
    ss, ciphertext = mlkem_encapsulate(bundle.kem_prekey.public_key)
    sk = _kdf(b"".join(dh) + ss)
    ad = identity.public.encode() + bundle.identity.encode()
    message = InitialMessage(
        identity=identity.public,
        ephemeral_key=ek.public,
        signed_prekey_id=bundle.signed_prekey.key_id,
        kem_prekey_kind=bundle.kem_prekey.kind,
        kem_prekey_id=bundle.kem_prekey.key_id,
        one_time_prekey_id=None if otp is None else otp.key_id,
        kem_ciphertext=ciphertext,
    )
    return InitiatorResult(sk, ad, message, spk)


def pqxdh_respond(
    identity: IdentityKeyPair, lookup: PrekeyLookup, message: InitialMessage
) -> ResponderResult:
    """Bob's side (section 3.4): verify Alice's identity DH key, load the named prekeys and
    derive SK and AD. Whether SK is right only shows when the first ciphertext decrypts.

    Raises:
        InvalidSignature: Alice's identity DH key signature does not verify.
        UnknownPrekey: ``lookup`` does not return one of the named prekeys.
        InvalidKey: a key in the message or a stored prekey is unusable.
    """
    message.identity.verify()
    if len(message.ephemeral_key) != X25519_KEY_BYTES:
        raise InvalidKey("ephemeral key must be 32 bytes")
    if len(message.kem_ciphertext) != MLKEM768_CIPHERTEXT_BYTES:
        raise InvalidKey("KEM ciphertext has the wrong size")
    spk = _find(lookup, PREKEY_KIND_CURVE_SIGNED, message.signed_prekey_id).curve_key()
    kem = _find(lookup, message.kem_prekey_kind, message.kem_prekey_id).kem_key()
    otp = None
    if message.one_time_prekey_id is not None:
        otp = _find(lookup, PREKEY_KIND_CURVE_ONE_TIME, message.one_time_prekey_id).curve_key()
    ek = message.ephemeral_key
    dh = [
        spk.exchange(message.identity.identity_dh_key),  # DH1
        identity.dh(ek),  # DH2
        spk.exchange(ek),  # DH3
    ]
    if otp is not None:
        dh.append(otp.exchange(ek))  # DH4
    ss = mlkem_decapsulate(kem, message.kem_ciphertext)
    sk = _kdf(b"".join(dh) + ss)
    ad = message.identity.encode() + identity.public.encode()
    used = UsedPrekeys(
        signed_prekey_id=message.signed_prekey_id,
        kem_prekey_kind=message.kem_prekey_kind,
        kem_prekey_id=message.kem_prekey_id,
        one_time_prekey_id=message.one_time_prekey_id,
    )
    return ResponderResult(sk, ad, spk, used)


def _find(lookup: PrekeyLookup, kind: int, key_id: int) -> PrivatePrekey:
    found = lookup(kind, key_id)
    if found is None or found.kind != kind or found.key_id != key_id:
        raise UnknownPrekey(f"no prekey of kind {kind} with id {key_id}")
    return found
