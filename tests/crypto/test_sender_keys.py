"""Sender keys: delivery in any order, duplicates, tampering, rotation, limits, records."""

from __future__ import annotations

import os

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.crypto import (
    DEFAULT_SENDER_KEY_LIMITS,
    MESSAGE_TYPE_SENDER_KEY,
    CryptoError,
    DecryptionError,
    DuplicateMessage,
    InvalidKey,
    InvalidState,
    MalformedMessage,
    RatchetLimits,
    SenderKeyDistribution,
    SenderKeyState,
    TooManySkipped,
    UnknownSenderKey,
    UnsupportedVersion,
    decrypt_group,
    encrypt_group,
    group_message_info,
    new_sender_key,
    process_distribution,
    rotate_sender_key,
)
from baat.crypto.sender_keys import _SigningKey
from crypto.crypto_helpers import NOW

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GROUP = bytes(range(16))


def pair(group: bytes = GROUP) -> tuple[SenderKeyState, SenderKeyState]:
    """A sender's state and a receiver's copy made from its distribution."""
    sender = new_sender_key(group, NOW)
    wire = sender.distribution().encode()
    return sender, process_distribution(SenderKeyDistribution.decode(wire), NOW)


def send_many(sender: SenderKeyState, count: int) -> tuple[SenderKeyState, list[bytes]]:
    out = []
    for i in range(count):
        sender, data = encrypt_group(sender, b"message %d" % i, NOW)
        out.append(data)
    return sender, out


def test_round_trip_and_sizes() -> None:
    sender, receiver = pair()
    assert sender.is_sender and not receiver.is_sender
    assert receiver.signing_private is None
    sender, data = encrypt_group(sender, b"x" * 100, NOW)
    # 26-byte header, 112 bytes of CBC, 32-byte HMAC tag, 64-byte signature
    assert len(data) == 26 + 112 + 32 + 64
    assert data[:2] == bytes([1, MESSAGE_TYPE_SENDER_KEY])
    info = group_message_info(data)
    assert (info.group_id, info.key_id, info.iteration) == (GROUP, sender.key_id, 0)
    receiver, plaintext = decrypt_group(receiver, data, NOW)
    assert plaintext == b"x" * 100
    assert receiver.iteration == sender.iteration == 1
    assert receiver.chain_key == sender.chain_key


def test_distribution_encoding() -> None:
    sender, _ = pair()
    dist = sender.distribution()
    wire = dist.encode()
    assert len(wire) == 90
    assert wire[:2] == b"\x01\x04"
    assert SenderKeyDistribution.decode(wire) == dist
    with pytest.raises(UnsupportedVersion):
        SenderKeyDistribution.decode(b"\x02" + wire[1:])
    with pytest.raises(MalformedMessage):
        SenderKeyDistribution.decode(wire[:-1])
    with pytest.raises(MalformedMessage):
        SenderKeyDistribution.decode(wire[:1] + b"\x03" + wire[2:])


def test_new_member_cannot_read_earlier_messages() -> None:
    sender, early = pair()
    sender, sent = send_many(sender, 3)
    late = process_distribution(sender.distribution(), NOW)
    assert late.iteration == 3
    for data in sent:
        with pytest.raises(DuplicateMessage):
            decrypt_group(late, data, NOW)
    sender, data = encrypt_group(sender, b"for everyone", NOW)
    assert decrypt_group(late, data, NOW)[1] == b"for everyone"
    assert decrypt_group(early, data, NOW)[1] == b"for everyone"


@SETTINGS
@given(st.data())
def test_any_delivery_order(data: st.DataObject) -> None:
    """Reordered, dropped, duplicated and late messages, with one or two receivers."""
    sender, first = pair()
    receivers = [first, process_distribution(sender.distribution(), NOW)]
    count = data.draw(st.integers(1, 25), label="count")
    sender, sent = send_many(sender, count)
    for r in range(len(receivers)):
        fates = data.draw(
            st.lists(
                st.sampled_from(["now", "now", "drop", "late", "dup"]),
                min_size=count,
                max_size=count,
            ),
            label=f"fates {r}",
        )
        now = [i for i, f in enumerate(fates) if f in ("now", "dup")]
        late = [i for i, f in enumerate(fates) if f == "late"]
        order = data.draw(st.permutations(now), label=f"order {r}")
        order += data.draw(st.permutations(late), label=f"late order {r}")
        state = receivers[r]
        for i in order:
            state, plaintext = decrypt_group(state, sent[i], NOW)
            assert plaintext == b"message %d" % i
            if fates[i] == "dup":
                before = state.to_bytes()
                with pytest.raises(DuplicateMessage):
                    decrypt_group(state, sent[i], NOW)
                assert state.to_bytes() == before
        assert len(state.skipped) == sum(1 for i in range(max(order, default=-1)) if i not in order)
        for i in order:  # everything delivered is a duplicate afterwards
            with pytest.raises(DuplicateMessage):
                decrypt_group(state, sent[i], NOW)
        receivers[r] = state


