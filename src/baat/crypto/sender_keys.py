"""Sender Keys: a group message is encrypted once and fanned out by the server.

WhatsApp Encryption Overview (technical white paper, version 8, 2024-08-19), "Group
Messages", which is also libsignal's group cipher: (1) a sender picks a random chain key and a
fresh signing key pair (Ed25519, as every Baat signature; the paper uses Curve25519);
(2) sends both as a :class:`SenderKeyDistribution` to every other device over the pairwise
sessions; (3) per message derives a message key from the chain key, advances the chain,
encrypts once, signs, and hands the one ciphertext to the server; (4) "The sender's Sender
Key is reset whenever a group member leaves" (:func:`rotate_sender_key`).

Concrete functions, the same as the pairwise ratchet's (Double Ratchet section 5.2):

* chain step: message key ``HMAC-SHA256(ck, 0x01)``, next chain key ``HMAC-SHA256(ck, 0x02)``
  (libsignal's ``SenderChainKey`` uses the same two constants);
* ``ENCRYPT``: AES-256-CBC + HMAC-SHA256 keyed by HKDF with :data:`SENDER_KEY_MESSAGE_INFO`
  (see :mod:`baat.crypto._primitives`), the message header as associated data;
* signature: Ed25519 over :data:`_SIGNATURE_DOMAIN` ``||`` header ``||`` ciphertext.

The chain key is shared by the whole group, so the HMAC only proves "some member"; the
signature proves "the member who distributed this key". It is checked first, so a forged
message costs one verification and never a chain walk. Out-of-order delivery keeps skipped
message keys bounded in number and age (:class:`~baat.crypto.ratchet.RatchetLimits`, as in
Double Ratchet section 3.5); decryption works on local values and the state passed in is never
changed. Formats and the reasoning are in docs/GROUPS.md.
"""

from __future__ import annotations

import secrets
import struct
from typing import Any, Final, NamedTuple

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.crypto._errors import (
    CryptoError,
    DecryptionError,
    DuplicateMessage,
    InvalidKey,
    InvalidSignature,
    InvalidState,
    MalformedMessage,
    TooManySkipped,
    UnsupportedVersion,
)
from baat.crypto._primitives import (
    AEAD_TAG_BYTES,
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    aead_decrypt,
    aead_encrypt,
    constant_time_equal,
    ed25519_from_private_bytes,
    ed25519_generate,
    ed25519_verify,
    hmac_sha256_pair,
)
from baat.crypto.ratchet import RatchetLimits, purge_skipped

__all__ = [
    "DEFAULT_SENDER_KEY_LIMITS",
    "GROUP_ID_BYTES",
    "MESSAGE_TYPE_SENDER_KEY",
    "MESSAGE_TYPE_SENDER_KEY_DISTRIBUTION",
    "SENDER_KEY_FORMAT_VERSION",
    "SENDER_KEY_MESSAGE_INFO",
    "SENDER_KEY_STATE_VERSION",
    "GroupMessageInfo",
    "SenderKeyDistribution",
    "SenderKeyState",
    "UnknownSenderKey",
    "decrypt_group",
    "encrypt_group",
    "group_message_info",
    "new_sender_key",
    "process_distribution",
    "rotate_sender_key",
]

SENDER_KEY_STATE_VERSION: Final = 1
SENDER_KEY_FORMAT_VERSION: Final = 1
"""First byte of both wire formats; the same value as the pairwise ``FORMAT_VERSION``."""
MESSAGE_TYPE_SENDER_KEY: Final = 3
"""Second byte of a group message. 1 and 2 are the pairwise message types."""
MESSAGE_TYPE_SENDER_KEY_DISTRIBUTION: Final = 4
"""Second byte of a sender key distribution (the plaintext of a pairwise message)."""
GROUP_ID_BYTES: Final = 16
SENDER_KEY_MESSAGE_INFO: Final = b"Baat_SenderKey_v1_message"
_SIGNATURE_DOMAIN: Final = b"Baat sender key message v1\x00"
_MESSAGE_KEY_INPUT: Final = b"\x01"
_CHAIN_KEY_INPUT: Final = b"\x02"
_CHAIN_KEY_BYTES: Final = 32
_COUNTER_LIMIT: Final = 2**32

