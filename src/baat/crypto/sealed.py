"""Sealed sender: the server routes a message without learning who sent it.

Follows Signal's sealed sender v1 ("Technology preview: Sealed sender for Signal", 2018, and
libsignal ``sealed_sender.rs``, ``SealedSenderV1``), on ``cryptography`` primitives, with
AES-256-GCM in place of AES-CTR plus a truncated HMAC (docs/CRYPTO.md §18).

Trust chain (§18.1)::

    trust root (Ed25519, pinned by the client from /.well-known/baat/keys)
      signs  ServerCertificate [key_id, key, not_after_ms]        rotates weekly
        signs SenderCertificate [account, device, identity keys, expires_ms, server cert]
                                                                   lives a day

Outer layer (§18.2), to the recipient device's X25519 identity key ``R``::

    0x11 || E_pub (32) || static_ct (32 + 16) || message_ct (n + 16)

    salt_e        = "Baat sealed sender v1" || R || E_pub
    chain, k_s    = HKDF-SHA256(X25519(e, R), salt_e, "Baat sealed ephemeral", 64)
    static_ct     = AES-256-GCM(k_s, 0^12, S_pub, aad = 0x11 || E_pub)
    k_m           = HKDF-SHA256(X25519(s, R), chain || static_ct, "Baat sealed static", 32)
    message_ct    = AES-256-GCM(k_m, 0^12, content, aad = 0x11 || E_pub || static_ct)

``S`` is the sender device's X25519 identity key; the recipient checks that the certificate
inside names that same key, so a valid certificate cannot be replayed by someone else. Both
keys are fresh per message (a new ephemeral ``e``), so the zero nonce is never reused.

Delivery access keys (§18.3) are derived from the 32-byte profile key; the server keeps only
their SHA-256. Profiles (§18.4) are encrypted under the same profile key.

Pure: no storage, no IO. The caches below are plain memory owned by the caller.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import OrderedDict
from typing import Annotated, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from baat.crypto._errors import CryptoError, DecryptionError, InvalidKey, MalformedMessage
from baat.crypto._primitives import (
    X25519KeyPair,
    check_x25519_public,
    constant_time_equal,
    ed25519_verify,
    hkdf_sha256,
)

SEALED_VERSION: Final = 0x11
PROFILE_KEY_BYTES: Final = 32
ACCESS_KEY_BYTES: Final = 16
SENDER_CERTIFICATE_TTL_MS: Final = 24 * 3600 * 1000
# A certificate that expired less than this ago is still accepted: clocks differ and an
# envelope may wait in a queue (libsignal checks expiry against the server's arrival time).
EXPIRY_GRACE_MS: Final = 0

_SALT_PREFIX: Final = b"Baat sealed sender v1"
_INFO_EPHEMERAL: Final = b"Baat sealed ephemeral"
_INFO_STATIC: Final = b"Baat sealed static"
_SERVER_CERT_DOMAIN: Final = b"Baat server certificate v1\x00"
_SENDER_CERT_DOMAIN: Final = b"Baat sender certificate v1\x00"
_ACCESS_INFO: Final = b"Baat delivery access key v1"
_PROFILE_INFO: Final = b"Baat profile v1"
_ZERO_NONCE: Final = bytes(12)
_HEADER: Final = 1 + 32 + 32 + 16
# Profile names are padded to one of these lengths so that their size says little (Signal
# pads to 53 or 257 bytes for the same reason).
_NAME_BUCKETS: Final = (64, 256)

Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Bytes64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class InvalidCertificate(CryptoError):
    """A sender certificate that is forged, expired, signed by an unknown server key, or
    names another key than the one that sealed the message. ``claimed`` is the sender the
    certificate names (unverified), for an incident record; empty when it did not parse."""

    def __init__(self, message: str, claimed: tuple[str, int] = ("", 0)) -> None:
        super().__init__(message)
        self.claimed = claimed


class ServerCertificate(msgspec.Struct, frozen=True, array_like=True):
    key_id: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    key: Bytes32
    not_after_ms: Annotated[int, msgspec.Meta(ge=0)]
    signature: Bytes64


class SenderCertificate(msgspec.Struct, frozen=True, array_like=True):
    account_id: Annotated[str, msgspec.Meta(max_length=128)]
    device_id: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
    identity_key: Bytes32
    identity_dh_key: Bytes32
    expires_ms: Annotated[int, msgspec.Meta(ge=0)]
    server: ServerCertificate
    signature: Bytes64


class SealedContent(msgspec.Struct, frozen=True, array_like=True):
    """What the static layer encrypts (libsignal ``UnidentifiedSenderMessageContent``)."""

    certificate: bytes
    content_type: int
    inner: bytes


_encoder = msgspec.msgpack.Encoder()
_sender_decoder = msgspec.msgpack.Decoder(SenderCertificate)
_server_decoder = msgspec.msgpack.Decoder(ServerCertificate)
_content_decoder = msgspec.msgpack.Decoder(SealedContent)


# -- certificates (§18.1) -----------------------------------------------------------------


def _server_cert_message(key_id: int, key: bytes, not_after_ms: int) -> bytes:
    return _SERVER_CERT_DOMAIN + struct.pack(">IQ", key_id, not_after_ms) + key


def _sender_cert_message(
    account_id: str,
    device_id: int,
    identity_key: bytes,
    identity_dh_key: bytes,
    expires_ms: int,
    server: ServerCertificate,
) -> bytes:
    account = account_id.encode()
    return (
        _SENDER_CERT_DOMAIN
        + struct.pack(">H", len(account))
        + account
        + struct.pack(">IQ", device_id, expires_ms)
        + identity_key
        + identity_dh_key
        + _encoder.encode(server)
    )


def issue_server_certificate(
    root: Ed25519PrivateKey, key_id: int, key: bytes, not_after_ms: int
) -> ServerCertificate:
    """The trust root vouches for a server certificate key until ``not_after_ms``."""
    signature = root.sign(_server_cert_message(key_id, key, not_after_ms))
    return ServerCertificate(key_id, key, not_after_ms, signature)


def issue_sender_certificate(
    server_key: Ed25519PrivateKey,
    server: ServerCertificate,
    account_id: str,
    device_id: int,
    identity_key: bytes,
    identity_dh_key: bytes,
    expires_ms: int,
) -> bytes:
    """A sender certificate, encoded, signed by the server certificate key."""
    message = _sender_cert_message(
        account_id, device_id, identity_key, identity_dh_key, expires_ms, server
    )
    cert = SenderCertificate(
        account_id,
        device_id,
        identity_key,
        identity_dh_key,
        expires_ms,
        server,
        server_key.sign(message),
    )
    return _encoder.encode(cert)


def decode_sender_certificate(data: bytes) -> SenderCertificate:
    """Raises:
    MalformedMessage: not a sender certificate."""
    try:
        return _sender_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"not a sender certificate: {exc}") from None


def encode_server_certificate(cert: ServerCertificate) -> bytes:
    return _encoder.encode(cert)


def decode_server_certificate(data: bytes) -> ServerCertificate:
    """Raises:
    MalformedMessage: not a server certificate."""
    try:
        return _server_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"not a server certificate: {exc}") from None


class CertificateValidator:
    """Checks sender certificates against pinned trust roots.

    Several roots may be pinned at once (the client adds a new one only when the old one
    signed it, see docs/CRYPTO.md §18.1). Verified certificates are remembered by their
    exact bytes, so that the hundredth message from one contact costs no signature check;
    the expiry is still checked every time.
    """

    __slots__ = ("_memory", "_verified", "roots")

    def __init__(self, roots: list[bytes], memory: int = 1024) -> None:
        self.roots = list(roots)
        self._verified: OrderedDict[bytes, SenderCertificate] = OrderedDict()
        self._memory = memory

    def validate(self, data: bytes, now_ms: int) -> SenderCertificate:
        """The certificate, if a pinned root vouches for it and it has not expired.

        Raises:
            InvalidCertificate: forged, expired or signed by a server key no root vouches for.
        """
        cert = self._verified.get(data)
        if cert is None:
            try:
                cert = _sender_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise InvalidCertificate("sender certificate does not parse") from None
            self._verify(cert)
            self._verified[data] = cert
            if len(self._verified) > self._memory:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(data)
        claimed = (cert.account_id, cert.device_id)
        if cert.expires_ms + EXPIRY_GRACE_MS < now_ms:
            raise InvalidCertificate("sender certificate expired", claimed)
        if cert.server.not_after_ms < now_ms:
            raise InvalidCertificate("server certificate expired", claimed)
        return cert

    def vouches(self, server: ServerCertificate) -> bool:
        """True when a pinned root signed this server certificate (a root rotation is
        accepted only through one, docs/CRYPTO.md §18.1)."""
        message = _server_cert_message(server.key_id, server.key, server.not_after_ms)
        for root in self.roots:
            try:
                ed25519_verify(root, server.signature, message)
                return True
            except (CryptoError, ValueError):
                continue
        return False

    def _verify(self, cert: SenderCertificate) -> None:
        claimed = (cert.account_id, cert.device_id)
        server = cert.server
        if not self.vouches(server):
            raise InvalidCertificate("server certificate not signed by a pinned root", claimed)
        try:
            ed25519_verify(
                server.key,
                cert.signature,
                _sender_cert_message(
                    cert.account_id,
                    cert.device_id,
                    cert.identity_key,
                    cert.identity_dh_key,
                    cert.expires_ms,
                    server,
                ),
            )
        except (CryptoError, ValueError):
            raise InvalidCertificate("sender certificate signature is forged", claimed) from None


# -- the outer layer (§18.2) --------------------------------------------------------------


class SealCache:
    """``X25519(s, R)`` per recipient key: constant for a sender and recipient pair, so a
    sender writing to the same contacts computes it once (one scalar multiplication of the
    two per seal saved). Bounded; memory only."""

    __slots__ = ("_shared", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._shared: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()
        self._size = size

    def static_secret(self, ours: X25519KeyPair, theirs: bytes) -> bytes:
        key = (ours.public, theirs)
        secret = self._shared.get(key)
        if secret is None:
            secret = ours.exchange(theirs)
            self._shared[key] = secret
            if len(self._shared) > self._size:
                self._shared.popitem(last=False)
        return secret


_DEFAULT_CACHE = SealCache()


def _ephemeral_keys(secret: bytes, recipient: bytes, ephemeral: bytes) -> tuple[bytes, bytes]:
    okm = hkdf_sha256(secret, _SALT_PREFIX + recipient + ephemeral, _INFO_EPHEMERAL, 64)
    return okm[:32], okm[32:]


def seal(
    recipient_dh_key: bytes,
    sender_dh: X25519KeyPair,
    certificate: bytes,
    inner: bytes,
    content_type: int = 0,
    cache: SealCache | None = None,
) -> bytes:
    """Encrypt ``inner`` and the sender's certificate to the recipient device.

    Raises:
        InvalidKey: the recipient key is not a valid X25519 public key.
    """
    recipient = check_x25519_public(recipient_dh_key, "recipient identity key")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    try:
        secret = eph.exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError as exc:
        raise InvalidKey("recipient identity key is a low-order point") from exc
    chain, static_key = _ephemeral_keys(secret, recipient, eph_pub)
    head = bytes([SEALED_VERSION]) + eph_pub
    static_ct = AESGCM(static_key).encrypt(_ZERO_NONCE, sender_dh.public, head)
    shared = (cache or _DEFAULT_CACHE).static_secret(sender_dh, recipient)
    message_key = hkdf_sha256(shared, chain + static_ct, _INFO_STATIC, 32)
    body = _encoder.encode(SealedContent(certificate, content_type, inner))
    aad = head + static_ct
    return aad + AESGCM(message_key).encrypt(_ZERO_NONCE, body, aad)


class Opened(msgspec.Struct, frozen=True):
    """A sealed message opened and its sender's certificate checked."""

    sender: SenderCertificate
    content_type: int
    inner: bytes


