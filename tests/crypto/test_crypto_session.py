"""The session API, the ciphertext format and the version 1 record fixtures."""

from __future__ import annotations

import inspect

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import baat.crypto as bc
from baat.crypto import (
    MESSAGE_TYPE_NORMAL,
    MESSAGE_TYPE_PREKEY,
    CryptoError,
    DecryptionError,
    DuplicateMessage,
    Header,
    IdentityKeyPair,
    InvalidState,
    MalformedMessage,
    PrivatePrekey,
    RatchetState,
    SessionMismatch,
    SessionState,
    UnknownPrekey,
    UnsupportedVersion,
    decrypt,
    encrypt,
    initiate_session,
    message_type,
    prekey_lookup,
    ratchet_decrypt,
    respond_to_initial,
)
from crypto.crypto_helpers import NOW, Device, load_vector, session_pair


def test_full_flow_and_prekey_deletion() -> None:
    alice_dev, bob_dev = Device(), Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), NOW)
    assert alice.initiator and alice.pending_initial is not None
    assert alice.remote_identity_key == bob_dev.identity.identity_key
    alice, first = encrypt(alice, b"hi bob", NOW)
    assert message_type(first) == MESSAGE_TYPE_PREKEY
    bob, plaintext, used = respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
    assert plaintext == b"hi bob"
    assert bob.remote_identity_key == alice_dev.identity.identity_key
    assert not bob.initiator and bob.associated_data == alice.associated_data
    bob_dev.delete(used)
    # A later copy of the same first message goes to the existing session, not to PQXDH:
    # the one-time prekeys it names are gone.
    with pytest.raises(UnknownPrekey):
        respond_to_initial(bob_dev.identity, bob_dev.lookup, first, NOW)
    with pytest.raises(DuplicateMessage):
        decrypt(bob, first, NOW)
    bob, reply = encrypt(bob, b"hi alice", NOW)
    assert message_type(reply) == MESSAGE_TYPE_NORMAL
    alice, plaintext = decrypt(alice, reply, NOW)
    assert plaintext == b"hi alice" and alice.pending_initial is None


def test_message_sizes() -> None:
    alice, _ = session_pair()
    for size, expected in [
        (0, 2 + 41 + 16 + 32),
        (100, 2 + 41 + 112 + 32),
        (1024, 2 + 41 + 1040 + 32),
    ]:
        _, data = encrypt(alice, bytes(size), NOW)
        assert len(data) == expected


def test_prekey_message_for_other_session() -> None:
    alice, bob = session_pair()
    carol_dev, bob_dev = Device(), Device()
    carol = initiate_session(carol_dev.identity, bob_dev.bundle(), NOW)
    _, other = encrypt(carol, b"x", NOW)
    with pytest.raises(SessionMismatch):
        decrypt(bob, other, NOW)
    # A prekey message arriving at the initiator is always a new session.
    with pytest.raises(SessionMismatch):
        decrypt(alice, other, NOW)


def test_wrong_responder_cannot_open() -> None:
    alice_dev, bob_dev, eve_dev = Device(), Device(), Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), NOW)
    _, first = encrypt(alice, b"for bob only", NOW)
    # Eve holds Bob's prekeys but not his identity key: DH2 and AD differ.
    with pytest.raises(DecryptionError):
        respond_to_initial(eve_dev.identity, bob_dev.lookup, first, NOW)


def test_respond_rejects_normal_message() -> None:
    alice, _ = session_pair()
    _, normal = encrypt(alice, b"x", NOW)
    with pytest.raises(MalformedMessage):
        respond_to_initial(IdentityKeyPair.generate(), prekey_lookup([]), normal, NOW)


_ALICE, _BOB = Device(), Device()
_, _FIRST = encrypt(initiate_session(_ALICE.identity, _BOB.bundle(), NOW), b"hello", NOW)


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, 2000), xor=st.integers(1, 255))
def test_mutated_prekey_message(index: int, xor: int) -> None:
    data = bytearray(_FIRST)
    data[index % len(data)] ^= xor
    with pytest.raises(CryptoError):
        respond_to_initial(_BOB.identity, _BOB.lookup, bytes(data), NOW)


def test_message_type_errors() -> None:
    with pytest.raises(MalformedMessage):
        message_type(b"\x01")
    with pytest.raises(UnsupportedVersion):
        message_type(b"\x02\x01")
    with pytest.raises(MalformedMessage):
        message_type(b"\x01\x03")


