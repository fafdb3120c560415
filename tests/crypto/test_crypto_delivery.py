"""Property tests: any mix of reordered, dropped, duplicated, late and replayed messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.crypto import (
    CryptoError,
    DecryptionError,
    DuplicateMessage,
    RatchetState,
    SessionMismatch,
    decrypt,
    encrypt,
    initiate_session,
    respond_to_initial,
)
from crypto.crypto_helpers import NOW, Device, ratchet_pair, receive, send, session_pair

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Msg:
    to: int  # index of the receiving party
    header_and_ct: tuple[object, bytes]
    plaintext: bytes


@SETTINGS
@given(st.data())
def test_any_delivery_order(data: st.DataObject) -> None:
    parties: list[RatchetState] = list(ratchet_pair())  # 0 = Alice, 1 = Bob
    delivered: list[Msg] = []
    deferred: list[Msg] = []
    counter = 0

    def deliver(msg: Msg) -> None:
        state = parties[msg.to]
        parties[msg.to], plaintext = receive(state, msg.header_and_ct)  # type: ignore[arg-type]
        assert plaintext == msg.plaintext
        delivered.append(msg)

    def redeliver(msg: Msg) -> None:
        before = parties[msg.to].to_bytes()
        with pytest.raises(DuplicateMessage):
            receive(parties[msg.to], msg.header_and_ct)  # type: ignore[arg-type]
        assert parties[msg.to].to_bytes() == before

    for _ in range(data.draw(st.integers(1, 6), label="rounds")):
        sender = data.draw(st.integers(0, 1), label="sender")
        batch = []
        for _ in range(data.draw(st.integers(1, 4), label="count")):
            counter += 1
            plaintext = b"message %d" % counter
            parties[sender], sent = send(parties[sender], plaintext)
            batch.append(Msg(1 - sender, sent, plaintext))
        fates = data.draw(
            st.lists(
                st.sampled_from(["now", "now", "drop", "late", "dup"]),
                min_size=len(batch),
                max_size=len(batch),
            ),
            label="fates",
        )
        now_msgs = [m for m, f in zip(batch, fates, strict=True) if f in ("now", "dup")]
        dups = {id(m) for m, f in zip(batch, fates, strict=True) if f == "dup"}
        deferred += [m for m, f in zip(batch, fates, strict=True) if f == "late"]
        for msg in data.draw(st.permutations(now_msgs), label="order"):
            deliver(msg)
            if id(msg) in dups:
                redeliver(msg)

    for msg in data.draw(st.permutations(deferred), label="late order"):
        deliver(msg)
    for msg in delivered:  # replay everything
        redeliver(msg)


@SETTINGS
@given(st.data())
def test_first_messages_in_any_order(data: st.DataObject) -> None:
    """Alice repeats the initial message until Bob answers; Bob may get any copy first."""
    alice_dev, bob_dev = Device(), Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), NOW)
    first = []
    for i in range(data.draw(st.integers(1, 4), label="count")):
        alice, ct = encrypt(alice, b"hello %d" % i, NOW)
        first.append((ct, b"hello %d" % i))
    order = data.draw(st.permutations(first), label="order")
    bob, plaintext, used = respond_to_initial(bob_dev.identity, bob_dev.lookup, order[0][0], NOW)
    assert plaintext == order[0][1]
    bob_dev.delete(used)
    for ct, expected in order[1:]:
        bob, plaintext = decrypt(bob, ct, NOW)
        assert plaintext == expected
    for ct, _ in order:
        with pytest.raises(DuplicateMessage):
            decrypt(bob, ct, NOW)
    bob, reply = encrypt(bob, b"reply", NOW)
    alice, plaintext = decrypt(alice, reply, NOW)
    assert plaintext == b"reply" and alice.pending_initial is None
    alice, ct = encrypt(alice, b"normal", NOW)
    assert ct[1] == 1  # a normal message now
    bob, plaintext = decrypt(bob, ct, NOW)
    assert plaintext == b"normal"


_SESSIONS = session_pair()
_STRANGER = Device().identity


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_ciphertext_rejected(data: st.DataObject) -> None:
    alice, bob = _SESSIONS
    _, ct = encrypt(alice, b"the quick brown fox", NOW)
    mutated = bytearray(ct)
    for _ in range(data.draw(st.integers(1, 3), label="flips")):
        index = data.draw(st.integers(0, len(ct) - 1), label="index")
        mutated[index] ^= data.draw(st.integers(1, 255), label="xor")
    cut = data.draw(st.integers(0, len(ct) + 4), label="length")
    mutated = mutated[:cut] + bytes(max(0, cut - len(ct)))
    if bytes(mutated) == ct:
        return
    before = bob.to_bytes()
    with pytest.raises(CryptoError) as info:
        decrypt(bob, bytes(mutated), NOW)
    assert not isinstance(info.value, SessionMismatch)
    assert bob.to_bytes() == before


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_crypto_errors(data: bytes) -> None:
    _, bob = _SESSIONS
    with pytest.raises(CryptoError):
        decrypt(bob, data, NOW)
    with pytest.raises(CryptoError):
        respond_to_initial(_STRANGER, lambda kind, key_id: None, data, NOW)


def test_tampered_body_of_every_byte() -> None:
    alice, bob = _SESSIONS
    _, ct = encrypt(alice, b"x" * 40, NOW)
    before = bob.to_bytes()
    for index in range(2, len(ct)):
        mutated = bytearray(ct)
        mutated[index] ^= 0x80
        with pytest.raises(CryptoError) as info:
            decrypt(bob, bytes(mutated), NOW)
        if index > 2:  # past the header version byte
            assert isinstance(info.value, DecryptionError)
    assert bob.to_bytes() == before
