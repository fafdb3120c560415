"""Baat's cryptography: pure functions and state records, no storage and no IO."""

from baat.crypto._signing import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
    InvalidSignature,
    prekey_signature_message,
    verify_prekey_signature,
)

__all__ = [
    "PREKEY_KIND_CURVE_ONE_TIME",
    "PREKEY_KIND_CURVE_SIGNED",
    "PREKEY_KIND_KEM_LAST_RESORT",
    "PREKEY_KIND_KEM_ONE_TIME",
    "InvalidSignature",
    "prekey_signature_message",
    "verify_prekey_signature",
]