# version:u8 || type:u8 || group_id:16 || key_id:u32be || iteration:u32be
_HEADER = struct.Struct(">BB16sII")
_HEADER_BYTES: Final = _HEADER.size  # 26
# version:u8 || type:u8 || group_id:16 || key_id:u32be || iteration:u32be || chain_key:32
# || signing_key:32
_DISTRIBUTION = struct.Struct(">BB16sII32s32s")
_MIN_MESSAGE: Final = _HEADER_BYTES + 16 + AEAD_TAG_BYTES + ED25519_SIGNATURE_BYTES

DEFAULT_SENDER_KEY_LIMITS: Final = RatchetLimits(
    max_skip=25_000, max_skipped_keys=2000, max_skipped_age=30 * 24 * 3600
)
"""libsignal's MAX_FORWARD_JUMPS (25000) and MAX_MESSAGE_KEYS (2000), 30 days like the ratchet.

A group chain is shared by every reader of one sender, so a receiver that was offline may
legitimately be far behind; skipping is cheap (two HMACs a key) and happens only after the
signature verified, so only the sender can make a receiver walk its chain.
"""


class UnknownSenderKey(DecryptionError):
    """The message was encrypted under another sender key (other group id or key id).

    Look the state up again with :func:`group_message_info`; a removed member gets this for
    everything sent after the rotation. The state passed in is unchanged.
    """


