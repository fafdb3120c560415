"""Double Ratchet properties: secrecy over time, tamper evidence, bounded skipped keys."""

from __future__ import annotations

import contextlib

import msgspec
import pytest

from baat.crypto import (
    DecryptionError,
    DuplicateMessage,
    Header,
    InvalidState,
    MalformedMessage,
    RatchetLimits,
    RatchetState,
    TooManySkipped,
    UnsupportedVersion,
    init_responder,
    ratchet_decrypt,
    ratchet_encrypt,
)
from baat.crypto._primitives import X25519KeyPair
from crypto.crypto_helpers import AD, NOW, ratchet_pair, receive, send


def test_alternating_conversation() -> None:
    alice, bob = ratchet_pair()
    for i in range(6):
        bob, msg = send(bob, b"b%d" % i)
        alice, pt = receive(alice, msg)
        assert pt == b"b%d" % i
        alice, msg = send(alice, b"a%d" % i)
        bob, pt = receive(bob, msg)
        assert pt == b"a%d" % i


def test_new_ratchet_key_every_turn() -> None:
    alice, bob = ratchet_pair()
    keys = set()
    for _ in range(4):
        bob, msg = send(bob, b"x")
        keys.add(msg[0].dh)
        alice, _ = receive(alice, msg)
        alice, msg = send(alice, b"y")
        keys.add(msg[0].dh)
        bob, _ = receive(bob, msg)
    assert len(keys) == 8


def test_forward_secrecy_consumed_keys_are_gone() -> None:
    """Stealing the receiver's current state does not reveal messages it already read."""
    alice, bob = ratchet_pair()
    sent = []
    for i in range(3):
        alice, msg = send(alice, b"secret %d" % i)
        sent.append(msg)
    for msg in sent:
        bob, _ = receive(bob, msg)
    stolen = RatchetState.from_bytes(bob.to_bytes())
    for msg in sent:
        with pytest.raises(DuplicateMessage):
            receive(stolen, msg)
    # After a DH step the old receiving chain key is gone from the state entirely.
    bob, reply = send(bob, b"r")
    alice, _ = receive(alice, reply)
    alice, msg = send(alice, b"next")
    bob, _ = receive(bob, msg)
    stolen = RatchetState.from_bytes(bob.to_bytes())
    for msg in sent:
        with pytest.raises(DecryptionError):
            receive(stolen, msg)


def test_old_state_cannot_decrypt_after_dh_step() -> None:
    """Post-compromise security: a copy of Alice's state stops working once she ratchets."""
    alice, bob = ratchet_pair()
    stolen = RatchetState.from_bytes(alice.to_bytes())
    bob, b1 = send(bob, b"b1")
    # The compromise is real: the stolen state reads Bob's next message...
    _, pt = receive(stolen, b1)
    assert pt == b"b1"
    # ...but Alice then ratchets with a fresh key the attacker never saw.
    alice, _ = receive(alice, b1)
    alice, a1 = send(alice, b"a1")
    bob, _ = receive(bob, a1)
    bob, b2 = send(bob, b"b2")
    alice, pt = receive(alice, b2)
    assert pt == b"b2"
    attacker = stolen
    for msg in (b1, a1):  # the attacker follows every message it intercepts
        with contextlib.suppress(DecryptionError):
            attacker, _ = receive(attacker, msg)
    with pytest.raises(DecryptionError):
        receive(attacker, b2)
    with pytest.raises(DecryptionError):
        receive(stolen, b2)


