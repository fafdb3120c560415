"""Signed requests between regions (docs/PROTOCOL.md, "Between regions"; docs/DEPLOY.md).

Each region has its own Ed25519 key pair (``baat admin region-key``); each node of a region
holds its private key, and every other region is given its public key (``baat serve
--peer-key REGION=KEY``). A request from one region to another carries::

    Baat-Signature: key=<fingerprint>, time=<unix seconds>, nonce=<base64url>, sig=<base64url>

and the signature covers, in this order, separated by NUL bytes: a domain string, the
receiving region, the method, the path with its query, the SHA-256 of the body, the
``Baat-Fetcher`` header (empty when absent), the time and the nonce.

The receiver finds the caller by the key's fingerprint among its peers' keys, never from a
header the caller chooses; it refuses a time more than ``MAX_SKEW_S`` from its clock and a
nonce it has seen within twice that window (a replay). Naming the receiving region in the
signed text means a request one region made to another cannot be replayed to a third.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNATURE_HEADER = "baat-signature"
DOMAIN = b"Baat region request v1"
MAX_SKEW_S = 60
# Replay memory: bounded, and sized far above what linked regions send in one window.
MAX_NONCES = 1_000_000


class BadRegionSignature(Exception):
    """A region request whose signature is missing, malformed, unknown, stale or replayed;
    ``code`` is stable (``unauthorized``, ``unknown_region``, ``stale_request``,
    ``replayed_request``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    """A short name for a public key: the first 16 bytes of its SHA-256, base64url."""
    return _b64(hashlib.sha256(public_key).digest()[:16])


def encode_public_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def decode_public_key(text: str) -> bytes:
    """Raises ``ValueError`` unless ``text`` is the base64 of a 32-byte Ed25519 key."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("a region public key is base64") from exc
    Ed25519PublicKey.from_public_bytes(raw)  # raises ValueError on a wrong length
    return raw


def new_private_key_text() -> str:
    """A fresh private key as the one line ``baat admin region-key`` writes to its file."""
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def load_private_key(text: str) -> Ed25519PrivateKey:
    """Raises ``ValueError`` unless ``text`` is the base64 of a 32-byte private key."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("a region key file holds one line of base64") from exc
    return Ed25519PrivateKey.from_private_bytes(raw)


def signed_text(
    to_region: str,
    method: str,
    target: str,
    body: bytes,
    fetcher: str,
    at: int,
    nonce: str,
) -> bytes:
    parts = (
        DOMAIN,
        to_region.encode(),
        method.upper().encode(),
        target.encode(),
        hashlib.sha256(body).digest(),
        fetcher.encode(),
        str(at).encode(),
        nonce.encode(),
    )
    return b"\x00".join(parts)


@dataclass(frozen=True)
class RegionSigner:
    """Signs this region's requests to the others."""

    key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.key.public_key())

    def header(
        self,
        to_region: str,
        method: str,
        target: str,
        body: bytes = b"",
        fetcher: str = "",
        now: float | None = None,
    ) -> str:
        at = int(time.time() if now is None else now)
        nonce = _b64(secrets.token_bytes(16))
        sig = self.key.sign(signed_text(to_region, method, target, body, fetcher, at, nonce))
        return f"key={fingerprint(self.public_key)}, time={at}, nonce={nonce}, sig={_b64(sig)}"


def _parse(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(","):
        name, sep, text = part.strip().partition("=")
        if not sep or name in fields:
            raise BadRegionSignature("unauthorized", "malformed Baat-Signature header")
        fields[name] = text
    if set(fields) != {"key", "time", "nonce", "sig"}:
        raise BadRegionSignature("unauthorized", "Baat-Signature needs key, time, nonce, sig")
    return fields


class RegionVerifier:
    """Checks requests from the linked regions; one per node."""

    def __init__(
        self,
        local: str,
        peer_keys: Mapping[str, bytes],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.clock = clock
        self._by_fingerprint: dict[str, tuple[str, Ed25519PublicKey]] = {}
        for region, raw in peer_keys.items():
            self._by_fingerprint[fingerprint(raw)] = (
                region,
                Ed25519PublicKey.from_public_bytes(raw),
            )
        self._seen: OrderedDict[str, float] = OrderedDict()

    def caller(
        self, header: str | None, method: str, target: str, body: bytes, fetcher: str = ""
    ) -> str:
        """The region that signed this request; see ``verify``.

        Raises:
            BadRegionSignature: as ``verify``.
        """
        return self.verify(header, method, target, body, fetcher)[0]

    def verify(
        self, header: str | None, method: str, target: str, body: bytes, fetcher: str = ""
    ) -> tuple[str, str]:
        """The region that signed this request, and the request's nonce (for a memory
        shared between the nodes of this region, ``nonces.SharedNonces``).

        Raises:
            BadRegionSignature: missing, malformed, unknown key, bad signature, stale time
                or a nonce already used.
        """
        if not header:
            raise BadRegionSignature("unauthorized", "region requests must be signed")
        fields = _parse(header)
        found = self._by_fingerprint.get(fields["key"])
        if found is None:
            raise BadRegionSignature("unknown_region", "the signing key is not a linked region's")
        region, key = found
        try:
            at = int(fields["time"])
            sig = _unb64(fields["sig"])
        except (ValueError, binascii.Error) as exc:
            raise BadRegionSignature("unauthorized", "malformed Baat-Signature header") from exc
        nonce = fields["nonce"]
        if not 16 <= len(nonce) <= 64:
            raise BadRegionSignature("unauthorized", "the nonce must be 16-64 characters")
        try:
            key.verify(sig, signed_text(self.local, method, target, body, fetcher, at, nonce))
        except InvalidSignature as exc:
            raise BadRegionSignature(
                "unauthorized", "the region signature does not verify"
            ) from exc
        now = self.clock()
        if abs(now - at) > MAX_SKEW_S:
            raise BadRegionSignature(
                "stale_request", f"the request time is more than {MAX_SKEW_S} s from ours"
            )
        # Checked only after the signature, so that nobody can fill the memory with junk.
        self._forget(now)
        seen = f"{region}:{nonce}"
        if seen in self._seen:
            raise BadRegionSignature("replayed_request", "this request was already received")
        self._seen[seen] = now
        return region, nonce

    def _forget(self, now: float) -> None:
        # Insertion order is arrival order: drop what is past the window, and bound the rest.
        while self._seen and (
            len(self._seen) >= MAX_NONCES or next(iter(self._seen.values())) < now - 2 * MAX_SKEW_S
        ):
            self._seen.popitem(last=False)
