"""PQXDH (revision 3): both sides agree, and every check Alice and Bob must make is made."""

from __future__ import annotations

import msgspec
import pytest

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    IdentityKeyPair,
    InitialMessage,
    InvalidKey,
    InvalidSignature,
    MalformedMessage,
    PrekeyBundle,
    PublicPrekey,
    UnknownPrekey,
    generate_prekey,
    pqxdh_initiate,
    pqxdh_respond,
    prekey_signature_message,
)
from baat.crypto.pqxdh import INITIAL_MESSAGE_BYTES
from crypto.crypto_helpers import Device


@pytest.mark.parametrize("one_time_curve", [True, False])
@pytest.mark.parametrize("one_time_kem", [True, False])
def test_round_trip(one_time_curve: bool, one_time_kem: bool) -> None:
    alice, bob = Device(), Device()
    bundle = bob.bundle(one_time_curve=one_time_curve, one_time_kem=one_time_kem)
    assert bundle.kem_last_resort is not one_time_kem
    sent = pqxdh_initiate(alice.identity, bundle)
    message = InitialMessage.decode(sent.initial_message.encode())
    assert message == sent.initial_message
    got = pqxdh_respond(bob.identity, bob.lookup, message)
    assert got.shared_secret == sent.shared_secret
    assert len(sent.shared_secret) == 32
    assert got.associated_data == sent.associated_data
    # AD = Encode(IKA) || Encode(IKB): both full identities, initiator first.
    assert sent.associated_data == alice.identity.public.encode() + bob.identity.public.encode()
    assert got.ratchet_key.public == sent.remote_ratchet_key == bundle.signed_prekey.public_key
    expected_one_time = []
    if one_time_curve:
        expected_one_time.append((PREKEY_KIND_CURVE_ONE_TIME, 10))
    if one_time_kem:
        expected_one_time.append((PREKEY_KIND_KEM_ONE_TIME, 10))
    assert got.used.one_time() == expected_one_time
    assert got.used.signed_prekey_id == 1


def test_fresh_secret_each_time() -> None:
    alice, bob = Device(), Device()
    bundle = bob.bundle()
    first = pqxdh_initiate(alice.identity, bundle)
    second = pqxdh_initiate(alice.identity, bundle)
    assert first.shared_secret != second.shared_secret


def _tamper_bundle(bundle: PrekeyBundle, what: str) -> PrekeyBundle:
    stranger = IdentityKeyPair.generate()
    if what == "identity_dh_key":
        return msgspec.structs.replace(bundle, identity_dh_key=stranger.identity_dh_key)
    if what == "identity_dh_sig":
        return msgspec.structs.replace(bundle, identity_dh_sig=stranger.identity_dh_sig)
    if what == "identity_key":
        return msgspec.structs.replace(bundle, identity_key=stranger.identity_key)
    if what == "signed_prekey":
        other = generate_prekey(stranger, PREKEY_KIND_CURVE_SIGNED, 1).public
        spk = msgspec.structs.replace(bundle.signed_prekey, public_key=other.public_key)
        return msgspec.structs.replace(bundle, signed_prekey=spk)
    if what == "signed_prekey_id":
        spk = msgspec.structs.replace(bundle.signed_prekey, key_id=2)
        return msgspec.structs.replace(bundle, signed_prekey=spk)
    if what == "kem_prekey":
        other = generate_prekey(stranger, PREKEY_KIND_KEM_ONE_TIME, 10).public
        kem = msgspec.structs.replace(bundle.kem_prekey, public_key=other.public_key)
        return msgspec.structs.replace(bundle, kem_prekey=kem)
    if what == "kem_kind":
        # A one-time KEM prekey's signature does not pass it off as the last-resort one.
        kem = msgspec.structs.replace(bundle.kem_prekey, kind=PREKEY_KIND_KEM_LAST_RESORT)
        return msgspec.structs.replace(bundle, kem_prekey=kem)
    if what == "kem_unsigned":
        kem = msgspec.structs.replace(bundle.kem_prekey, signature=b"")
        return msgspec.structs.replace(bundle, kem_prekey=kem)
    if what == "spk_as_kem":
        return msgspec.structs.replace(bundle, kem_prekey=bundle.signed_prekey)
    if what == "otp_kind":
        assert bundle.one_time_prekey is not None
        otp = msgspec.structs.replace(bundle.one_time_prekey, kind=PREKEY_KIND_CURVE_SIGNED)
        return msgspec.structs.replace(bundle, one_time_prekey=otp)
    if what == "otp_size":
        otp = PublicPrekey(PREKEY_KIND_CURVE_ONE_TIME, 10, b"\x09" * 31)
        return msgspec.structs.replace(bundle, one_time_prekey=otp)
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "identity_dh_key",
        "identity_dh_sig",
        "identity_key",
        "signed_prekey",
        "signed_prekey_id",
        "kem_prekey",
        "kem_kind",
        "kem_unsigned",
        "spk_as_kem",
        "otp_kind",
        "otp_size",
    ],
)
def test_bad_bundle_rejected(what: str) -> None:
    alice, bob = Device(), Device()
    bundle = _tamper_bundle(bob.bundle(), what)
    with pytest.raises(InvalidSignature):
        pqxdh_initiate(alice.identity, bundle)