def test_old_state_cannot_decrypt_newer_messages_in_same_direction() -> None:
    alice, bob = ratchet_pair()
    old_alice = alice
    alice, m1 = send(alice, b"m1")
    bob, _ = receive(bob, m1)
    # An earlier sender state has no way to read later receiver-side messages either.
    bob, r = send(bob, b"r")
    alice, _ = receive(alice, r)
    alice, m2 = send(alice, b"m2")
    with pytest.raises(DecryptionError):
        receive(old_alice, m2)


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("field", ["dh", "pn", "n", "ciphertext", "tag", "ad"])
def test_tampering_rejected_state_unchanged(field: str) -> None:
    alice, bob = ratchet_pair()
    alice, (header, ct) = send(alice, b"attack at dawn")
    before = bob.to_bytes()
    ad = AD
    if field == "dh":
        header = msgspec.structs.replace(header, dh=_flip(header.dh, 5))
    elif field == "pn":
        header = msgspec.structs.replace(header, pn=header.pn + 1)
    elif field == "n":
        header = msgspec.structs.replace(header, n=header.n + 3)
    elif field == "ciphertext":
        ct = _flip(ct, 0)
    elif field == "tag":
        ct = _flip(ct, len(ct) - 1)
    else:
        ad = _flip(AD, 3)
    with pytest.raises(DecryptionError):
        ratchet_decrypt(bob, header, ct, ad, NOW)
    assert bob.to_bytes() == before
    bob, pt = ratchet_decrypt(bob, *send(alice, b"still fine")[1], AD, NOW)
    assert pt == b"still fine"


def test_failed_step_keeps_skipped_keys() -> None:
    alice, bob = ratchet_pair()
    alice, m1 = send(alice, b"1")
    alice, m2 = send(alice, b"2")
    bob, _ = receive(bob, m2)
    assert len(bob.skipped) == 1
    before = bob.to_bytes()
    with pytest.raises(DecryptionError):
        receive(bob, (m1[0], _flip(m1[1], 2)))
    assert bob.to_bytes() == before
    bob, pt = receive(bob, m1)
    assert pt == b"1" and not bob.skipped


def test_too_many_skipped_in_one_chain() -> None:
    limits = RatchetLimits(max_skip=5)
    alice, bob = ratchet_pair()
    msgs = []
    for i in range(8):
        alice, msg = send(alice, b"%d" % i)
        msgs.append(msg)
    before = bob.to_bytes()
    with pytest.raises(TooManySkipped):
        ratchet_decrypt(bob, *msgs[6], AD, NOW, limits)
    assert bob.to_bytes() == before
    bob, pt = ratchet_decrypt(bob, *msgs[5], AD, NOW, limits)
    assert pt == b"5" and len(bob.skipped) == 5


def test_too_many_skipped_in_previous_chain() -> None:
    limits = RatchetLimits(max_skip=3)
    alice, bob = ratchet_pair()
    bob, r = send(bob, b"r")
    for i in range(5):
        bob, _ = send(bob, b"lost %d" % i)
    alice, _ = receive(alice, r)
    alice, a = send(alice, b"a")
    bob, _ = receive(bob, a)
    bob, after = send(bob, b"after")  # pn = 6, alice has read 1
    with pytest.raises(TooManySkipped):
        ratchet_decrypt(alice, *after, AD, NOW, limits)


def test_total_skipped_keys_capped_oldest_evicted() -> None:
    limits = RatchetLimits(max_skip=10, max_skipped_keys=6)
    alice, bob = ratchet_pair()
    first_round = []
    for i in range(5):
        alice, msg = send(alice, b"r1-%d" % i)
        first_round.append(msg)
    bob, _ = ratchet_decrypt(bob, *first_round[-1], AD, NOW, limits)  # skips 4
    assert len(bob.skipped) == 4
    second_round = []
    for i in range(5):
        alice, msg = send(alice, b"r2-%d" % i)
        second_round.append(msg)
    bob, _ = ratchet_decrypt(bob, *second_round[-1], AD, NOW + 1, limits)  # skips 4 more
    assert len(bob.skipped) == 6
    # The two oldest keys were evicted...
    for msg in first_round[:2]:
        with pytest.raises(DuplicateMessage):
            ratchet_decrypt(bob, *msg, AD, NOW + 2, limits)
    # ...the rest still open.
    for msg in first_round[2:4] + second_round[:4]:
        bob, _ = ratchet_decrypt(bob, *msg, AD, NOW + 2, limits)
    assert not bob.skipped


