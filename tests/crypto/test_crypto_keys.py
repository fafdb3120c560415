"""Identity keys, prekey generation and the signatures binding them."""

from __future__ import annotations

import pytest

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    IdentityKeyPair,
    InvalidKey,
    InvalidSignature,
    InvalidState,
    PrivatePrekey,
    generate_prekey,
    generate_prekeys,
    identity_dh_signature_message,
    prekey_lookup,
    prekey_signature_message,
    verify_identity_dh_signature,
    verify_prekey_signature,
)


def test_identity_round_trip() -> None:
    identity = IdentityKeyPair.generate()
    data = identity.to_bytes()
    assert len(data) == 65 and data[0] == 1
    again = IdentityKeyPair.from_bytes(data)
    assert again == identity
    assert again.public == identity.public
    assert again.public_bytes() == identity.identity_key
    assert len(identity.identity_key) == 32
    assert data[1:33].hex() not in repr(identity)  # no private key in logs


@pytest.mark.parametrize("data", [b"", b"\x01" + bytes(63), b"\x02" + bytes(64)])
def test_identity_from_bad_bytes(data: bytes) -> None:
    with pytest.raises(InvalidKey):
        IdentityKeyPair.from_bytes(data)


def test_identity_dh_key_is_signed() -> None:
    identity = IdentityKeyPair.generate()
    identity.public.verify()
    verify_identity_dh_signature(
        identity.identity_key, identity.identity_dh_key, identity.identity_dh_sig
    )
    other = IdentityKeyPair.generate()
    with pytest.raises(InvalidSignature):
        verify_identity_dh_signature(
            identity.identity_key, other.identity_dh_key, identity.identity_dh_sig
        )
    with pytest.raises(InvalidSignature):
        identity_dh_signature_message(b"short")


def test_signature_domains_are_separate() -> None:
    # An identity DH key signature must never pass as a prekey signature, and vice versa.
    identity = IdentityKeyPair.generate()
    dh_key = identity.identity_dh_key
    with pytest.raises(InvalidSignature):
        verify_prekey_signature(
            identity.identity_key, PREKEY_KIND_CURVE_SIGNED, 0, dh_key, identity.identity_dh_sig
        )
    prekey_sig = identity.sign(prekey_signature_message(PREKEY_KIND_CURVE_SIGNED, 0, dh_key))
    with pytest.raises(InvalidSignature):
        verify_identity_dh_signature(identity.identity_key, dh_key, prekey_sig)


@pytest.mark.parametrize(
    ("kind", "size", "signed"),
    [
        (PREKEY_KIND_CURVE_SIGNED, 32, True),
        (PREKEY_KIND_CURVE_ONE_TIME, 32, False),
        (PREKEY_KIND_KEM_LAST_RESORT, 1184, True),
        (PREKEY_KIND_KEM_ONE_TIME, 1184, True),
    ],
)
def test_generate_prekey(kind: int, size: int, signed: bool) -> None:
    identity = IdentityKeyPair.generate()
    public, private = generate_prekey(identity, kind, 2**32 - 1)
    assert (public.kind, public.key_id) == (kind, 2**32 - 1)
    assert len(public.public_key) == size
    assert private.public_key == public.public_key
    assert bool(public.signature) is signed
    public.verify(identity.identity_key)
    if signed:
        # The exact convention the server checks.
        verify_prekey_signature(
            identity.identity_key, kind, public.key_id, public.public_key, public.signature
        )
        with pytest.raises(InvalidSignature):
            public.verify(IdentityKeyPair.generate().identity_key)
    assert PrivatePrekey.from_bytes(private.to_bytes()) == private


def test_prekey_keys_load() -> None:
    identity = IdentityKeyPair.generate()
    curve = generate_prekey(identity, PREKEY_KIND_CURVE_SIGNED, 1).private
    kem = generate_prekey(identity, PREKEY_KIND_KEM_ONE_TIME, 1).private
    assert curve.curve_key().public == curve.public_key
    assert kem.kem_key().public_key().public_bytes_raw() == kem.public_key
    with pytest.raises(InvalidKey):
        curve.kem_key()
    with pytest.raises(InvalidKey):
        kem.curve_key()


@pytest.mark.parametrize(("kind", "key_id"), [(9, 1), (PREKEY_KIND_CURVE_SIGNED, -1), (1, 2**32)])
def test_generate_prekey_rejects(kind: int, key_id: int) -> None:
    with pytest.raises(InvalidSignature):
        generate_prekey(IdentityKeyPair.generate(), kind, key_id)


def test_generate_prekeys_and_lookup() -> None:
    identity = IdentityKeyPair.generate()
    pairs = generate_prekeys(identity, PREKEY_KIND_CURVE_ONE_TIME, range(5, 10))
    assert [p.public.key_id for p in pairs] == [5, 6, 7, 8, 9]
    lookup = prekey_lookup(p.private for p in pairs)
    assert lookup(PREKEY_KIND_CURVE_ONE_TIME, 7) == pairs[2].private
    assert lookup(PREKEY_KIND_CURVE_SIGNED, 7) is None


def test_private_prekey_bad_bytes() -> None:
    with pytest.raises(InvalidState):
        PrivatePrekey.from_bytes(b"\x00garbage")