def open_sealed(
    data: bytes,
    recipient_dh: X25519KeyPair,
    validator: CertificateValidator,
    now_ms: int,
    cache: SealCache | None = None,
) -> Opened:
    """Open a sealed message addressed to ``recipient_dh`` and check who sent it.

    Raises:
        MalformedMessage: too short or an unknown version.
        DecryptionError: not sealed to this key, or altered.
        InvalidCertificate: the certificate is forged or expired, or names another key than
            the one that sealed the message.
    """
    if len(data) < _HEADER + 16 or data[0] != SEALED_VERSION:
        raise MalformedMessage("not a sealed sender message")
    eph_pub = data[1:33]
    static_ct = data[33:_HEADER]
    try:
        secret = recipient_dh.exchange(eph_pub)
    except (CryptoError, ValueError) as exc:
        raise DecryptionError("bad ephemeral key") from exc
    chain, static_key = _ephemeral_keys(secret, recipient_dh.public, eph_pub)
    try:
        sender_pub = AESGCM(static_key).decrypt(_ZERO_NONCE, static_ct, data[:33])
        shared = (cache or _DEFAULT_CACHE).static_secret(recipient_dh, sender_pub)
        message_key = hkdf_sha256(shared, chain + static_ct, _INFO_STATIC, 32)
        body = AESGCM(message_key).decrypt(_ZERO_NONCE, data[_HEADER:], data[:_HEADER])
    except (InvalidTag, CryptoError, ValueError):
        raise DecryptionError("sealed message failed authentication") from None
    try:
        content = _content_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise MalformedMessage("sealed content does not parse") from None
    cert = validator.validate(content.certificate, now_ms)
    if not constant_time_equal(cert.identity_dh_key, sender_pub):
        # libsignal: "sender certificate key does not match message key"
        raise InvalidCertificate(
            "certificate names another key than the sealing one",
            (cert.account_id, cert.device_id),
        )
    return Opened(cert, content.content_type, content.inner)