class _SigningKey:
    """An Ed25519 private key with its public key cached (loading one costs a scalar
    multiplication, more than a signature). Stored as the 32 raw private bytes."""

    __slots__ = ("_private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _SigningKey):
            return NotImplemented
        return constant_time_equal(self.private_bytes(), other.private_bytes())


class SenderKeyState(msgspec.Struct, frozen=True, kw_only=True):
    """One sender key: the sender's own copy (with ``signing_private``) or a receiver's.

    ``chain_key`` yields message key number ``iteration`` next. ``skipped`` maps an iteration
    to ``(message_key, stored_at)`` in insertion (= age) order; treat it as read-only.
    Secret: it holds the chain key, and on the sender the private signing key.
    """

    version: int = SENDER_KEY_STATE_VERSION
    group_id: bytes
    key_id: int
    iteration: int
    chain_key: bytes
    signing_public: bytes
    signing_private: _SigningKey | None = None
    skipped: dict[int, tuple[bytes, int]] = msgspec.field(default_factory=dict)
    created_at: int = 0

    @property
    def is_sender(self) -> bool:
        """True for the sender's own state, the only kind that can encrypt."""
        return self.signing_private is not None

    def distribution(self) -> SenderKeyDistribution:
        """What to send to a device that must read the messages from here on.

        It carries the current chain key and iteration, so the receiver cannot read earlier
        messages. Raises: nothing.
        """
        return SenderKeyDistribution(
            self.group_id, self.key_id, self.iteration, self.chain_key, self.signing_public
        )

    def receiver_copy(self) -> SenderKeyState:
        """This state without the private signing key (what a receiver holds)."""
        return msgspec.structs.replace(self, signing_private=None)

    def to_bytes(self) -> bytes:
        """MessagePack of all fields, ``version`` first. Secret. Raises: nothing."""
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyState:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidState: corrupt bytes, a version other than 1, or inconsistent fields.
        """
        try:
            found = _PROBE.decode(data).version
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            raise InvalidState("not a SenderKeyState record") from exc
        if found != SENDER_KEY_STATE_VERSION:
            raise InvalidState(f"SenderKeyState version {found} is not supported")
        try:
            state = _DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, CryptoError) as exc:
            raise InvalidState("corrupt SenderKeyState record") from exc
        _check_fields(state.group_id, state.key_id, state.iteration, state.chain_key)
        private, public = state.signing_private, state.signing_public
        if len(public) != ED25519_KEY_BYTES or (private is not None and private.public != public):
            raise InvalidState("the signing key pair does not match")
        return state

    def __repr__(self) -> str:
        role = "sender" if self.is_sender else "receiver"
        return (
            f"SenderKeyState({role}, group={self.group_id.hex()}, key_id={self.key_id}, "
            f"iteration={self.iteration}, skipped={len(self.skipped)})"
        )


class SenderKeyDistribution(msgspec.Struct, frozen=True):
    """The sender key as sent to one device, inside a pairwise session (never in the clear).

    It is not signed: the pairwise session already authenticates the sending device, and the
    receiver files the key under that device.
    """

    group_id: bytes
    key_id: int
    iteration: int
    chain_key: bytes
    signing_public: bytes

    def encode(self) -> bytes:
        """90 bytes, see docs/GROUPS.md. Secret (the chain key). Raises: nothing."""
        fields = msgspec.structs.astuple(self)
        return _DISTRIBUTION.pack(
            SENDER_KEY_FORMAT_VERSION, MESSAGE_TYPE_SENDER_KEY_DISTRIBUTION, *fields
        )

    @classmethod
    def decode(cls, data: bytes) -> SenderKeyDistribution:
        """Inverse of :meth:`encode`.

        Raises:
            UnsupportedVersion: the first byte is not 1.
            MalformedMessage: wrong type byte or length.
        """
        _check_prefix(data, MESSAGE_TYPE_SENDER_KEY_DISTRIBUTION)
        if len(data) != _DISTRIBUTION.size:
            raise MalformedMessage("a sender key distribution is 90 bytes")
        _, _, *fields = _DISTRIBUTION.unpack(data)
        return cls(*fields)

    def __repr__(self) -> str:
        return f"SenderKeyDistribution(key_id={self.key_id}, iteration={self.iteration})"


class GroupMessageInfo(NamedTuple):
    """The clear header of a group message: which sender key state opens it."""

    group_id: bytes
    key_id: int
    iteration: int


# -- Records ----------------------------------------------------------------------------------


class _VersionProbe(msgspec.Struct):
    version: int = -1


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, _SigningKey):
        return obj.private_bytes()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is _SigningKey and isinstance(obj, bytes):
        return _SigningKey(ed25519_from_private_bytes(obj))
    raise NotImplementedError(f"cannot decode {type_.__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_PROBE = msgspec.msgpack.Decoder(_VersionProbe)
_DECODER = msgspec.msgpack.Decoder(SenderKeyState, dec_hook=_dec_hook)


def _check_fields(group_id: bytes, key_id: int, iteration: int, chain_key: bytes) -> None:
    if len(group_id) != GROUP_ID_BYTES:
        raise InvalidState("a group id is 16 bytes")
    if not 0 <= key_id < _COUNTER_LIMIT or not 0 <= iteration <= _COUNTER_LIMIT:
        raise InvalidState("key id or iteration out of range")
    if len(chain_key) != _CHAIN_KEY_BYTES:
        raise InvalidState("a chain key is 32 bytes")


def _check_prefix(data: bytes, kind: int) -> None:
    if len(data) < 2:
        raise MalformedMessage("too short")
    if data[0] != SENDER_KEY_FORMAT_VERSION:
        raise UnsupportedVersion(f"group format version {data[0]} is not supported")
    if data[1] != kind:
        raise MalformedMessage(f"type {data[1]} where {kind} was expected")


# -- Creating, rotating and receiving sender keys ---------------------------------------------


def new_sender_key(group_id: bytes, now: int, *, avoid_key_id: int | None = None) -> SenderKeyState:
    """A fresh sender key for ``group_id`` (white paper, "Group Messages", steps 1 and 2).

    Random 32-byte chain key, new Ed25519 signing key pair, random 32-bit key id (as
    libsignal's chain id), different from ``avoid_key_id``.

    Raises:
        InvalidState: ``group_id`` is not 16 bytes.
    """
    if len(group_id) != GROUP_ID_BYTES:
        raise InvalidState("a group id is 16 bytes")
    key_id = secrets.randbits(32)
    while key_id == avoid_key_id:
        key_id = secrets.randbits(32)
    signing = _SigningKey(ed25519_generate())
    return SenderKeyState(
        group_id=group_id,
        key_id=key_id,
        iteration=0,
        chain_key=secrets.token_bytes(_CHAIN_KEY_BYTES),
        signing_public=signing.public,
        signing_private=signing,
        created_at=now,
    )


def rotate_sender_key(state: SenderKeyState, now: int) -> SenderKeyState:
    """Replace our sender key after a member left or was removed ("reset whenever a group
    member leaves"). Nothing of the old key is reused, so a device that only has the old
    key learns nothing about messages under the new one. Send ``.distribution()`` of the
    result to the remaining devices only.

    Raises:
        InvalidState: ``state`` is a receiver's copy.
    """
    if not state.is_sender:
        raise InvalidState("only the sender rotates its sender key")
    return new_sender_key(state.group_id, now, avoid_key_id=state.key_id)


def process_distribution(
    distribution: SenderKeyDistribution, now: int, existing: SenderKeyState | None = None
) -> SenderKeyState:
    """The receiver's state for a distribution received over a pairwise session.

    File the result under the device that sent the distribution, with its key id. If
    ``existing`` is the state already held for the same key, it is returned unchanged: a
    repeated distribution must never move a receiver back along the chain, which would make
    the message keys it already used valid again (replays).

    Raises:
        InvalidKey: the signing key is not 32 bytes.
        InvalidState: bad sizes, or ``existing`` has the same group and key id but another
            signing key or chain.
    """
    d = distribution
    _check_fields(d.group_id, d.key_id, d.iteration, d.chain_key)
    if len(d.signing_public) != ED25519_KEY_BYTES:
        raise InvalidKey("a signing key is 32 bytes")
    if existing is not None and (existing.group_id, existing.key_id) == (d.group_id, d.key_id):
        same_chain = existing.iteration != d.iteration or constant_time_equal(
            existing.chain_key, d.chain_key
        )
        if not (constant_time_equal(existing.signing_public, d.signing_public) and same_chain):
            raise InvalidState("another sender key with the same id")
        return existing
    return SenderKeyState(**msgspec.structs.asdict(d), created_at=now)


# -- Messages ---------------------------------------------------------------------------------


def group_message_info(data: bytes) -> GroupMessageInfo:
    """Read the clear header of a group message, to find the state that opens it.

    Raises:
        UnsupportedVersion: the first byte is not 1.
        MalformedMessage: not a group message, or an impossible length.
    """
    _check_prefix(data, MESSAGE_TYPE_SENDER_KEY)
    body = len(data) - _HEADER_BYTES - ED25519_SIGNATURE_BYTES - AEAD_TAG_BYTES
    if len(data) < _MIN_MESSAGE or body % 16:
        raise MalformedMessage("group message has an impossible length")
    _, _, group_id, key_id, iteration = _HEADER.unpack_from(data)
    return GroupMessageInfo(group_id, key_id, iteration)


def encrypt_group(
    state: SenderKeyState,
    plaintext: bytes,
    now: int,
    limits: RatchetLimits = DEFAULT_SENDER_KEY_LIMITS,
) -> tuple[SenderKeyState, bytes]:
    """Encrypt and sign one group message (white paper, "Group Messages", steps 1 to 3).

    Persist the returned state before sending: encrypting twice from one stored state reuses
    a message key (see docs/CRYPTO.md section 1 for why CBC + HMAC makes that less harmful).

    Raises:
        InvalidState: a receiver's copy, or the chain is exhausted (2**32 messages).
    """
    signer = state.signing_private
    if signer is None:
        raise InvalidState("a receiver's copy of a sender key cannot encrypt")
    if state.iteration >= _COUNTER_LIMIT:
        raise InvalidState("sender key chain exhausted: rotate")
    message_key, chain_key = hmac_sha256_pair(state.chain_key, _MESSAGE_KEY_INPUT, _CHAIN_KEY_INPUT)
    ids = (state.group_id, state.key_id, state.iteration)
    header = _HEADER.pack(SENDER_KEY_FORMAT_VERSION, MESSAGE_TYPE_SENDER_KEY, *ids)
    body = header + aead_encrypt(message_key, plaintext, header, SENDER_KEY_MESSAGE_INFO)
    data = body + signer.sign(_SIGNATURE_DOMAIN + body)
    new_state = msgspec.structs.replace(
        state,
        chain_key=chain_key,
        iteration=state.iteration + 1,
        skipped=purge_skipped(state.skipped, now, limits),
    )
    return new_state, data


def decrypt_group(
    state: SenderKeyState,
    data: bytes,
    now: int,
    limits: RatchetLimits = DEFAULT_SENDER_KEY_LIMITS,
) -> tuple[SenderKeyState, bytes]:
    """Verify and decrypt one group message, in any order (skipped keys are kept).

    Works on local values; a new state is built only after the signature and the MAC
    verified, so on any error the caller keeps using the state it passed in.

    Raises:
        UnknownSenderKey: the message names another group or key id.
        DuplicateMessage: its key was used already, expired or was evicted.
        TooManySkipped: more than ``limits.max_skip`` keys would be skipped.
        DecryptionError: the signature or the MAC does not verify.
        MalformedMessage: the bytes do not parse (``UnsupportedVersion``: unknown version).
    """
    info = group_message_info(data)
    if info.group_id != state.group_id or info.key_id != state.key_id:
        raise UnknownSenderKey("the message is for another sender key")
    body, signature = data[:-ED25519_SIGNATURE_BYTES], data[-ED25519_SIGNATURE_BYTES:]
    try:
        ed25519_verify(state.signing_public, signature, _SIGNATURE_DOMAIN + body)
    except InvalidSignature as exc:
        raise DecryptionError("group message signature does not verify") from exc
    header, aead = body[:_HEADER_BYTES], body[_HEADER_BYTES:]
    iteration = info.iteration

    if iteration < state.iteration:
        entry = state.skipped.get(iteration)
        if entry is None:
            raise DuplicateMessage("message key already used")
        message_key, stored_at = entry
        if now - stored_at > limits.max_skipped_age:
            raise DuplicateMessage("the key of this message has expired")
        plaintext = aead_decrypt(message_key, aead, header, SENDER_KEY_MESSAGE_INFO)
        remaining = dict(state.skipped)
        del remaining[iteration]
        return msgspec.structs.replace(
            state, skipped=purge_skipped(remaining, now, limits)
        ), plaintext

    if iteration - state.iteration > limits.max_skip:
        raise TooManySkipped(f"{iteration - state.iteration} skipped keys exceed {limits.max_skip}")
    chain_key = state.chain_key
    keep_from = iteration - limits.max_skipped_keys  # older fresh keys would be evicted at once
    fresh: list[tuple[int, bytes]] = []
    for n in range(state.iteration, iteration):
        message_key, chain_key = hmac_sha256_pair(chain_key, _MESSAGE_KEY_INPUT, _CHAIN_KEY_INPUT)
        if n >= keep_from:
            fresh.append((n, message_key))
    message_key, chain_key = hmac_sha256_pair(chain_key, _MESSAGE_KEY_INPUT, _CHAIN_KEY_INPUT)
    plaintext = aead_decrypt(message_key, aead, header, SENDER_KEY_MESSAGE_INFO)

    skipped = state.skipped
    if fresh:
        skipped = dict(skipped)
        for n, key in fresh:
            skipped[n] = (key, now)
        excess = len(skipped) - limits.max_skipped_keys
        if excess > 0:
            for old in list(skipped)[:excess]:
                del skipped[old]
    new_state = msgspec.structs.replace(
        state,
        chain_key=chain_key,
        iteration=iteration + 1,
        skipped=purge_skipped(skipped, now, limits),
    )
    return new_state, plaintext
