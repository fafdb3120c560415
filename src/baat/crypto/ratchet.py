"""The Double Ratchet (Signal specification, revision 4, section 3), without header encryption.

Pure functions over an immutable :class:`RatchetState`: every operation returns a new state
and never touches the one passed in, so a failed decryption cannot corrupt anything
(section 3.5: "if an exception is raised ... the message is discarded and changes to the
state object are discarded"). Only the fields that change are rebuilt; the skipped-key table
is copied only when it changes.

Concrete functions (section 5.2 "Recommended cryptographic algorithms"):

* ``GENERATE_DH``/``DH``: X25519.
* ``KDF_RK(rk, dh_out)``: HKDF-SHA256 with ``rk`` as salt, ``dh_out`` as input key material
  and :data:`ROOT_KDF_INFO` as info; 64 bytes split into the new root key and a chain key.
* ``KDF_CK(ck)``: ``HMAC-SHA256(ck, 0x01)`` is the message key and ``HMAC-SHA256(ck, 0x02)``
  the next chain key.
* ``ENCRYPT``: AES-256-CBC + HMAC-SHA256 keyed through HKDF with :data:`MESSAGE_KEY_INFO`,
  see :mod:`baat.crypto._primitives`.
* ``CONCAT(ad, header)``: ``ad || header.encode()``. The header has a fixed length for each
  header version and comes last, so the pair parses uniquely.
"""

from __future__ import annotations

import struct
from typing import Final, TypeVar

import msgspec

from baat.crypto._codec import decode_record, encode_record
from baat.crypto._errors import (
    DecryptionError,
    DuplicateMessage,
    InvalidKey,
    InvalidState,
    MalformedMessage,
    TooManySkipped,
    UnsupportedVersion,
)
from baat.crypto._primitives import (
    X25519_KEY_BYTES,
    X25519KeyPair,
    aead_decrypt,
    aead_encrypt,
    hkdf_sha256,
    hmac_sha256_pair,
)

K = TypeVar("K")  # the key of a skipped-message-key store

__all__ = [
    "DEFAULT_LIMITS",
    "HEADER_BYTES",
    "HEADER_VERSION",
    "MESSAGE_KEY_INFO",
    "RATCHET_STATE_VERSION",
    "ROOT_KDF_INFO",
    "Header",
    "RatchetLimits",
    "RatchetState",
    "init_initiator",
    "init_responder",
    "ratchet_decrypt",
    "ratchet_encrypt",
]

ROOT_KDF_INFO: Final = b"Baat_DoubleRatchet_v1_root"
MESSAGE_KEY_INFO: Final = b"Baat_DoubleRatchet_v1_message"
MESSAGE_KEY_INPUT: Final = b"\x01"
CHAIN_KEY_INPUT: Final = b"\x02"

HEADER_VERSION: Final = 1
"""Version 1: the classical DH ratchet. A later version adds the post-quantum (SPQR) fields."""
_HEADER = struct.Struct(">B32sII")
HEADER_BYTES: Final = _HEADER.size  # 41
_COUNTER_LIMIT: Final = 2**32
RATCHET_STATE_VERSION: Final = 1
_PREVIOUS_CHAINS: Final = 16
_SLOT = struct.Struct(">I")


