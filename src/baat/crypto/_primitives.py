"""Every concrete primitive Baat uses, in one place, as thin wrappers over ``cryptography``.

Nothing here implements a primitive; these functions only fix the parameters, map
``cryptography``'s exceptions onto Baat's error tree and keep hot paths short.

Choices:

* Agreement: X25519 (RFC 7748), as PQXDH section 2.1 and Double Ratchet section 5.2 suggest.
* Signatures: Ed25519 (RFC 8032) instead of XEdDSA, which ``cryptography`` lacks.
* KEM: ML-KEM-768 (FIPS 203).
* KDFs: HKDF-SHA256 (RFC 5869) and HMAC-SHA256 (RFC 2104).
* AEAD: AES-256-CBC with PKCS#7 padding plus HMAC-SHA256 (encrypt-then-MAC), exactly the
  ENCRYPT recommended in Double Ratchet section 5.2. Chosen over AES-GCM because
  (1) it is misuse-resistant in the way that matters for an immutable-state API: if a caller
  encrypts twice from the same stored state, the same message key is reused, which for GCM
  (fixed or derived nonce) leaks the XOR of the plaintexts and the GHASH key, while CBC with a
  derived IV only reveals a common prefix of whole blocks; (2) HMAC commits to the key;
  (3) it is what independent Double Ratchet implementations (such as the ``doubleratchet``
  package we test against) provide, so the whole composition is checked for interoperability,
  not only the ratchet. It costs a few microseconds per message more than GCM.
"""

from __future__ import annotations

import hmac as _hmac
from typing import Final

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _crypto_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.padding import PKCS7

from baat.crypto._errors import DecryptionError, InvalidKey, InvalidSignature

X25519_KEY_BYTES: Final = 32
ED25519_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
MLKEM768_PUBLIC_KEY_BYTES: Final = 1184
MLKEM768_CIPHERTEXT_BYTES: Final = 1088
MLKEM_SEED_BYTES: Final = 64
HASH_BYTES: Final = 32
AEAD_TAG_BYTES: Final = 32
_AES_BLOCK_BYTES: Final = 16

_SHA256: Final = hashes.SHA256()
_SHA512: Final = hashes.SHA512()
_ZERO_SALT: Final = bytes(HASH_BYTES)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings (tags, MACs, fingerprints) without leaking where they differ."""
    return _hmac.compare_digest(a, b)


# -- X25519 ---------------------------------------------------------------------------------


class X25519KeyPair:
    """An X25519 private key with its public key bytes cached.

    Loading a private key from bytes costs a scalar multiplication (to recompute the public
    key), so ratchet states keep this object rather than raw bytes; they serialise it as the
    32 raw private bytes.
    """

    __slots__ = ("_private", "public")

    def __init__(self, private: X25519PrivateKey, public: bytes) -> None:
        self._private = private
        self.public = public

    @classmethod
    def generate(cls) -> X25519KeyPair:
        """A fresh key pair. Raises: nothing."""
        private = X25519PrivateKey.generate()
        return cls(private, private.public_key().public_bytes_raw())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> X25519KeyPair:
        """Raises: InvalidKey: ``data`` is not 32 bytes."""
        try:
            private = X25519PrivateKey.from_private_bytes(data)
        except (ValueError, TypeError) as exc:
            raise InvalidKey("an X25519 private key is 32 bytes") from exc
        return cls(private, private.public_key().public_bytes_raw())

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (secret). Raises: nothing."""
        return self._private.private_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes:
        """DH(self, peer) per RFC 7748.

        Raises:
            InvalidKey: ``peer_public`` is not 32 bytes or is a low-order point (all-zero output).
        """
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except (ValueError, TypeError) as exc:
            raise InvalidKey("unusable X25519 public key") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, X25519KeyPair):
            return NotImplemented
        return constant_time_equal(self.private_bytes(), other.private_bytes())

    def __hash__(self) -> int:
        return hash(self.public)

    def __repr__(self) -> str:
        return f"X25519KeyPair(public={self.public.hex()})"


def check_x25519_public(data: bytes, what: str) -> bytes:
    """Raises: InvalidKey: ``data`` is not 32 bytes."""
    if len(data) != X25519_KEY_BYTES:
        raise InvalidKey(f"{what} must be {X25519_KEY_BYTES} bytes")
    return data


# -- Ed25519 --------------------------------------------------------------------------------


def ed25519_generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def ed25519_from_private_bytes(data: bytes) -> Ed25519PrivateKey:
    """Raises: InvalidKey: ``data`` is not 32 bytes."""
    try:
        return Ed25519PrivateKey.from_private_bytes(data)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("an Ed25519 private key is 32 bytes") from exc


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Raises: InvalidSignature: bad key or signature."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (_CryptoInvalidSignature, ValueError, TypeError) as exc:
        raise InvalidSignature("signature does not verify") from exc