# -- delivery access keys (§18.3) ---------------------------------------------------------


def new_profile_key() -> bytes:
    return os.urandom(PROFILE_KEY_BYTES)


def access_key(profile_key: bytes) -> bytes:
    """The delivery access key a contact presents with a sealed send.

    Raises:
        InvalidKey: the profile key is not 32 bytes.
    """
    if len(profile_key) != PROFILE_KEY_BYTES:
        raise InvalidKey("a profile key is 32 bytes")
    return hkdf_sha256(profile_key, b"", _ACCESS_INFO, ACCESS_KEY_BYTES)


def access_verifier(key: bytes) -> bytes:
    """What the server stores of an access key: its SHA-256, so that a copy of the database
    does not hand out the right to send sealed messages."""
    return hashlib.sha256(key).digest()


def check_access(key: bytes, verifier: bytes) -> bool:
    return len(key) == ACCESS_KEY_BYTES and constant_time_equal(access_verifier(key), verifier)


# -- encrypted profiles (§18.4) -----------------------------------------------------------


def _profile_key(profile_key: bytes, field: bytes) -> bytes:
    if len(profile_key) != PROFILE_KEY_BYTES:
        raise InvalidKey("a profile key is 32 bytes")
    return hkdf_sha256(profile_key, b"", _PROFILE_INFO + b"\x00" + field, 32)


