"""Several sessions per peer device: Sesame-style session records (docs/CRYPTO.md §13).

Signal's Sesame specification ("Session management", section 3) keeps, for each peer
device, one *active* session used to send and a list of *inactive* ones still accepted for
receiving. Baat stores one :class:`SessionRecord` per peer device: ``active`` and up to
:data:`MAX_INACTIVE` inactive sessions, most recently active first.

Receiving (:func:`record_decrypt`):

1. A PREKEY message whose base key names a session we hold decrypts with that session
   (later copies of the initial message, PQXDH section 3.3).
2. A PREKEY message for a new key agreement creates a session (``respond_to_initial``);
   nothing is deleted: the previous active session becomes inactive, or stays active by
   the crossing rule below.
3. A NORMAL message is tried on the sessions whose receiving chain knows its ratchet key,
   then on the active session, then on the inactive ones, most recent first; the first
   that authenticates wins. Every attempt runs on a copy (the functions are pure), so a
   failed try changes nothing.

Which session is active (the rule both sides apply, so that they converge):

* A session we initiate becomes active at once.
* A session that just decrypted a message becomes active (Sesame: "the peer is sending on
  it, so answer on it"), **except** while our active session is our own initiation that
  the peer has not answered yet (``pending_initial``) and the other session is one the
  peer initiated: then the two initiations crossed, and the one with the lower base key
  (the initiator's PQXDH ephemeral key, which both sides know for both sessions) wins on
  both sides. A pending initiation also stays active against older sessions (ours, or the
  peer's created before it), so that a late message on an old session cannot pull us away
  from a fresh start.

Two first messages that cross therefore end, on both devices, on the session with the
lower base key, and every message of either session still decrypts because the loser is
kept as an inactive session.

Pure: records in, records out; the caller stores the returned record with the message, in
one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from baat.crypto import _wire
from baat.crypto._codec import _PROBE, decode_record, encode_record
from baat.crypto._errors import (
    DecryptionError,
    DuplicateMessage,
    InvalidState,
    MalformedMessage,
    SessionMismatch,
    TooManySkipped,
)
from baat.crypto.keys import IdentityKeyPair, PrekeyLookup
from baat.crypto.pqxdh import UsedPrekeys
from baat.crypto.ratchet import DEFAULT_LIMITS, RatchetLimits
from baat.crypto.session import SessionState, decrypt, encrypt, respond_to_initial

__all__ = [
    "MAX_INACTIVE",
    "RecordDecryption",
    "SessionRecord",
    "add_session",
    "record_decrypt",
    "record_encrypt",
]

MAX_INACTIVE: Final = 40
"""Inactive sessions kept per peer device; the least recently active is dropped beyond."""
# Version 1 of the stored blob was a bare SessionState (one session per device); a record
# starts at 2 so that an old blob is recognised and becomes the active session.
_RECORD_VERSION: Final = 2
_LEGACY_SESSION_VERSION: Final = 1


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The sessions with one peer device: the one we send on and the ones we still accept."""

    version: int = _RECORD_VERSION
    active: SessionState | None = None
    inactive: tuple[SessionState, ...] = ()
    """Most recently active first; at most :data:`MAX_INACTIVE`."""

    def sessions(self) -> Iterator[SessionState]:
        """The active session (if any) then the inactive ones. Raises: nothing."""
        if self.active is not None:
            yield self.active
        yield from self.inactive

    def to_bytes(self) -> bytes:
        """MessagePack, ``version`` first; contains secrets. Raises: nothing."""
        return encode_record(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionRecord:
        """Inverse of :meth:`to_bytes`; a version-1 blob (one :class:`SessionState`) becomes
        a record whose active session it is.

        Raises:
            InvalidState: corrupt bytes or an unknown version.
        """
        try:
            version = _PROBE.decode(data).version
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            raise InvalidState("not a session record") from exc
        if version == _LEGACY_SESSION_VERSION:
            return cls(active=SessionState.from_bytes(data))
        return decode_record(data, cls, _RECORD_VERSION)

    def __repr__(self) -> str:
        return f"SessionRecord(active={self.active!r}, inactive={len(self.inactive)})"


class RecordDecryption(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`record_decrypt` returns: store ``record``, show ``plaintext``."""

    record: SessionRecord
    plaintext: bytes
    session: SessionState
    """The session that decrypted the message (its ``remote_identity`` is the sender's)."""
    used: UsedPrekeys | None = None
    """Set when a new session was created: delete ``used.one_time()`` with the record."""


def add_session(record: SessionRecord | None, session: SessionState) -> SessionRecord:
    """``session`` (just initiated by us) becomes active; the previous active one is kept as
    the most recent inactive session. Raises: nothing."""
    if record is None:
        return SessionRecord(active=session)
    rest = [] if record.active is None else [record.active]
    rest += record.inactive
    return SessionRecord(active=session, inactive=tuple(rest[:MAX_INACTIVE]))


def record_encrypt(
    record: SessionRecord, plaintext: bytes, now: int, limits: RatchetLimits = DEFAULT_LIMITS
) -> tuple[SessionRecord, bytes]:
    """Encrypt on the active session.

    Raises:
        InvalidState: there is no active session, or its sending chain is exhausted.
    """
    if record.active is None:
        raise InvalidState("no active session")
    session, data = encrypt(record.active, plaintext, now, limits)
    return msgspec.structs.replace(record, active=session), data


def record_decrypt(
    record: SessionRecord | None,
    data: bytes,
    now: int,
    my_identity: IdentityKeyPair,
    lookup: PrekeyLookup,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> RecordDecryption:
    """Decrypt with the record's sessions, or start a new one from a PREKEY message.

    Raises:
        MalformedMessage: the bytes do not parse.
        UnsupportedVersion: unknown format or header version.
        DuplicateMessage: a session already decrypted this message (or its key expired).
        DecryptionError: no session authenticates it (including: no session at all and not
            a PREKEY message).
        InvalidSignature, UnknownPrekey, InvalidKey: a new PREKEY message cannot start a
            session (see :func:`~baat.crypto.respond_to_initial`).
    """
    parsed = _wire.parse(data)
    sessions = list(record.sessions()) if record is not None else []
    if parsed.initial is not None:
        base = parsed.initial.ephemeral_key
        for i, s in enumerate(sessions):
            if not s.initiator and s.base_key == base:
                try:
                    state, plaintext = decrypt(s, data, now, limits)
                except SessionMismatch:
                    continue  # same base key, other identity: not this session
                assert record is not None
                return RecordDecryption(
                    record=_chosen(record, state, i), plaintext=plaintext, session=state
                )
        state, plaintext, used = respond_to_initial(my_identity, lookup, data, now, limits)
        new = SessionRecord(active=state) if record is None else _activate(record, state, None)
        return RecordDecryption(record=new, plaintext=plaintext, session=state, used=used)
    if record is None or not sessions:
        raise DecryptionError("no session with this device and not a first message")
    duplicate: DuplicateMessage | None = None
    for i in _order(sessions, parsed.header.dh):
        try:
            state, plaintext = decrypt(sessions[i], data, now, limits)
        except DuplicateMessage as exc:
            duplicate = duplicate or exc
            continue
        except (DecryptionError, TooManySkipped, SessionMismatch, MalformedMessage):
            continue
        return RecordDecryption(
            record=_chosen(record, state, i), plaintext=plaintext, session=state
        )
    if duplicate is not None:
        raise duplicate
    raise DecryptionError(f"no session authenticates this message ({len(sessions)} tried)")


def _order(sessions: list[SessionState], dh: bytes) -> list[int]:
    """Sessions whose receiving side already knows ``dh`` first (no DH step needed), then
    the rest in record order (active, then most recently active)."""
    known = [
        i
        for i, s in enumerate(sessions)
        if s.ratchet.dhr == dh or dh in s.ratchet.previous_dhr or _has_skipped(s, dh)
    ]
    return known + [i for i in range(len(sessions)) if i not in known]


def _has_skipped(session: SessionState, dh: bytes) -> bool:
    return any(slot[:32] == dh for slot in session.ratchet.skipped)


def _chosen(record: SessionRecord, state: SessionState, index: int) -> SessionRecord:
    """``state`` (the new state of ``sessions()[index]``) decrypted a message."""
    if record.active is not None and index == 0:
        return msgspec.structs.replace(record, active=state)
    return _activate(record, state, index - (1 if record.active is not None else 0))


def _activate(
    record: SessionRecord, state: SessionState, inactive_index: int | None
) -> SessionRecord:
    """Make ``state`` active unless the crossing rule keeps the current active session; it
    leaves position ``inactive_index`` of the inactive list (None: a new session)."""
    rest = list(record.inactive)
    if inactive_index is not None:
        del rest[inactive_index]
    active = record.active
    if active is not None and _keeps(active, state, inactive_index is None):
        rest.insert(0, state)
        return msgspec.structs.replace(record, inactive=tuple(rest[:MAX_INACTIVE]))
    if active is not None:
        rest.insert(0, active)
    return msgspec.structs.replace(record, active=state, inactive=tuple(rest[:MAX_INACTIVE]))


def _keeps(active: SessionState, other: SessionState, new: bool) -> bool:
    """Whether our pending initiation ``active`` stays active against ``other`` (``new``:
    created by the message just received)."""
    if not active.initiator or active.pending_initial is None:
        return False
    if other.initiator:
        return True  # an older initiation of ours: the fresh one stands
    crossed = new or other.created_at >= active.created_at
    if not crossed:
        return True  # an older session of the peer's: the fresh start stands
    return active.base_key < other.base_key
