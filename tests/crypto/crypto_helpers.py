"""Builders shared by the crypto tests (plain functions, so hypothesis tests can use them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baat.crypto import (
    DEFAULT_LIMITS,
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    Header,
    IdentityKeyPair,
    PrekeyBundle,
    PrivatePrekey,
    PublicPrekey,
    RatchetLimits,
    RatchetState,
    SessionState,
    UsedPrekeys,
    decrypt,
    encrypt,
    generate_prekey,
    init_initiator,
    init_responder,
    initiate_session,
    ratchet_decrypt,
    ratchet_encrypt,
    respond_to_initial,
)
from baat.crypto._primitives import X25519KeyPair

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
NOW = 1_700_000_000
AD = b"A" * 65 + b"B" * 65


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@dataclass
class Device:
    """A device with an identity and a stock of prekeys, like a client after setup."""

    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    private: dict[tuple[int, int], PrivatePrekey] = field(default_factory=dict)
    public: dict[tuple[int, int], PublicPrekey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.add(PREKEY_KIND_CURVE_SIGNED, 1)
        self.add(PREKEY_KIND_KEM_LAST_RESORT, 1)
        for key_id in (10, 11):
            self.add(PREKEY_KIND_CURVE_ONE_TIME, key_id)
            self.add(PREKEY_KIND_KEM_ONE_TIME, key_id)

    def add(self, kind: int, key_id: int) -> None:
        pair = generate_prekey(self.identity, kind, key_id)
        self.private[(kind, key_id)] = pair.private
        self.public[(kind, key_id)] = pair.public

    def lookup(self, kind: int, key_id: int) -> PrivatePrekey | None:
        return self.private.get((kind, key_id))

    def delete(self, used: UsedPrekeys) -> None:
        for slot in used.one_time():
            del self.private[slot]
            self.public.pop(slot, None)

    def bundle(self, *, one_time_curve: bool = True, one_time_kem: bool = True) -> PrekeyBundle:
        def first(kind: int) -> PublicPrekey | None:
            return next((p for (k, _), p in sorted(self.public.items()) if k == kind), None)

        pub = self.identity.public
        return PrekeyBundle.from_parts(
            pub.identity_key,
            pub.identity_dh_key,
            pub.identity_dh_sig,
            self.public[(PREKEY_KIND_CURVE_SIGNED, 1)],
            self.public[(PREKEY_KIND_KEM_LAST_RESORT, 1)],
            first(PREKEY_KIND_CURVE_ONE_TIME) if one_time_curve else None,
            first(PREKEY_KIND_KEM_ONE_TIME) if one_time_kem else None,
        )


def session_pair(now: int = NOW) -> tuple[SessionState, SessionState]:
    """Alice and Bob after Alice's first message and Bob's first reply."""
    alice_dev, bob_dev = Device(), Device()
    alice = initiate_session(alice_dev.identity, bob_dev.bundle(), now)
    alice, first = encrypt(alice, b"first", now)
    bob, _, used = respond_to_initial(bob_dev.identity, bob_dev.lookup, first, now)
    bob_dev.delete(used)
    bob, reply = encrypt(bob, b"reply", now)
    alice, _ = decrypt(alice, reply, now)
    return alice, bob


def ratchet_pair(now: int = NOW) -> tuple[RatchetState, RatchetState]:
    """Two ratchets straight from a shared secret, after one message from Alice to Bob."""
    secret = os.urandom(32)
    bob_key = X25519KeyPair.generate()
    alice = init_initiator(secret, bob_key.public)
    bob = init_responder(secret, bob_key)
    alice, header, ct = ratchet_encrypt(alice, b"hello", AD, now)
    bob, plaintext = ratchet_decrypt(bob, header, ct, AD, now)
    assert plaintext == b"hello"
    return alice, bob


Sent = tuple[Header, bytes]


def send(
    state: RatchetState, plaintext: bytes, now: int = NOW, limits: RatchetLimits = DEFAULT_LIMITS
) -> tuple[RatchetState, Sent]:
    state, header, ct = ratchet_encrypt(state, plaintext, AD, now, limits)
    return state, (header, ct)


def receive(
    state: RatchetState, message: Sent, now: int = NOW, limits: RatchetLimits = DEFAULT_LIMITS
) -> tuple[RatchetState, bytes]:
    return ratchet_decrypt(state, message[0], message[1], AD, now, limits)