def encrypt_profile_field(profile_key: bytes, field: str, value: bytes) -> bytes:
    """``nonce (12) || AES-256-GCM(value padded)``; the display name is padded to a bucket.

    Raises:
        InvalidKey: the profile key is not 32 bytes.
        ValueError: a name longer than the largest bucket.
    """
    if field == "name":
        size = next((b for b in _NAME_BUCKETS if b >= len(value) + 1), None)
        if size is None:
            raise ValueError("display name too long")
        value = value + b"\x80" + bytes(size - len(value) - 1)
    nonce = os.urandom(12)
    key = _profile_key(profile_key, field.encode())
    return nonce + AESGCM(key).encrypt(nonce, value, field.encode())


def decrypt_profile_field(profile_key: bytes, field: str, blob: bytes) -> bytes:
    """Raises:
    DecryptionError: not encrypted under this profile key."""
    key = _profile_key(profile_key, field.encode())
    try:
        value = AESGCM(key).decrypt(blob[:12], blob[12:], field.encode())
    except (InvalidTag, ValueError):
        raise DecryptionError("profile field does not open with this key") from None
    if field == "name":
        end = value.rfind(b"\x80")
        if end < 0 or any(value[end + 1 :]):
            raise DecryptionError("bad profile padding")
        value = value[:end]
    return value