def test_skipped_keys_expire() -> None:
    limits = RatchetLimits(max_skipped_age=100)
    alice, bob = ratchet_pair()
    alice, early = send(alice, b"early")
    alice, late = send(alice, b"late")
    bob, _ = ratchet_decrypt(bob, *late, AD, NOW, limits)
    assert len(bob.skipped) == 1
    # Within the age limit the key still works.
    _, pt = ratchet_decrypt(bob, *early, AD, NOW + 100, limits)
    assert pt == b"early"
    # Beyond it the message can no longer be read...
    with pytest.raises(DuplicateMessage):
        ratchet_decrypt(bob, *early, AD, NOW + 101, limits)
    # ...and any later operation drops the expired key from the state.
    bob, _msg = send(bob, b"x", now=NOW + 101, limits=limits)
    assert not bob.skipped


def test_expiry_on_decrypt_path() -> None:
    limits = RatchetLimits(max_skipped_age=10)
    alice, bob = ratchet_pair()
    alice, m0 = send(alice, b"0")
    alice, m1 = send(alice, b"1")
    alice, m2 = send(alice, b"2")
    bob, _ = ratchet_decrypt(bob, *m1, AD, NOW, limits)
    bob, _ = ratchet_decrypt(bob, *m2, AD, NOW + 50, limits)
    assert not bob.skipped
    with pytest.raises(DuplicateMessage):
        ratchet_decrypt(bob, *m0, AD, NOW + 50, limits)


def test_replay_from_finished_chain_is_duplicate() -> None:
    alice, bob = ratchet_pair()
    alice, old = send(alice, b"old")
    bob, _ = receive(bob, old)
    bob, r = send(bob, b"r")
    alice, _ = receive(alice, r)
    alice, new = send(alice, b"new")
    bob, _ = receive(bob, new)
    before = bob.to_bytes()
    with pytest.raises(DuplicateMessage):
        receive(bob, old)
    assert bob.to_bytes() == before


def test_responder_cannot_send_before_receiving() -> None:
    state = init_responder(bytes(32), X25519KeyPair.generate())
    with pytest.raises(InvalidState):
        ratchet_encrypt(state, b"x", AD, NOW)


def test_bad_ratchet_key_in_header() -> None:
    alice, bob = ratchet_pair()
    alice, (header, ct) = send(alice, b"x")
    bob2, _ = receive(bob, (header, ct))
    bob2, r = send(bob2, b"r")
    low_order = msgspec.structs.replace(r[0], dh=bytes(32))
    with pytest.raises(DecryptionError):
        ratchet_decrypt(alice, low_order, r[1], AD, NOW)
    short = msgspec.structs.replace(r[0], dh=b"\x01" * 31)
    with pytest.raises(MalformedMessage):
        ratchet_decrypt(alice, short, r[1], AD, NOW)
    huge = msgspec.structs.replace(r[0], n=2**32)
    with pytest.raises(MalformedMessage):
        ratchet_decrypt(alice, huge, r[1], AD, NOW)


def test_header_encoding() -> None:
    header = Header(b"\x07" * 32, 3, 9)
    data = header.encode()
    assert len(data) == 41 and data[0] == 1
    assert data[33:] == b"\x00\x00\x00\x03\x00\x00\x00\x09"
    assert Header.decode(data) == header
    with pytest.raises(UnsupportedVersion):
        Header.decode(b"\x02" + data[1:])
    with pytest.raises(MalformedMessage):
        Header.decode(data[:-1])


def test_state_round_trip_and_repr() -> None:
    alice, bob = ratchet_pair()
    alice, _ = send(alice, b"a")
    alice, _ = send(alice, b"b")
    alice, msg3 = send(alice, b"c")
    bob, _ = receive(bob, msg3)
    assert bob.skipped
    for state in (alice, bob):
        data = state.to_bytes()
        again = RatchetState.from_bytes(data)
        assert again == state
        assert again.to_bytes() == data
        assert state.rk.hex() not in repr(state)
    with pytest.raises(InvalidState):
        RatchetState.from_bytes(b"junk")
    with pytest.raises(InvalidState):
        RatchetState.from_bytes(msgspec.msgpack.encode({"version": 2}))
    with pytest.raises(InvalidState):
        RatchetState.from_bytes(msgspec.msgpack.encode({"version": 1, "dhs": b"short"}))


def test_encrypt_does_not_touch_input_state() -> None:
    alice, _ = ratchet_pair()
    before = alice.to_bytes()
    send(alice, b"one")
    send(alice, b"two")
    assert alice.to_bytes() == before
