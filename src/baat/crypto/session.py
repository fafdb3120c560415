"""Sessions: PQXDH to start, the Double Ratchet after, and Baat's ciphertext format around both.

Initiator (Alice)::

    session = initiate_session(my_identity, bundle, now)
    session, data = encrypt(session, b"hi", now)   # a PREKEY message until Bob replies
    session, reply = decrypt(session, data_from_bob, now)

Responder (Bob)::

    session, plaintext, used = respond_to_initial(my_identity, lookup, data, now)
    delete_private_prekeys(used.one_time())
    session, data = encrypt(session, b"hello", now)

PQXDH section 3.3 has Alice send the initial message with every message until she receives
a response; Bob decrypts those later copies with the session he already has (:func:`decrypt`
accepts a PREKEY message whose ephemeral key and identity match the session). A PREKEY
message for another PQXDH run raises :class:`SessionMismatch`: hand it to
:func:`respond_to_initial`.

Every function returns a new :class:`SessionState` and leaves the one passed in as it was.
Persist the returned state before sending the ciphertext it came with.
"""

from __future__ import annotations

from typing import Final

import msgspec

from baat.crypto import _wire
from baat.crypto._codec import decode_record, encode_record
from baat.crypto._errors import InvalidState, MalformedMessage, SessionMismatch
from baat.crypto.keys import IdentityKeyPair, PrekeyLookup, PublicIdentity
from baat.crypto.pqxdh import PrekeyBundle, UsedPrekeys, pqxdh_initiate, pqxdh_respond
from baat.crypto.ratchet import (
    DEFAULT_LIMITS,
    RATCHET_STATE_VERSION,
    RatchetLimits,
    RatchetState,
    init_initiator,
    init_responder,
    ratchet_decrypt,
    ratchet_encrypt,
)

__all__ = [
    "SessionState",
    "decrypt",
    "encrypt",
    "initiate_session",
    "respond_to_initial",
]

_SESSION_VERSION: Final = 1


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """One device-to-device session: the ratchet plus what frames and checks its messages."""

    version: int = _SESSION_VERSION
    ratchet: RatchetState
    initiator: bool
    """True on the side that ran :func:`initiate_session`."""
    local_identity_key: bytes
    """Our Ed25519 identity key."""
    remote_identity: PublicIdentity
    """The peer's identity; compare ``remote_identity.identity_key`` with what you trust."""
    associated_data: bytes
    """AD = Encode(IKA) || Encode(IKB) from PQXDH, prefixed to every header as AD."""
    base_key: bytes
    """Alice's PQXDH ephemeral key: names the key agreement this session came from."""
    pending_initial: bytes | None = None
    """Alice only: the encoded initial message, sent with every message until a reply."""
    created_at: int = 0

    @property
    def remote_identity_key(self) -> bytes:
        return self.remote_identity.identity_key

    def to_bytes(self) -> bytes:
        """MessagePack, ``version`` first; contains secrets. Raises: nothing."""
        return encode_record(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionState:
        """Inverse of :meth:`to_bytes`.

        Raises:
            InvalidState: corrupt bytes, or a session or ratchet version other than 1.
        """
        session = decode_record(data, cls, _SESSION_VERSION)
        if session.ratchet.version != RATCHET_STATE_VERSION:
            raise InvalidState(f"ratchet version {session.ratchet.version} is not supported")
        return session

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return (
            f"SessionState({role}, remote={self.remote_identity.identity_key.hex()}, "
            f"pending_initial={self.pending_initial is not None}, ratchet={self.ratchet!r})"
        )


def initiate_session(my_identity: IdentityKeyPair, bundle: PrekeyBundle, now: int) -> SessionState:
    """Start a session from a fetched prekey bundle (PQXDH section 3.3, Double Ratchet 3.3).

    Nothing is sent yet: the first :func:`encrypt` produces a PREKEY message.

    Raises:
        InvalidSignature: a signature, kind or size in the bundle is wrong.
        InvalidKey: a key in the bundle is unusable.
    """
    result = pqxdh_initiate(my_identity, bundle)
    ratchet = init_initiator(result.shared_secret, result.remote_ratchet_key)
    return SessionState(
        ratchet=ratchet,
        initiator=True,
        local_identity_key=my_identity.identity_key,
        remote_identity=bundle.identity,
        associated_data=result.associated_data,
        base_key=result.initial_message.ephemeral_key,
        pending_initial=result.initial_message.encode(),
        created_at=now,
    )


def respond_to_initial(
    my_identity: IdentityKeyPair,
    lookup: PrekeyLookup,
    data: bytes,
    now: int,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> tuple[SessionState, bytes, UsedPrekeys]:
    """Bob's side: a new session from a PREKEY message (PQXDH section 3.4).

    Delete the private keys of ``used.one_time()`` once the new state is stored.

    Raises:
        MalformedMessage: not a PREKEY message, or it does not parse.
        UnsupportedVersion: unknown format or header version.
        InvalidSignature: the sender's identity DH key signature does not verify.
        UnknownPrekey: ``lookup`` does not have a prekey the message names.
        InvalidKey: a key in the message or a stored prekey is unusable.
        DecryptionError: the first ratchet message does not authenticate (wrong keys, tampering).
    """
    parsed = _wire.parse(data)
    if parsed.initial is None:
        raise MalformedMessage("not a prekey message")
    result = pqxdh_respond(my_identity, lookup, parsed.initial)
    ratchet = init_responder(result.shared_secret, result.ratchet_key)
    ratchet, plaintext = ratchet_decrypt(
        ratchet, parsed.header, parsed.aead, result.associated_data, now, limits
    )
    session = SessionState(
        ratchet=ratchet,
        initiator=False,
        local_identity_key=my_identity.identity_key,
        remote_identity=parsed.initial.identity,
        associated_data=result.associated_data,
        base_key=parsed.initial.ephemeral_key,
        created_at=now,
    )
    return session, plaintext, result.used


def encrypt(
    session: SessionState, plaintext: bytes, now: int, limits: RatchetLimits = DEFAULT_LIMITS
) -> tuple[SessionState, bytes]:
    """Encrypt one message (Double Ratchet section 3.4) into Baat's ciphertext format.

    Raises:
        InvalidState: the sending chain is exhausted.
    """
    ratchet, header, aead = ratchet_encrypt(
        session.ratchet, plaintext, session.associated_data, now, limits
    )
    data = _wire.encode(header, aead, session.pending_initial)
    return msgspec.structs.replace(session, ratchet=ratchet), data


def decrypt(
    session: SessionState, data: bytes, now: int, limits: RatchetLimits = DEFAULT_LIMITS
) -> tuple[SessionState, bytes]:
    """Decrypt one message of this session (Double Ratchet section 3.5).

    Raises:
        MalformedMessage: the bytes do not parse.
        UnsupportedVersion: unknown format or header version.
        SessionMismatch: a PREKEY message from another key agreement.
        DuplicateMessage: already decrypted, or its key expired or was evicted.
        TooManySkipped: it would skip more message keys than ``limits`` allow.
        DecryptionError: it does not authenticate.
    """
    parsed = _wire.parse(data)
    initial = parsed.initial
    if initial is not None and (
        session.initiator
        or initial.ephemeral_key != session.base_key
        or initial.identity != session.remote_identity
    ):
        raise SessionMismatch("prekey message from another key agreement")
    ratchet, plaintext = ratchet_decrypt(
        session.ratchet, parsed.header, parsed.aead, session.associated_data, now, limits
    )
    # Any authenticated message from Bob is the response that ends the initial-message phase.
    return msgspec.structs.replace(session, ratchet=ratchet, pending_initial=None), plaintext
