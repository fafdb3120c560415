"""Safety numbers: what two users compare to check each other's identity keys.

Signal's numeric fingerprint design, with Baat's keys:

* Each side's fingerprint is ``hash = version || keys || user_id`` followed by 5200 rounds of
  ``hash = SHA-512(hash || keys)``, where ``version`` is a 2-byte 0, ``keys`` the raw
  Ed25519 identity keys of that user's devices, sorted and concatenated, and ``user_id`` the
  stable user identifier in UTF-8.
* Each side gives 30 digits: six 5-byte big-endian chunks of its hash, each modulo 100000.
  The displayed 60 digits put the smaller 30-digit half first, so both users see the same
  number; it is shown as 12 groups of 5.
* The QR payload is ``0x01 || local[:32] || remote[:32]``; the scanner checks that the
  scanned local half equals its remote half and the other way round, in constant time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from baat.crypto._errors import InvalidKey
from baat.crypto._primitives import ED25519_KEY_BYTES, constant_time_equal, sha512

__all__ = [
    "FINGERPRINT_ITERATIONS",
    "SafetyNumber",
    "compare_safety_numbers",
    "safety_number",
]

FINGERPRINT_ITERATIONS: Final = 5200
_HASH_VERSION: Final = b"\x00\x00"
_QR_VERSION: Final = 1
_HALF: Final = 32


class SafetyNumber(msgspec.Struct, frozen=True):
    """The two 32-byte fingerprints, ours first."""

    local: bytes
    remote: bytes

    def digits(self) -> str:
        """The 60 digits, identical on both sides. Raises: nothing."""
        halves = sorted((_digits(self.local), _digits(self.remote)))
        return halves[0] + halves[1]

    def display(self) -> str:
        """The 60 digits as 12 space-separated groups of 5. Raises: nothing."""
        text = self.digits()
        return " ".join(text[i : i + 5] for i in range(0, 60, 5))

    def qr_payload(self) -> bytes:
        """65 bytes to show as a QR code. Raises: nothing."""
        return bytes([_QR_VERSION]) + self.local + self.remote

    def matches_scanned(self, payload: bytes) -> bool:
        """Whether a payload scanned from the peer's screen is this safety number.

        Raises: nothing; anything malformed is simply not a match.
        """
        if len(payload) != 1 + 2 * _HALF or payload[0] != _QR_VERSION:
            return False
        their_local, their_remote = payload[1 : 1 + _HALF], payload[1 + _HALF :]
        # Evaluate both comparisons so the timing does not tell which half differed.
        first = constant_time_equal(their_local, self.remote)
        second = constant_time_equal(their_remote, self.local)
        return first & second


def _digits(fingerprint: bytes) -> str:
    return "".join(
        f"{int.from_bytes(fingerprint[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def _fingerprint(user_id: str | bytes, keys: bytes | Iterable[bytes], iterations: int) -> bytes:
    key_list = [keys] if isinstance(keys, bytes) else list(keys)
    if not key_list or any(len(k) != ED25519_KEY_BYTES for k in key_list):
        raise InvalidKey("identity keys must be one or more 32-byte Ed25519 keys")
    key_bytes = b"".join(sorted(key_list))
    ident = user_id.encode() if isinstance(user_id, str) else user_id
    digest = _HASH_VERSION + key_bytes + ident
    for _ in range(iterations):
        digest = sha512(digest, key_bytes)
    return digest[:_HALF]


def safety_number(
    local_user_id: str | bytes,
    local_identity_keys: bytes | Iterable[bytes],
    remote_user_id: str | bytes,
    remote_identity_keys: bytes | Iterable[bytes],
    *,
    iterations: int = FINGERPRINT_ITERATIONS,
) -> SafetyNumber:
    """The safety number between two users, given their stable ids and Ed25519 keys.

    Pass one key, or the keys of all of a user's devices (order does not matter).

    Raises:
        InvalidKey: no key, or a key that is not 32 bytes.
    """
    return SafetyNumber(
        _fingerprint(local_user_id, local_identity_keys, iterations),
        _fingerprint(remote_user_id, remote_identity_keys, iterations),
    )


def compare_safety_numbers(a: str, b: str) -> bool:
    """Compare two displayed safety numbers, ignoring whitespace, in constant time.

    Raises: nothing.
    """
    return constant_time_equal("".join(a.split()).encode(), "".join(b.split()).encode())