def test_session_round_trip() -> None:
    alice, bob = session_pair()
    for session in (alice, bob):
        data = session.to_bytes()
        again = SessionState.from_bytes(data)
        assert again == session and again.to_bytes() == data
        assert session.ratchet.rk.hex() not in repr(session)
    _, data = encrypt(alice, b"after reload", NOW)
    _, plaintext = decrypt(SessionState.from_bytes(bob.to_bytes()), data, NOW)
    assert plaintext == b"after reload"


def test_session_bad_records() -> None:
    alice, _ = session_pair()
    with pytest.raises(InvalidState):
        SessionState.from_bytes(b"")
    raw = msgspec.msgpack.decode(alice.to_bytes())
    raw["version"] = 2
    with pytest.raises(InvalidState):
        SessionState.from_bytes(msgspec.msgpack.encode(raw))
    raw["version"] = 1
    raw["ratchet"]["version"] = 2
    with pytest.raises(InvalidState):
        SessionState.from_bytes(msgspec.msgpack.encode(raw))


def test_version_1_ratchet_fixture() -> None:
    fixture = load_vector("baat_v1_fixtures.json")["ratchet"]
    data = bytes.fromhex(fixture["state"])
    state = RatchetState.from_bytes(data)
    assert state.version == 1
    assert state.to_bytes() == data  # the encoding is stable
    assert len(state.skipped) == 1
    ad = bytes.fromhex(fixture["associated_data"])
    for message in fixture["messages"]:
        header = Header.decode(bytes.fromhex(message["header"]))
        state, plaintext = ratchet_decrypt(
            state, header, bytes.fromhex(message["ciphertext"]), ad, fixture["now"]
        )
        assert plaintext == bytes.fromhex(message["plaintext"])
    assert not state.skipped


def test_version_1_session_fixture() -> None:
    fixture = load_vector("baat_v1_fixtures.json")["session"]
    identity = IdentityKeyPair.from_bytes(bytes.fromhex(fixture["responder_identity"]))
    prekeys = [
        PrivatePrekey.from_bytes(bytes.fromhex(p)) for p in fixture["responder_private_prekeys"]
    ]
    assert all(p.to_bytes().hex() in fixture["responder_private_prekeys"] for p in prekeys)
    now = fixture["now"]
    # The stored first message still opens with the stored keys: PQXDH is unchanged.
    fresh, plaintext, used = respond_to_initial(
        identity, prekey_lookup(prekeys), bytes.fromhex(fixture["prekey_message"]), now
    )
    assert plaintext == bytes.fromhex(fixture["prekey_plaintext"])
    assert [list(slot) for slot in used.one_time()] == fixture["used_one_time"]
    # The stored session state loads, re-encodes identically and reads later messages.
    data = bytes.fromhex(fixture["responder_state"])
    session = SessionState.from_bytes(data)
    assert session.version == 1 and session.to_bytes() == data
    assert session.remote_identity == fresh.remote_identity
    for message in fixture["messages"]:
        session, plaintext = decrypt(session, bytes.fromhex(message["data"]), now)
        assert plaintext == bytes.fromhex(message["plaintext"])


def test_error_tree() -> None:
    names = [
        "InvalidKey",
        "InvalidSignature",
        "MalformedMessage",
        "UnsupportedVersion",
        "DecryptionError",
        "DuplicateMessage",
        "TooManySkipped",
        "UnknownPrekey",
        "SessionMismatch",
        "InvalidState",
    ]
    for name in names:
        assert issubclass(getattr(bc, name), CryptoError), name
    assert issubclass(bc.DuplicateMessage, DecryptionError)
    assert issubclass(bc.TooManySkipped, DecryptionError)
    assert issubclass(bc.UnsupportedVersion, MalformedMessage)
    assert issubclass(bc.InvalidSignature, ValueError)
    # The server imports this name from the private module too.
    from baat.crypto._signing import InvalidSignature

    assert InvalidSignature is bc.InvalidSignature


def test_public_api_documents_raises() -> None:
    functions = [getattr(bc, name) for name in bc.__all__]
    functions = [f for f in functions if inspect.isfunction(f)]
    assert len(functions) > 15
    for function in functions:
        assert function.__doc__ and "Raises" in function.__doc__, function.__name__