# -- ML-KEM-768 -----------------------------------------------------------------------------


def mlkem_generate() -> MLKEM768PrivateKey:
    return MLKEM768PrivateKey.generate()


def mlkem_from_seed(seed: bytes) -> MLKEM768PrivateKey:
    """Raises: InvalidKey: ``seed`` is not the 64-byte (d || z) seed of FIPS 203."""
    try:
        return MLKEM768PrivateKey.from_seed_bytes(seed)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("an ML-KEM-768 private key is a 64-byte seed") from exc


def mlkem_public_bytes(private: MLKEM768PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def mlkem_encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    """Return ``(shared_secret, ciphertext)`` for an encapsulation key.

    Raises:
        InvalidKey: not a valid ML-KEM-768 encapsulation key.
    """
    try:
        return MLKEM768PublicKey.from_public_bytes(public_key).encapsulate()
    except (ValueError, TypeError) as exc:
        raise InvalidKey("not an ML-KEM-768 encapsulation key") from exc


def mlkem_decapsulate(private: MLKEM768PrivateKey, ciphertext: bytes) -> bytes:
    """ML-KEM decapsulation. A wrong ciphertext of the right size yields an unrelated secret
    (implicit rejection, FIPS 203), which then fails authentication further on.

    Raises:
        InvalidKey: the ciphertext does not have the ML-KEM-768 size.
    """
    try:
        return private.decapsulate(ciphertext)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("not an ML-KEM-768 ciphertext") from exc


# -- Hashes, HKDF, HMAC ---------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869). An empty ``salt`` means the RFC's default of zero bytes."""
    return HKDF(algorithm=_SHA256, length=length, salt=salt or None, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = _crypto_hmac.HMAC(key, _SHA256)
    mac.update(data)
    return mac.finalize()


def hmac_sha256_pair(key: bytes, first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """``(HMAC(key, first), HMAC(key, second))``, keying HMAC once (a KDF_CK step)."""
    mac = _crypto_hmac.HMAC(key, _SHA256)
    other = mac.copy()
    mac.update(first)
    other.update(second)
    return mac.finalize(), other.finalize()


def sha512(*parts: bytes) -> bytes:
    digest = hashes.Hash(_SHA512)
    for part in parts:
        digest.update(part)
    return digest.finalize()


# -- AEAD: AES-256-CBC + HMAC-SHA256 (Double Ratchet section 5.2) ---------------------------


def _aead_keys(key: bytes, info: bytes) -> tuple[bytes, bytes, bytes]:
    # Section 5.2: HKDF with a zero salt of hash length, the message key as input key
    # material and an application info string; 80 bytes split into a 32-byte encryption
    # key, a 32-byte authentication key and a 16-byte IV.
    okm = hkdf_sha256(key, _ZERO_SALT, info, 80)
    return okm[:32], okm[32:64], okm[64:]


def aes256_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding."""
    padder = PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES256(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes256_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`aes256_cbc_encrypt`.

    Raises:
        DecryptionError: wrong length or padding.
    """
    try:
        decryptor = Cipher(algorithms.AES256(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionError("bad padding") from exc


def aead_encrypt(key: bytes, plaintext: bytes, associated_data: bytes, info: bytes) -> bytes:
    """ENCRYPT(mk, plaintext, associated_data) of Double Ratchet section 5.2.

    Returns the CBC ciphertext followed by the 32-byte HMAC over ``associated_data || ct``.
    Each message key encrypts exactly one message, so deriving the IV from it is safe.
    """
    enc_key, auth_key, iv = _aead_keys(key, info)
    ciphertext = aes256_cbc_encrypt(enc_key, iv, plaintext)
    return ciphertext + hmac_sha256(auth_key, associated_data + ciphertext)


def aead_decrypt(key: bytes, data: bytes, associated_data: bytes, info: bytes) -> bytes:
    """DECRYPT: check the HMAC in constant time first (encrypt-then-MAC), then decrypt.

    Raises:
        DecryptionError: the tag does not match or the ciphertext is malformed.
    """
    body_len = len(data) - AEAD_TAG_BYTES
    if body_len < _AES_BLOCK_BYTES or body_len % _AES_BLOCK_BYTES:
        raise DecryptionError("ciphertext has an impossible length")
    ciphertext, tag = data[:body_len], data[body_len:]
    enc_key, auth_key, iv = _aead_keys(key, info)
    if not constant_time_equal(hmac_sha256(auth_key, associated_data + ciphertext), tag):
        raise DecryptionError("message authentication failed")
    return aes256_cbc_decrypt(enc_key, iv, ciphertext)
