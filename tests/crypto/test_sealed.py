"""Sealed sender (docs/CRYPTO.md §18): certificates, the outer layer, access keys, profiles."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.crypto import DecryptionError, MalformedMessage
from baat.crypto.keys import IdentityKeyPair
from baat.crypto.sealed import (
    CertificateValidator,
    InvalidCertificate,
    SealCache,
    access_key,
    access_verifier,
    check_access,
    decrypt_profile_field,
    encrypt_profile_field,
    issue_sender_certificate,
    issue_server_certificate,
    new_profile_key,
    open_sealed,
    seal,
)

NOW = int(time.time() * 1000)


def _chain(
    sender: IdentityKeyPair, expires_ms: int = NOW + 86_400_000
) -> tuple[bytes, Ed25519PrivateKey]:
    root = Ed25519PrivateKey.generate()
    server_key = Ed25519PrivateKey.generate()
    server = issue_server_certificate(
        root, 7, server_key.public_key().public_bytes_raw(), NOW + 7 * 86_400_000
    )
    cert = issue_sender_certificate(
        server_key, server, "acct-a", 2, sender.identity_key, sender.identity_dh_key, expires_ms
    )
    return cert, root


def test_seal_open_round_trip_names_the_sender() -> None:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    cert, root = _chain(alice)
    validator = CertificateValidator([root.public_key().public_bytes_raw()])
    sealed = seal(bob.identity_dh_key, alice.dh_pair, cert, b"hello", content_type=3)
    assert b"acct-a" not in sealed and alice.identity_dh_key not in sealed
    opened = open_sealed(sealed, bob.dh_pair, validator, NOW)
    assert opened.inner == b"hello"
    assert opened.content_type == 3
    assert (opened.sender.account_id, opened.sender.device_id) == ("acct-a", 2)
    # Two seals of the same message differ (fresh ephemeral key each time).
    assert seal(bob.identity_dh_key, alice.dh_pair, cert, b"hello") != sealed


def test_wrong_recipient_and_tampering_fail_authentication() -> None:
    alice, bob, eve = (IdentityKeyPair.generate() for _ in range(3))
    cert, root = _chain(alice)
    validator = CertificateValidator([root.public_key().public_bytes_raw()])
    sealed = seal(bob.identity_dh_key, alice.dh_pair, cert, b"hello")
    with pytest.raises(DecryptionError):
        open_sealed(sealed, eve.dh_pair, validator, NOW)
    for index in (1, 40, len(sealed) - 1):
        bad = bytearray(sealed)
        bad[index] ^= 1
        with pytest.raises(DecryptionError):
            open_sealed(bytes(bad), bob.dh_pair, validator, NOW)
    with pytest.raises(MalformedMessage):
        open_sealed(b"\x12" + sealed[1:], bob.dh_pair, validator, NOW)
    with pytest.raises(MalformedMessage):
        open_sealed(sealed[:20], bob.dh_pair, validator, NOW)


def test_expired_forged_and_foreign_certificates_are_refused() -> None:
    alice, bob, mallory = (IdentityKeyPair.generate() for _ in range(3))
    cert, root = _chain(alice, expires_ms=NOW - 1)
    validator = CertificateValidator([root.public_key().public_bytes_raw()])
    sealed = seal(bob.identity_dh_key, alice.dh_pair, cert, b"x")
    with pytest.raises(InvalidCertificate, match="expired") as info:
        open_sealed(sealed, bob.dh_pair, validator, NOW)
    assert info.value.claimed == ("acct-a", 2)

    # A certificate chain made by another root (a forger's own "server").
    forged, _other_root = _chain(alice)
    with pytest.raises(InvalidCertificate, match="pinned root"):
        open_sealed(
            seal(bob.identity_dh_key, alice.dh_pair, forged, b"x"), bob.dh_pair, validator, NOW
        )

    # A valid certificate of alice's replayed by mallory under mallory's own key.
    good, root2 = _chain(alice)
    validator2 = CertificateValidator([root2.public_key().public_bytes_raw()])
    with pytest.raises(InvalidCertificate, match="another key"):
        open_sealed(
            seal(bob.identity_dh_key, mallory.dh_pair, good, b"x"), bob.dh_pair, validator2, NOW
        )

    # One flipped bit of the sender certificate's signature.
    tampered = bytearray(good)
    tampered[-3] ^= 1
    with pytest.raises(InvalidCertificate, match="forged"):
        open_sealed(
            seal(bob.identity_dh_key, alice.dh_pair, bytes(tampered), b"x"),
            bob.dh_pair,
            validator2,
            NOW,
        )


def test_cached_certificates_still_expire() -> None:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    cert, root = _chain(alice, expires_ms=NOW + 1000)
    validator = CertificateValidator([root.public_key().public_bytes_raw()])
    cache = SealCache()
    sealed = seal(bob.identity_dh_key, alice.dh_pair, cert, b"x", cache=cache)
    assert open_sealed(sealed, bob.dh_pair, validator, NOW, cache=cache).inner == b"x"
    with pytest.raises(InvalidCertificate, match="expired"):
        open_sealed(sealed, bob.dh_pair, validator, NOW + 2000, cache=cache)


def test_access_keys_come_from_the_profile_key_and_rotate_with_it() -> None:
    old, new = new_profile_key(), new_profile_key()
    key = access_key(old)
    assert len(key) == 16 and key == access_key(old)
    verifier = access_verifier(key)
    assert check_access(key, verifier)
    assert not check_access(access_key(new), verifier)
    assert not check_access(b"", verifier)


def test_profile_fields_open_only_with_the_profile_key_and_hide_the_length() -> None:
    pk = new_profile_key()
    short = encrypt_profile_field(pk, "name", b"Asha")
    longer = encrypt_profile_field(pk, "name", b"Asha Ramachandran-Iyer")
    assert len(short) == len(longer)
    assert decrypt_profile_field(pk, "name", short) == b"Asha"
    avatar = encrypt_profile_field(pk, "avatar", b"\x89PNG" + bytes(100))
    assert decrypt_profile_field(pk, "avatar", avatar) == b"\x89PNG" + bytes(100)
    with pytest.raises(DecryptionError):
        decrypt_profile_field(new_profile_key(), "name", short)
    with pytest.raises(DecryptionError):
        decrypt_profile_field(pk, "avatar", short)  # a field cannot pass for another
