"""Interoperability with the independent ``doubleratchet`` package (Syndace), both directions.

The package is configured with the functions Baat uses (Double Ratchet section 5.2): HKDF root
KDF, the two-HMAC chain KDF (constant 0x02 for the chain key, 0x01 for the message key), the
AES-256-CBC + HMAC AEAD with Baat's info strings, and Baat's header encoding in the associated
data. Its AEAD is the package's own code, so the whole message composition is cross-checked.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from doubleratchet import AuthenticationFailedException, DoubleRatchet, EncryptedMessage
from doubleratchet import Header as PackageHeader
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from baat.crypto import (
    Header,
    RatchetState,
    init_initiator,
    init_responder,
    ratchet_decrypt,
    ratchet_encrypt,
)
from baat.crypto._primitives import X25519KeyPair
from baat.crypto.ratchet import MESSAGE_KEY_INFO, ROOT_KDF_INFO
from crypto.crypto_helpers import AD, NOW


class _RootKdf(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> Any:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return ROOT_KDF_INFO


class _ChainKdf(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> Any:
        return HashFunction.SHA_256


class _Aead(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> Any:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return MESSAGE_KEY_INFO


class _PackageRatchet(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Any) -> bytes:
        return associated_data + _to_baat(header).encode()


CONFIG: dict[str, Any] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": _RootKdf,
    "message_chain_kdf": _ChainKdf,
    "message_chain_constant": b"\x02\x01",
    "dos_protection_threshold": 100,
    "max_num_skipped_message_keys": 1000,
    "aead": _Aead,
}


def _to_baat(header: Any) -> Header:
    return Header(
        header.ratchet_pub, header.previous_sending_chain_length, header.sending_chain_length
    )


def _to_package(header: Header, ciphertext: bytes) -> Any:
    return EncryptedMessage(
        header=PackageHeader(
            ratchet_pub=header.dh,
            previous_sending_chain_length=header.pn,
            sending_chain_length=header.n,
        ),
        ciphertext=ciphertext,
    )


class _Conversation:
    """Drives a Baat ratchet against a package ratchet with some messages out of order."""

    def __init__(self, baat: RatchetState, package: Any) -> None:
        self.baat = baat
        self.package = package
        self.rng = random.Random(7)

    async def package_to_baat(self, count: int) -> None:
        sent = []
        for i in range(count):
            plaintext = os.urandom(self.rng.randrange(0, 300)) + b"%d" % i
            sent.append((await self.package.encrypt_message(plaintext, AD), plaintext))
        self.rng.shuffle(sent)
        for message, plaintext in sent:
            self.baat, got = ratchet_decrypt(
                self.baat, _to_baat(message.header), message.ciphertext, AD, NOW
            )
            assert got == plaintext

    async def baat_to_package(self, count: int) -> None:
        sent = []
        for i in range(count):
            plaintext = os.urandom(self.rng.randrange(0, 300)) + b"%d" % i
            self.baat, header, ct = ratchet_encrypt(self.baat, plaintext, AD, NOW)
            sent.append((_to_package(header, ct), plaintext))
        self.rng.shuffle(sent)
        for message, plaintext in sent:
            assert await self.package.decrypt_message(message, AD) == plaintext

    async def run(self) -> None:
        for count in (1, 3, 1, 4, 2, 1, 5):
            await self.package_to_baat(count)
            await self.baat_to_package(count)


async def test_baat_initiator_package_responder() -> None:
    secret = os.urandom(32)
    bob_key = X25519KeyPair.generate()
    alice = init_initiator(secret, bob_key.public)
    alice, header, ct = ratchet_encrypt(alice, b"hello from baat", AD, NOW)
    bob, plaintext = await _PackageRatchet.decrypt_initial_message(
        **CONFIG,
        shared_secret=secret,
        own_ratchet_priv=bob_key.private_bytes(),
        message=_to_package(header, ct),
        associated_data=AD,
    )
    assert plaintext == b"hello from baat"
    await _Conversation(alice, bob).run()


async def test_package_initiator_baat_responder() -> None:
    secret = os.urandom(32)
    bob_key = X25519KeyPair.generate()
    alice, message = await _PackageRatchet.encrypt_initial_message(
        **CONFIG,
        shared_secret=secret,
        recipient_ratchet_pub=bob_key.public,
        message=b"hello from the package",
        associated_data=AD,
    )
    bob = init_responder(secret, bob_key)
    bob, plaintext = ratchet_decrypt(bob, _to_baat(message.header), message.ciphertext, AD, NOW)
    assert plaintext == b"hello from the package"
    conversation = _Conversation(bob, alice)
    await conversation.baat_to_package(2)
    await conversation.run()


async def test_package_rejects_tampered_baat_message() -> None:
    secret = os.urandom(32)
    bob_key = X25519KeyPair.generate()
    alice = init_initiator(secret, bob_key.public)
    alice, header, ct = ratchet_encrypt(alice, b"x", AD, NOW)
    tampered = Header(header.dh, header.pn, header.n + 1)
    with pytest.raises(AuthenticationFailedException):
        await _PackageRatchet.decrypt_initial_message(
            **CONFIG,
            shared_secret=secret,
            own_ratchet_priv=bob_key.private_bytes(),
            message=_to_package(tampered, ct),
            associated_data=AD,
        )
