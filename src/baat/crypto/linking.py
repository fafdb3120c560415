"""Commit-then-reveal for the device-linking SAS (docs/CRYPTO.md §16).

The short authentication string both screens show depends on 256 random bits from each
device, and each device's bits are fixed before it sees the other's:

1. The new device picks ``n_new`` and sends only ``commitment = SHA-256(domain || n_new ||
   new identity key)`` with its registration.
2. The primary, once it holds the commitment, picks ``n_primary`` and reveals it.
3. The new device, once it holds ``n_primary``, reveals ``n_new``; the primary checks it
   against the commitment (:func:`check_link_commitment`).
4. Both show :func:`link_sas_committed` over the link code's secret, both nonces and both
   identity keys.

A server that relays all of this (and may replace any of it) must give the primary a
commitment before it learns ``n_primary``, and give the new device an ``n_primary`` before
it learns ``n_new``: whatever it picks, each screen's code is then a fresh random 6-digit
number to it, matching the other with probability 10**-6 per attempt. Without the
commitment it could pick the new device's nonce last and search 10**6 values for a match.
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes

from baat.crypto._errors import InvalidKey
from baat.crypto._primitives import constant_time_equal, hkdf_sha256
from baat.crypto.device_list import InvalidLinkCode, LinkCode

__all__ = [
    "LINK_NONCE_BYTES",
    "LinkCommitmentMismatch",
    "check_link_commitment",
    "link_commitment",
    "link_nonce",
    "link_sas_committed",
]

LINK_NONCE_BYTES: Final = 32
_COMMIT_DOMAIN: Final = b"Baat link commitment v1\x00"
_SAS_INFO: Final = b"Baat link SAS v2\x00"


class LinkCommitmentMismatch(InvalidLinkCode):
    """The new device's revealed nonce does not open its commitment: stop linking."""


def link_nonce() -> bytes:
    """A fresh 256-bit contribution. Raises: nothing."""
    return secrets.token_bytes(LINK_NONCE_BYTES)


def link_commitment(nonce: bytes, new_identity_key: bytes) -> bytes:
    """SHA-256 over the domain, the new device's nonce and its identity key (32 bytes).

    Raises:
        InvalidKey: the nonce or the key has the wrong length.
    """
    _check(nonce, new_identity_key)
    digest = hashes.Hash(hashes.SHA256())
    for part in (_COMMIT_DOMAIN, nonce, new_identity_key):
        digest.update(part)
    return digest.finalize()


def check_link_commitment(commitment: bytes, nonce: bytes, new_identity_key: bytes) -> None:
    """Raises:
    LinkCommitmentMismatch: ``nonce`` and the key do not open ``commitment``.
    InvalidKey: a length is wrong.
    """
    if not constant_time_equal(link_commitment(nonce, new_identity_key), commitment):
        raise LinkCommitmentMismatch("the new device's nonce does not match its commitment")


def link_sas_committed(
    code: LinkCode,
    primary_identity_key: bytes,
    new_identity_key: bytes,
    primary_nonce: bytes,
    new_nonce: bytes,
) -> str:
    """The 6-digit string both devices show (``"123 456"``): ``HKDF-SHA256(IKM = secret ||
    n_primary || n_new, info = "Baat link SAS v2\\0" || len || account id || primary key ||
    new key, L = 8)`` modulo 10**6.

    Raises:
        InvalidKey: a key or nonce has the wrong length.
    """
    _check(primary_nonce, primary_identity_key)
    _check(new_nonce, new_identity_key)
    account = code.account_id.encode("utf-8")
    info = b"".join(
        [_SAS_INFO, bytes([len(account)]), account, primary_identity_key, new_identity_key]
    )
    ikm = code.secret + primary_nonce + new_nonce
    number = int.from_bytes(hkdf_sha256(ikm, b"", info, 8), "big") % 1_000_000
    text = f"{number:06d}"
    return f"{text[:3]} {text[3:]}"


def _check(nonce: bytes, key: bytes) -> None:
    if len(nonce) != LINK_NONCE_BYTES:
        raise InvalidKey(f"a link nonce is {LINK_NONCE_BYTES} bytes")
    if len(key) != 32:
        raise InvalidKey("identity keys are 32 bytes")
