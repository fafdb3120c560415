"""Safety numbers: both users compute the same number and the QR check is symmetric."""

from __future__ import annotations

import hashlib

import pytest

from baat.crypto import (
    IdentityKeyPair,
    InvalidKey,
    SafetyNumber,
    compare_safety_numbers,
    safety_number,
)

ALICE = IdentityKeyPair.generate().identity_key
BOB = IdentityKeyPair.generate().identity_key
ALICE_NUMBER = safety_number("alice", ALICE, "bob", BOB)
BOB_NUMBER = safety_number("bob", BOB, "alice", ALICE)


def test_symmetric() -> None:
    assert ALICE_NUMBER.digits() == BOB_NUMBER.digits()
    assert ALICE_NUMBER.display() == BOB_NUMBER.display()
    assert ALICE_NUMBER.local == BOB_NUMBER.remote
    assert compare_safety_numbers(ALICE_NUMBER.display(), BOB_NUMBER.digits())


def test_format() -> None:
    text = ALICE_NUMBER.display()
    groups = text.split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 and g.isdigit() for g in groups)
    assert len(ALICE_NUMBER.digits()) == 60


def test_qr_payload_round_trip() -> None:
    payload = BOB_NUMBER.qr_payload()
    assert len(payload) == 65 and payload[0] == 1
    assert ALICE_NUMBER.matches_scanned(payload)
    assert BOB_NUMBER.matches_scanned(ALICE_NUMBER.qr_payload())
    # Scanning your own screen is not a match, and nor is anything malformed.
    assert not ALICE_NUMBER.matches_scanned(ALICE_NUMBER.qr_payload())
    assert not ALICE_NUMBER.matches_scanned(payload[:-1])
    assert not ALICE_NUMBER.matches_scanned(b"\x02" + payload[1:])
    flipped = bytearray(payload)
    flipped[40] ^= 1
    assert not ALICE_NUMBER.matches_scanned(bytes(flipped))


def test_changes_with_key_or_identifier() -> None:
    mallory = IdentityKeyPair.generate().identity_key
    assert safety_number("alice", ALICE, "bob", mallory).digits() != ALICE_NUMBER.digits()
    assert safety_number("alice", ALICE, "bobby", BOB).digits() != ALICE_NUMBER.digits()
    assert not compare_safety_numbers(
        safety_number("alice", ALICE, "bob", mallory).display(), ALICE_NUMBER.display()
    )


def test_multi_device_keys_order_free() -> None:
    second = IdentityKeyPair.generate().identity_key
    one = safety_number("alice", [ALICE, second], "bob", BOB)
    other = safety_number("alice", [second, ALICE], "bob", [BOB])
    assert one == other
    assert one.digits() != ALICE_NUMBER.digits()


def test_matches_the_published_construction() -> None:
    """Recompute one side independently: iterated SHA-512 over version || key || id."""
    user_id = "alice"
    digest = b"\x00\x00" + ALICE + user_id.encode()
    for _ in range(5200):
        digest = hashlib.sha512(digest + ALICE).digest()
    assert ALICE_NUMBER.local == digest[:32]
    chunks = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 30, 5)]
    assert "".join(f"{c:05d}" for c in chunks) in ALICE_NUMBER.digits()


def test_bad_keys() -> None:
    with pytest.raises(InvalidKey):
        safety_number("a", b"short", "b", BOB)
    with pytest.raises(InvalidKey):
        safety_number("a", [], "b", BOB)


def test_record() -> None:
    assert SafetyNumber(ALICE_NUMBER.local, ALICE_NUMBER.remote) == ALICE_NUMBER