@SETTINGS
@given(st.data())
def test_tampering_is_rejected_and_state_unchanged(data: st.DataObject) -> None:
    sender, receiver = pair()
    sender, sent = send_many(sender, 3)
    receiver, _ = decrypt_group(receiver, sent[0], NOW)  # some state to keep intact
    target = data.draw(st.sampled_from(sent[1:]), label="target")
    position = data.draw(st.integers(0, len(target) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="flip")
    mutated = bytearray(target)
    mutated[position] ^= flip
    before = receiver.to_bytes()
    with pytest.raises(CryptoError) as caught:
        decrypt_group(receiver, bytes(mutated), NOW)
    assert isinstance(caught.value, DecryptionError | MalformedMessage)
    assert receiver.to_bytes() == before
    for data_ in sent[1:]:  # the genuine messages still decrypt
        receiver, _ = decrypt_group(receiver, data_, NOW)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected(blob: bytes) -> None:
    _, receiver = pair()
    with pytest.raises(CryptoError):
        decrypt_group(receiver, blob, NOW)


def test_member_with_the_chain_key_cannot_forge() -> None:
    """Every member knows the chain key; only the signature proves who wrote a message."""
    sender, receiver = pair()
    forger_key = _SigningKey(Ed25519PrivateKey.generate())
    forger = msgspec.structs.replace(receiver, signing_private=forger_key)
    _, forged = encrypt_group(forger, b"I am the sender", NOW)
    with pytest.raises(DecryptionError, match="signature"):
        decrypt_group(receiver, forged, NOW)
    # Signature stripped and replaced by the sender's signature over another message.
    sender, genuine = encrypt_group(sender, b"hello", NOW)
    spliced = forged[:-64] + genuine[-64:]
    with pytest.raises(DecryptionError):
        decrypt_group(receiver, spliced, NOW)
    assert decrypt_group(receiver, genuine, NOW)[1] == b"hello"


def test_removed_member_cannot_read_after_rotation() -> None:
    alice, bob = pair()
    carol = process_distribution(alice.distribution(), NOW)
    alice, before = encrypt_group(alice, b"before removal", NOW)
    bob, _ = decrypt_group(bob, before, NOW)
    carol, _ = decrypt_group(carol, before, NOW)

    # Carol is removed: Alice rotates and sends the new key to Bob only.
    alice = rotate_sender_key(alice, NOW + 1)
    bob_new = process_distribution(alice.distribution(), NOW + 1)
    alice, after = encrypt_group(alice, b"after removal", NOW + 1)
    assert group_message_info(after).key_id != carol.key_id
    assert decrypt_group(bob_new, after, NOW + 1)[1] == b"after removal"

    with pytest.raises(UnknownSenderKey):
        decrypt_group(carol, after, NOW + 1)
    # Relabelling the message with the old key id breaks the signature ...
    relabelled = after[:18] + carol.key_id.to_bytes(4, "big") + after[22:]
    with pytest.raises(DecryptionError):
        decrypt_group(carol, relabelled, NOW + 1)
    # ... and even with the new public values, the old chain key opens nothing.
    guess = msgspec.structs.replace(
        carol, key_id=alice.key_id, signing_public=alice.signing_public, iteration=0
    )
    with pytest.raises(DecryptionError):
        decrypt_group(guess, after, NOW + 1)
    # Bob keeps the old state for late messages from before the rotation.
    with pytest.raises(DuplicateMessage):
        decrypt_group(bob, before, NOW + 1)


def test_rotation_gives_a_new_id_and_new_keys() -> None:
    alice, _ = pair()
    rotated = rotate_sender_key(alice, NOW)
    assert rotated.key_id != alice.key_id
    assert rotated.chain_key != alice.chain_key
    assert rotated.signing_public != alice.signing_public
    assert rotated.group_id == alice.group_id and rotated.iteration == 0
    with pytest.raises(InvalidState):
        rotate_sender_key(alice.receiver_copy(), NOW)
    again = new_sender_key(GROUP, NOW, avoid_key_id=alice.key_id)
    assert again.key_id != alice.key_id


def test_receiver_cannot_encrypt() -> None:
    _, receiver = pair()
    with pytest.raises(InvalidState):
        encrypt_group(receiver, b"x", NOW)


def test_exhausted_chain() -> None:
    sender, _ = pair()
    with pytest.raises(InvalidState, match="exhausted"):
        encrypt_group(msgspec.structs.replace(sender, iteration=2**32), b"x", NOW)


def test_repeated_distribution_never_rolls_back() -> None:
    sender, receiver = pair()
    dist = sender.distribution()
    sender, sent = send_many(sender, 2)
    receiver, _ = decrypt_group(receiver, sent[1], NOW)
    assert process_distribution(dist, NOW, existing=receiver) is receiver
    assert process_distribution(sender.distribution(), NOW, existing=receiver) is receiver
    with pytest.raises(DuplicateMessage):
        decrypt_group(receiver, sent[1], NOW)
    impostor = msgspec.structs.replace(dist, signing_public=os.urandom(32))
    with pytest.raises(InvalidState):
        process_distribution(impostor, NOW, existing=receiver)
    other_chain = msgspec.structs.replace(dist, chain_key=os.urandom(32))
    with pytest.raises(InvalidState):
        process_distribution(other_chain, NOW, existing=process_distribution(dist, NOW))
    other_group = msgspec.structs.replace(dist, group_id=bytes(16))
    assert process_distribution(other_group, NOW, existing=receiver).group_id == bytes(16)


def test_distribution_validation() -> None:
    sender, _ = pair()
    dist = sender.distribution()
    with pytest.raises(InvalidKey):
        process_distribution(msgspec.structs.replace(dist, signing_public=b"short"), NOW)
    with pytest.raises(InvalidState):
        process_distribution(msgspec.structs.replace(dist, chain_key=b"short"), NOW)
    with pytest.raises(InvalidState):
        process_distribution(msgspec.structs.replace(dist, group_id=b"short"), NOW)
    with pytest.raises(InvalidState):
        new_sender_key(b"short", NOW)


def test_message_for_another_group_or_key() -> None:
    sender, receiver = pair()
    other, _ = pair(bytes(16))
    _, data = encrypt_group(other, b"x", NOW)
    with pytest.raises(UnknownSenderKey):
        decrypt_group(receiver, data, NOW)
    _, data = encrypt_group(rotate_sender_key(sender, NOW), b"x", NOW)
    with pytest.raises(UnknownSenderKey):
        decrypt_group(receiver, data, NOW)


def test_too_many_skipped() -> None:
    limits = RatchetLimits(max_skip=5, max_skipped_keys=100, max_skipped_age=100)
    sender, receiver = pair()
    sender, sent = send_many(sender, 8)
    with pytest.raises(TooManySkipped):
        decrypt_group(receiver, sent[6], NOW, limits)
    receiver, _ = decrypt_group(receiver, sent[5], NOW, limits)
    assert sorted(receiver.skipped) == [0, 1, 2, 3, 4]
    assert DEFAULT_SENDER_KEY_LIMITS.max_skip == 25_000


def test_skipped_keys_are_bounded_and_expire() -> None:
    limits = RatchetLimits(max_skip=50, max_skipped_keys=3, max_skipped_age=100)
    sender, receiver = pair()
    sender, sent = send_many(sender, 12)
    receiver, _ = decrypt_group(receiver, sent[5], NOW, limits)
    assert list(receiver.skipped) == [2, 3, 4]  # the oldest were evicted at once
    with pytest.raises(DuplicateMessage):
        decrypt_group(receiver, sent[0], NOW, limits)
    receiver, _ = decrypt_group(receiver, sent[9], NOW + 50, limits)  # skips 6, 7, 8
    assert list(receiver.skipped) == [6, 7, 8]
    # Past the age limit the key is refused, then purged by the next operation.
    with pytest.raises(DuplicateMessage, match="expired"):
        decrypt_group(receiver, sent[6], NOW + 151, limits)
    receiver, _ = decrypt_group(receiver, sent[7], NOW + 140, limits)
    assert list(receiver.skipped) == [6, 8]
    receiver, _ = decrypt_group(receiver, sent[10], NOW + 151, limits)
    assert receiver.skipped == {}
    sender = msgspec.structs.replace(sender, skipped={1: (bytes(32), NOW)})
    sender, _ = encrypt_group(sender, b"x", NOW + 101, limits)
    assert sender.skipped == {}


def test_records_round_trip() -> None:
    sender, receiver = pair()
    sender, sent = send_many(sender, 4)
    receiver, _ = decrypt_group(receiver, sent[2], NOW)
    for state in (sender, receiver, sender.receiver_copy()):
        blob = state.to_bytes()
        loaded = SenderKeyState.from_bytes(blob)
        assert loaded == state
        assert loaded.to_bytes() == blob
    loaded = SenderKeyState.from_bytes(sender.to_bytes())
    loaded, data = encrypt_group(loaded, b"after reload", NOW)
    assert decrypt_group(receiver, data, NOW)[1] == b"after reload"
    assert "chain" not in repr(sender) and sender.chain_key.hex() not in repr(sender)


def test_corrupt_records() -> None:
    sender, _ = pair()
    for bad in (b"", b"\x00", b"not msgpack", msgspec.msgpack.encode({"version": 2})):
        with pytest.raises(InvalidState):
            SenderKeyState.from_bytes(bad)
    with pytest.raises(InvalidState):
        SenderKeyState.from_bytes(msgspec.msgpack.encode({"version": 1}))
    wrong_pair = msgspec.structs.replace(sender, signing_public=os.urandom(32))
    with pytest.raises(InvalidState, match="pair"):
        SenderKeyState.from_bytes(wrong_pair.to_bytes())
    short = msgspec.structs.replace(sender, chain_key=b"short")
    with pytest.raises(InvalidState):
        SenderKeyState.from_bytes(short.to_bytes())
    assert sender.signing_private is not None
    assert sender.signing_private == SenderKeyState.from_bytes(sender.to_bytes()).signing_private
