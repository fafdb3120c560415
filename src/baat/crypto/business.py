"""Signed business profiles: who can read a chat with a business (docs/BUSINESS.md §2).

A business account publishes a **business profile**: the legal entity, its country, a
contact, the purposes it uses chat content for, how long it keeps it, and every host or
processor that can read messages (name, country, role), each tied to the device ids it runs.
The business's own devices are listed too, so that the profile names *every* device a
message to the business is encrypted to (§4): a client refuses a device that the current
profile does not name.

The profile is signed by the *account identity key* (the primary device's Ed25519 key, the
same key that signs the device list, ``device_list.py``) and carries a version that only
grows, so a server cannot hand out an older profile without the client noticing.

:func:`disclosure_digest` covers what the user is told before the first message (entity,
country, purposes, retention, processors and their devices, but not the display name, the
contact or the business's own devices): when it changes, the next message is held until
the user accepts the new disclosure (§3).

Everything here is a pure function over bytes; nothing is stored or sent.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec
from cryptography.hazmat.primitives import hashes

from baat.crypto._errors import CryptoError
from baat.crypto._primitives import ED25519_KEY_BYTES, ed25519_verify
from baat.crypto.keys import IdentityKeyPair

__all__ = [
    "BUSINESS_PROFILE_FORMAT",
    "MAX_PROFILE_BYTES",
    "VERIFICATION_TYP",
    "BusinessProfile",
    "InvalidBusinessProfile",
    "Processor",
    "disclosure_digest",
    "named_devices",
    "read_unverified",
    "sign_business_profile",
    "unnamed_devices",
    "verify_business_profile",
]

BUSINESS_PROFILE_FORMAT: Final = 1
# The JWS type of the operator's verification statement (server/business.py), checked by
# clients against the server's published keys.
VERIFICATION_TYP: Final = "baat-business-verification+jws"
MAX_PROFILE_BYTES: Final = 16 * 1024
MAX_PROCESSORS: Final = 16
MAX_TEXT: Final = 200
_DOMAIN: Final = b"Baat business profile v1\x00"
_DIGEST_DOMAIN: Final = b"Baat business disclosure v1\x00"
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class InvalidBusinessProfile(CryptoError, ValueError):
    """A business profile that does not parse, is not well formed, or whose signature does
    not verify with the account identity key."""


class Processor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A host or processor that can read messages: it runs ``devices`` of the account."""

    name: str
    country: str  # ISO 3166-1 alpha-2
    role: str  # e.g. "host", "support desk"
    devices: tuple[int, ...]


class BusinessProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    account_id: str
    version: int
    display_name: str
    entity: str  # the legal entity
    country: str  # ISO 3166-1 alpha-2, where the entity is established
    contact: str
    purposes: tuple[str, ...]
    retention: str
    devices: tuple[int, ...]  # the business's own devices
    processors: tuple[Processor, ...] = ()
    issued_at: int = 0


class _Signed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    profile: bytes
    signature: bytes


_profile_decoder = msgspec.msgpack.Decoder(BusinessProfile)
_signed_decoder = msgspec.msgpack.Decoder(_Signed)
_encoder = msgspec.msgpack.Encoder()


