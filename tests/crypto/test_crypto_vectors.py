"""Published test vectors run through Baat's primitive wrappers, as a sanity check."""

from __future__ import annotations

from baat.crypto import InvalidKey
from baat.crypto._primitives import (
    X25519KeyPair,
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    ed25519_from_private_bytes,
    ed25519_verify,
    hkdf_sha256,
    hmac_sha256,
    hmac_sha256_pair,
)
from crypto.crypto_helpers import load_vector

h = bytes.fromhex


def test_x25519_rfc7748_scalar_mult() -> None:
    for case in load_vector("rfc7748_x25519.json")["scalar_mult"]:
        key = X25519KeyPair.from_private_bytes(h(case["scalar"]))
        assert key.exchange(h(case["u"])) == h(case["output"])


def test_x25519_rfc7748_diffie_hellman() -> None:
    v = load_vector("rfc7748_x25519.json")["diffie_hellman"]
    alice = X25519KeyPair.from_private_bytes(h(v["alice_private"]))
    bob = X25519KeyPair.from_private_bytes(h(v["bob_private"]))
    assert alice.public == h(v["alice_public"])
    assert bob.public == h(v["bob_public"])
    assert alice.exchange(bob.public) == bob.exchange(alice.public) == h(v["shared"])


def test_x25519_rejects_low_order_point() -> None:
    key = X25519KeyPair.generate()
    for bad in (bytes(32), b"\x01" + bytes(31), b"short"):
        try:
            key.exchange(bad)
        except InvalidKey:
            continue
        raise AssertionError(f"accepted {bad.hex()}")


def test_hkdf_rfc5869() -> None:
    for case in load_vector("rfc5869_hkdf_sha256.json")["cases"]:
        okm = hkdf_sha256(h(case["ikm"]), h(case["salt"]), h(case["info"]), case["length"])
        assert okm == h(case["okm"])


def test_hmac_rfc4231() -> None:
    for case in load_vector("rfc4231_hmac_sha256.json")["cases"]:
        assert hmac_sha256(h(case["key"]), h(case["data"])) == h(case["mac"])
        pair = hmac_sha256_pair(h(case["key"]), h(case["data"]), b"")
        assert pair[0] == h(case["mac"])
        assert pair[1] == hmac_sha256(h(case["key"]), b"")


def test_ed25519_rfc8032() -> None:
    for case in load_vector("rfc8032_ed25519.json")["cases"]:
        key = ed25519_from_private_bytes(h(case["secret"]))
        assert key.public_key().public_bytes_raw() == h(case["public"])
        assert key.sign(h(case["message"])) == h(case["signature"])
        ed25519_verify(h(case["public"]), h(case["signature"]), h(case["message"]))


def test_aes256_cbc_sp800_38a() -> None:
    v = load_vector("sp800_38a_aes256_cbc.json")
    out = aes256_cbc_encrypt(h(v["key"]), h(v["iv"]), h(v["plaintext"]))
    # Whole blocks in, so PKCS#7 appends one full block of padding after the NIST blocks.
    assert out[:32] == h(v["ciphertext"])
    assert len(out) == 48
    assert aes256_cbc_decrypt(h(v["key"]), h(v["iv"]), out) == h(v["plaintext"])