def test_low_order_prekey_rejected() -> None:
    # A correctly signed but degenerate signed prekey: signatures pass, DH refuses it.
    alice, bob = Device(), Device()
    bad = bytes(32)
    sig = bob.identity.sign(prekey_signature_message(PREKEY_KIND_CURVE_SIGNED, 1, bad))
    spk = PublicPrekey(PREKEY_KIND_CURVE_SIGNED, 1, bad, sig)
    bundle = msgspec.structs.replace(bob.bundle(), signed_prekey=spk)
    with pytest.raises(InvalidKey):
        pqxdh_initiate(alice.identity, bundle)


def test_responder_rejects_forged_identity() -> None:
    alice, bob = Device(), Device()
    sent = pqxdh_initiate(alice.identity, bob.bundle())
    mallory = IdentityKeyPair.generate()
    # Alice's Ed25519 key with Mallory's identity DH key: the binding signature fails.
    forged_identity = msgspec.structs.replace(
        sent.initial_message.identity, identity_dh_key=mallory.identity_dh_key
    )
    forged = msgspec.structs.replace(sent.initial_message, identity=forged_identity)
    with pytest.raises(InvalidSignature):
        pqxdh_respond(bob.identity, bob.lookup, forged)


@pytest.mark.parametrize("missing", ["spk", "kem", "otp"])
def test_unknown_prekey(missing: str) -> None:
    alice, bob = Device(), Device()
    message = pqxdh_initiate(alice.identity, bob.bundle()).initial_message
    slot = {
        "spk": (PREKEY_KIND_CURVE_SIGNED, 1),
        "kem": (PREKEY_KIND_KEM_ONE_TIME, 10),
        "otp": (PREKEY_KIND_CURVE_ONE_TIME, 10),
    }[missing]
    del bob.private[slot]
    with pytest.raises(UnknownPrekey):
        pqxdh_respond(bob.identity, bob.lookup, message)


def test_tampered_initial_message_changes_secret() -> None:
    alice, bob = Device(), Device()
    sent = pqxdh_initiate(alice.identity, bob.bundle())
    ct = bytearray(sent.initial_message.kem_ciphertext)
    ct[0] ^= 1
    tampered = msgspec.structs.replace(sent.initial_message, kem_ciphertext=bytes(ct))
    # ML-KEM implicit rejection: a different secret, caught when the first message is opened.
    assert pqxdh_respond(bob.identity, bob.lookup, tampered).shared_secret != sent.shared_secret


def test_initial_message_decode_rejects() -> None:
    alice, bob = Device(), Device()
    good = pqxdh_initiate(alice.identity, bob.bundle(one_time_curve=False)).initial_message
    data = good.encode()
    assert len(data) == INITIAL_MESSAGE_BYTES
    assert InitialMessage.decode(data).one_time_prekey_id is None
    with pytest.raises(MalformedMessage):
        InitialMessage.decode(data[:-1])
    kem_kind_at = 32 + 32 + 64 + 32 + 4
    for bad_kind in (0, PREKEY_KIND_CURVE_SIGNED, 9):
        bad = bytearray(data)
        bad[kem_kind_at] = bad_kind
        with pytest.raises(MalformedMessage):
            InitialMessage.decode(bytes(bad))
    flag_at = kem_kind_at + 1 + 4
    bad = bytearray(data)
    bad[flag_at] = 2
    with pytest.raises(MalformedMessage):
        InitialMessage.decode(bytes(bad))