def _check(p: BusinessProfile) -> None:
    """Raises: InvalidBusinessProfile."""
    if p.v != BUSINESS_PROFILE_FORMAT:
        raise InvalidBusinessProfile(f"unknown business profile format {p.v}")
    if p.version < 1:
        raise InvalidBusinessProfile("the profile version starts at 1")
    texts = [p.display_name, p.entity, p.contact, p.retention, *p.purposes]
    texts += [t for q in p.processors for t in (q.name, q.role)]
    if not all(t.strip() and len(t) <= MAX_TEXT for t in texts):
        raise InvalidBusinessProfile(f"every text is 1 to {MAX_TEXT} characters")
    if not p.purposes:
        raise InvalidBusinessProfile("a profile names at least one purpose")
    countries = [p.country, *(q.country for q in p.processors)]
    if not all(_COUNTRY.match(c) for c in countries):
        raise InvalidBusinessProfile("countries are ISO 3166-1 alpha-2 codes (e.g. IN, DE)")
    if len(p.processors) > MAX_PROCESSORS:
        raise InvalidBusinessProfile(f"at most {MAX_PROCESSORS} hosts or processors")
    seen: set[int] = set()
    for group in (p.devices, *(q.devices for q in p.processors)):
        for d in group:
            if d < 1 or d in seen:
                raise InvalidBusinessProfile(f"device {d} is named twice or is not a device id")
            seen.add(d)
    if any(not q.devices for q in p.processors):
        raise InvalidBusinessProfile("every host or processor is tied to at least one device")
    if 1 not in p.devices:
        # The primary device holds the account identity key that signs this profile.
        raise InvalidBusinessProfile("the primary device (1) is the business's own")


def sign_business_profile(identity: IdentityKeyPair, profile: BusinessProfile) -> bytes:
    """The signed profile as stored on the server.

    Raises:
        InvalidBusinessProfile: the profile is not well formed.
    """
    _check(profile)
    body = _encoder.encode(profile)
    if len(body) > MAX_PROFILE_BYTES - 128:
        raise InvalidBusinessProfile("the profile is too large")
    return _encoder.encode(_Signed(body, identity.sign(_DOMAIN + body)))


def verify_business_profile(
    account_key: bytes, blob: bytes, *, account_id: str | None = None
) -> BusinessProfile:
    """Check ``blob`` against the account identity key and return the profile.

    Raises:
        InvalidBusinessProfile: malformed, signed by another key, or for another account.
    """
    if len(blob) > MAX_PROFILE_BYTES or len(account_key) != ED25519_KEY_BYTES:
        raise InvalidBusinessProfile("profile too large or key of the wrong size")
    try:
        signed = _signed_decoder.decode(blob)
        ed25519_verify(account_key, signed.signature, _DOMAIN + signed.profile)
        profile = _profile_decoder.decode(signed.profile)
    except (msgspec.DecodeError, msgspec.ValidationError, CryptoError) as exc:
        raise InvalidBusinessProfile(f"the business profile does not verify: {exc}") from exc
    _check(profile)
    if account_id is not None and profile.account_id != account_id:
        raise InvalidBusinessProfile("the profile is another account's")
    return profile


def read_unverified(blob: bytes) -> BusinessProfile:
    """The profile a signed blob carries, signature unchecked: for counts over profiles that
    were verified when they were stored, never for deciding whom to encrypt to.

    Raises:
        InvalidBusinessProfile: it does not parse.
    """
    try:
        return _profile_decoder.decode(_signed_decoder.decode(blob).profile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidBusinessProfile(f"not a business profile: {exc}") from exc


def named_devices(profile: BusinessProfile) -> frozenset[int]:
    """Every device the profile names: the business's own and each processor's."""
    return frozenset(profile.devices).union(*(q.devices for q in profile.processors))


def unnamed_devices(profile: BusinessProfile, device_ids: set[int] | frozenset[int]) -> list[int]:
    """The devices of ``device_ids`` that the profile does not name, sorted."""
    return sorted(set(device_ids) - named_devices(profile))


def disclosure_digest(profile: BusinessProfile) -> str:
    """SHA-256 (hex) of what the user accepts: a change here holds the next message."""
    disclosed = (
        profile.account_id,
        profile.entity,
        profile.country,
        sorted(profile.purposes),
        profile.retention,
        sorted((q.name, q.country, q.role, sorted(q.devices)) for q in profile.processors),
    )
    h = hashes.Hash(hashes.SHA256())
    h.update(_DIGEST_DOMAIN + _encoder.encode(disclosed))
    return h.finalize().hex()