class Header(msgspec.Struct, frozen=True, gc=False):
    """HEADER(dh_pair, pn, n) of section 3.1, preceded on the wire by a version byte."""

    dh: bytes
    """The sender's current ratchet public key."""
    pn: int
    """Number of messages in the sender's previous sending chain."""
    n: int
    """Number of this message in the current sending chain."""

    def encode(self) -> bytes:
        """41 bytes: version (1), dh (32), pn (uint32 BE), n (uint32 BE). Raises: nothing."""
        return _HEADER.pack(HEADER_VERSION, self.dh, self.pn, self.n)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Inverse of :meth:`encode`.

        Raises:
            UnsupportedVersion: the version byte is not 1.
            MalformedMessage: not exactly 41 bytes.
        """
        if data[:1] and data[0] != HEADER_VERSION:
            raise UnsupportedVersion(f"ratchet header version {data[0]} is not supported")
        if len(data) != HEADER_BYTES:
            raise MalformedMessage("ratchet header must be 41 bytes")
        _, dh, pn, n = _HEADER.unpack(data)
        return cls(dh, pn, n)


class RatchetLimits(msgspec.Struct, frozen=True):
    """Bounds on skipped message keys (section 3.5 and "Deletion of skipped message keys")."""

    max_skip: int = 1000
    """MAX_SKIP: most message keys one chain may skip in one step."""
    max_skipped_keys: int = 2000
    """Most skipped keys stored in total; the oldest are evicted beyond this."""
    max_skipped_age: int = 30 * 24 * 3600
    """Seconds after which a stored skipped key is deleted."""


DEFAULT_LIMITS: Final = RatchetLimits()


class RatchetState(msgspec.Struct, frozen=True, kw_only=True):
    """The state variables of section 3.2, immutable and serialisable.

    ``skipped`` maps ``dh || n`` (36 bytes) to ``(message_key, stored_at)`` in insertion
    order, which is also age order; treat it as read-only. ``previous_dhr`` remembers the
    last receiving ratchet keys so that a message from a finished chain whose key is gone is
    reported as a duplicate instead of costing a DH ratchet step.
    """

    version: int = RATCHET_STATE_VERSION
    dhs: X25519KeyPair
    dhr: bytes | None
    rk: bytes
    cks: bytes | None
    ckr: bytes | None
    ns: int = 0
    nr: int = 0
    pn: int = 0
    skipped: dict[bytes, tuple[bytes, int]] = msgspec.field(default_factory=dict)
    previous_dhr: tuple[bytes, ...] = ()

    def to_bytes(self) -> bytes:
        """MessagePack of all fields, ``version`` first. Secret. Raises: nothing."""
        return encode_record(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetState:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidState: corrupt bytes or a version other than 1.
        """
        return decode_record(data, cls, RATCHET_STATE_VERSION)

    def __repr__(self) -> str:
        return (
            f"RatchetState(dhs={self.dhs.public.hex()}, ns={self.ns}, nr={self.nr}, "
            f"pn={self.pn}, skipped={len(self.skipped)})"
        )


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """KDF_RK of section 5.2: returns ``(root_key, chain_key)``."""
    okm = hkdf_sha256(dh_out, rk, ROOT_KDF_INFO, 64)
    return okm[:32], okm[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """KDF_CK of section 5.2: returns ``(chain_key, message_key)``."""
    return hmac_sha256_pair(ck, CHAIN_KEY_INPUT, MESSAGE_KEY_INPUT)


def init_initiator(shared_secret: bytes, remote_ratchet_key: bytes) -> RatchetState:
    """RatchetInitAlice (section 3.3): ``remote_ratchet_key`` is Bob's signed prekey.

    Raises:
        InvalidKey: the remote key is not 32 bytes or is a low-order point.
        InvalidState: the shared secret is not 32 bytes.
    """
    if len(shared_secret) != 32:
        raise InvalidState("the shared secret must be 32 bytes")
    if len(remote_ratchet_key) != X25519_KEY_BYTES:
        raise InvalidKey("ratchet key must be 32 bytes")
    dhs = X25519KeyPair.generate()
    rk, cks = kdf_rk(shared_secret, dhs.exchange(remote_ratchet_key))
    return RatchetState(dhs=dhs, dhr=remote_ratchet_key, rk=rk, cks=cks, ckr=None)


def init_responder(shared_secret: bytes, ratchet_key: X25519KeyPair) -> RatchetState:
    """RatchetInitBob (section 3.3): ``ratchet_key`` is Bob's signed prekey pair.

    Raises:
        InvalidState: the shared secret is not 32 bytes.
    """
    if len(shared_secret) != 32:
        raise InvalidState("the shared secret must be 32 bytes")
    return RatchetState(dhs=ratchet_key, dhr=None, rk=shared_secret, cks=None, ckr=None)


def ratchet_encrypt(
    state: RatchetState,
    plaintext: bytes,
    associated_data: bytes,
    now: int,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> tuple[RatchetState, Header, bytes]:
    """RatchetEncrypt (section 3.4). Also drops skipped keys older than the limit.

    Persist the returned state before sending the ciphertext: encrypting twice from the same
    state reuses a message key.

    Raises:
        InvalidState: there is no sending chain yet, or the chain is exhausted (2**32).
    """
    if state.cks is None:
        raise InvalidState("no sending chain: receive a message first")
    if state.ns >= _COUNTER_LIMIT:
        raise InvalidState("sending chain exhausted")
    cks, mk = kdf_ck(state.cks)
    header = Header(state.dhs.public, state.pn, state.ns)
    ciphertext = aead_encrypt(mk, plaintext, associated_data + header.encode(), MESSAGE_KEY_INFO)
    skipped = purge_skipped(state.skipped, now, limits)
    new_state = msgspec.structs.replace(state, cks=cks, ns=state.ns + 1, skipped=skipped)
    return new_state, header, ciphertext


def ratchet_decrypt(
    state: RatchetState,
    header: Header,
    ciphertext: bytes,
    associated_data: bytes,
    now: int,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> tuple[RatchetState, bytes]:
    """RatchetDecrypt (section 3.5), with skipped keys bounded in number and age.

    Works on local copies; the new state is built only after the message authenticated.

    Raises:
        DuplicateMessage: the message key was used already, expired or was evicted.
        TooManySkipped: more than ``limits.max_skip`` keys would be skipped in one chain.
        DecryptionError: authentication failed or the ratchet key is unusable.
        MalformedMessage: the header fields are out of range.
    """
    if len(header.dh) != X25519_KEY_BYTES or not (
        0 <= header.pn < _COUNTER_LIMIT and 0 <= header.n < _COUNTER_LIMIT
    ):
        raise MalformedMessage("ratchet header fields out of range")
    full_ad = associated_data + header.encode()
    skipped = state.skipped
    slot = header.dh + _SLOT.pack(header.n)
    entry = skipped.get(slot)
    if entry is not None:  # TrySkippedMessageKeys
        mk, stored_at = entry
        if now - stored_at > limits.max_skipped_age:
            raise DuplicateMessage("the key of this message has expired")
        plaintext = aead_decrypt(mk, ciphertext, full_ad, MESSAGE_KEY_INFO)
        remaining = dict(skipped)
        del remaining[slot]
        return msgspec.structs.replace(
            state, skipped=purge_skipped(remaining, now, limits)
        ), plaintext

    dhs, dhr, rk, cks, ckr = state.dhs, state.dhr, state.rk, state.cks, state.ckr
    ns, nr, pn, previous = state.ns, state.nr, state.pn, state.previous_dhr
    fresh: list[tuple[bytes, bytes]] = []
    stepped = False
    if header.dh != dhr:
        if header.dh in previous:
            raise DuplicateMessage("message from a finished chain whose key is gone")
        if ckr is not None and dhr is not None:
            ckr, nr = _skip(ckr, nr, header.pn, dhr, fresh, limits)
            previous = (*previous[1 - _PREVIOUS_CHAINS :], dhr)
        # DHRatchet (section 3.5), receiving half; the sending half waits until the message
        # authenticated, so that a message of another session (a record tries several,
        # records.py) costs one X25519 operation instead of three.
        pn, ns, nr, dhr = ns, 0, 0, header.dh
        try:
            rk, ckr = kdf_rk(rk, dhs.exchange(dhr))
        except InvalidKey as exc:
            raise DecryptionError("unusable ratchet public key") from exc
        stepped = True
    elif header.n < nr:
        raise DuplicateMessage("message key already used")
    assert ckr is not None  # set by the DH ratchet step or matched an existing chain
    ckr, nr = _skip(ckr, nr, header.n, dhr, fresh, limits)
    ckr, mk = kdf_ck(ckr)
    plaintext = aead_decrypt(mk, ciphertext, full_ad, MESSAGE_KEY_INFO)
    if stepped:  # DHRatchet, sending half
        dhs = X25519KeyPair.generate()
        rk, cks = kdf_rk(rk, dhs.exchange(dhr))

    if fresh:
        skipped = dict(skipped)
        for key_slot, key in fresh:
            skipped[key_slot] = (key, now)
        excess = len(skipped) - limits.max_skipped_keys
        if excess > 0:
            for old in list(skipped)[:excess]:
                del skipped[old]
    new_state = RatchetState(
        dhs=dhs,
        dhr=dhr,
        rk=rk,
        cks=cks,
        ckr=ckr,
        ns=ns,
        nr=nr + 1,
        pn=pn,
        skipped=purge_skipped(skipped, now, limits),
        previous_dhr=previous,
    )
    return new_state, plaintext


def _skip(
    ckr: bytes,
    nr: int,
    until: int,
    dhr: bytes,
    out: list[tuple[bytes, bytes]],
    limits: RatchetLimits,
) -> tuple[bytes, int]:
    """SkipMessageKeys (section 3.5): derive and collect the keys ``nr .. until-1``.

    Raises:
        TooManySkipped: ``until - nr`` exceeds ``limits.max_skip``.
    """
    if until - nr > limits.max_skip:
        raise TooManySkipped(f"{until - nr} skipped message keys exceed {limits.max_skip}")
    while nr < until:
        ckr, mk = kdf_ck(ckr)
        out.append((dhr + _SLOT.pack(nr), mk))
        nr += 1
    return ckr, nr


def purge_skipped(
    skipped: dict[K, tuple[bytes, int]], now: int, limits: RatchetLimits
) -> dict[K, tuple[bytes, int]]:
    """Drop skipped message keys older than ``limits.max_skipped_age`` (insertion order is
    age order); returns the same dict if none are. Shared with the sender-key chains."""
    if not skipped:
        return skipped
    oldest = next(iter(skipped.values()))[1]
    if now - oldest <= limits.max_skipped_age:
        return skipped
    return {k: v for k, v in skipped.items() if now - v[1] <= limits.max_skipped_age}
