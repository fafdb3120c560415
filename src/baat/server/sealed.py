"""Sealed sender on the server: certificates, the access check, and nothing about senders.

The path of a sealed send (docs/PROTOCOL.md, "Sealed sender"; docs/CRYPTO.md §18):

1. A device asks for a sender certificate over HTTP (``GET /v1/certificate/delivery``,
   bearer). The server signs its account, device and identity keys for a day with the
   week's server certificate key, which the trust root vouches for. Clients pin the root
   from ``/.well-known/baat/keys``.
2. The device sends ``SealedSend`` frames, preferably on a connection that never
   authenticates. ``SealedGate.admit`` checks the recipient's delivery access (the SHA-256
   of the access key, or "from anyone"), then the rate of that access key and of that
   connection. A refusal is ``sealed_access_denied`` (the client sends the message
   authenticated instead) or ``rate_limited``.
3. The router accepts the envelopes with the empty sender ``("", 0)``: the envelope row's
   sender columns are NULL, the duplicate-send memory keys on the random message id alone,
   ``Deliver`` and the bus's ``Forward`` carry ``""`` and ``0``, and no log line names a
   connection's account for a sealed send.

Keys: the trust root is an Ed25519 key in the data directory (``sealed-sender-root.key``,
mode 0600; the nodes of one deployment share the file, as they share the receipt KEK). The
server certificate key of each week is derived from the root (HKDF over the week number),
so every node signs with the same key without storing it, and it rotates by itself; the
certificates of this week and the next are published so clients see a rotation coming.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from baat.crypto._primitives import hkdf_sha256
from baat.crypto.sealed import (
    ACCESS_KEY_BYTES,
    SENDER_CERTIFICATE_TTL_MS,
    ServerCertificate,
    access_verifier,
    encode_server_certificate,
    issue_sender_certificate,
    issue_server_certificate,
)
from baat.proto import ErrorCode, SealedSend, TokenBucket
from baat.server.storage.schema import delivery_access

if TYPE_CHECKING:
    from baat.server.config import ServerConfig
    from baat.server.storage.sql import SqlStore

ROOT_KEY_FILE = "sealed-sender-root.key"
WEEK_MS = 7 * 86_400_000
# How long a node trusts its memory of an account's delivery access before reading it
# again: a change made through another node takes effect here within this time.
ACCESS_CACHE_S = 10.0
ACCESS_CACHE_MAX = 100_000
MAX_PROFILE_FIELD = 512 * 1024  # an encrypted avatar


class SealedRefused(Exception):
    def __init__(self, code: ErrorCode, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


# -- keys ------------------------------------------------------------------------------------


def load_root(data_dir: Path) -> Ed25519PrivateKey:
    """Read, or create with mode 0600, the trust root's private key (32 raw bytes)."""
    path = data_dir / ROOT_KEY_FILE
    if path.exists():
        raw = path.read_bytes()
        if len(raw) != 32:
            raise ValueError(f"{path} must hold exactly 32 bytes")
        return Ed25519PrivateKey.from_private_bytes(raw)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes_raw())
    return key


class CertificateKeys:
    """The trust root and the weekly server certificate keys derived from it."""

    def __init__(self, root: Ed25519PrivateKey) -> None:
        self.root = root
        self.root_public = root.public_key().public_bytes_raw()
        self._seed = root.private_bytes_raw()
        self._weeks: dict[int, tuple[Ed25519PrivateKey, ServerCertificate]] = {}

    def week(self, week: int) -> tuple[Ed25519PrivateKey, ServerCertificate]:
        """The server certificate key of ``week`` (weeks since the epoch) and its
        certificate, valid until the end of the following week (the overlap lets sender
        certificates issued late in a week live their day)."""
        found = self._weeks.get(week)
        if found is None:
            seed = hkdf_sha256(self._seed, b"", b"Baat server certificate key %d" % week, 32)
            key = Ed25519PrivateKey.from_private_bytes(seed)
            cert = issue_server_certificate(
                self.root, week, key.public_key().public_bytes_raw(), (week + 2) * WEEK_MS
            )
            found = (key, cert)
            self._weeks = {w: v for w, v in self._weeks.items() if w >= week - 1}
            self._weeks[week] = found
        return found

    def issue(
        self,
        account_id: str,
        device_id: int,
        identity_key: bytes,
        identity_dh_key: bytes,
        now_ms: int,
    ) -> tuple[bytes, int]:
        """A sender certificate for a device, and when it expires."""
        key, cert = self.week(now_ms // WEEK_MS)
        expires = now_ms + SENDER_CERTIFICATE_TTL_MS
        data = issue_sender_certificate(
            key, cert, account_id, device_id, identity_key, identity_dh_key, expires
        )
        return data, expires

    def published(self, now_ms: int) -> dict[str, Any]:
        """The ``sealed_sender`` member of ``/.well-known/baat/keys``."""
        week = now_ms // WEEK_MS
        return {
            "trust_root": _b64(self.root_public),
            "server_certificates": [
                _b64(encode_server_certificate(self.week(w)[1])) for w in (week, week + 1)
            ],
        }


# -- the access check --------------------------------------------------------------------


@dataclass
class _Access:
    verifier: bytes | None
    anyone: bool
    read_at: float


@dataclass
class SealedGate:
    """Who may send an account sealed messages, and how fast (steps 2 and 3 above)."""

    store: SqlStore
    keys: CertificateKeys
    envelopes_per_second: float = 5000.0
    envelope_burst: float = 10_000.0
    clock: Any = time.monotonic
    _access: OrderedDict[str, _Access] = field(default_factory=OrderedDict)
    # Per access key: keyed by the key's SHA-256, a value the database also holds, never by
    # the sender. Bounded: the oldest bucket is forgotten first.
    _buckets: OrderedDict[bytes, TokenBucket] = field(default_factory=OrderedDict)

    async def access(self, account_id: str) -> _Access:
        now = self.clock()
        cached = self._access.get(account_id)
        if cached is not None and now - cached.read_at < ACCESS_CACHE_S:
            return cached
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(delivery_access.c.verifier, delivery_access.c.anyone).where(
                        delivery_access.c.account_id == account_id
                    )
                )
            ).first()
        found = _Access(
            None if row is None or row[0] is None else bytes(row[0]),
            bool(row[1]) if row is not None else False,
            now,
        )
        self._access[account_id] = found
        self._access.move_to_end(account_id)
        while len(self._access) > ACCESS_CACHE_MAX:
            self._access.popitem(last=False)
        return found

    def cached(self, account_id: str) -> bool:
        """True when a sealed send to this account can be checked from memory."""
        found = self._access.get(account_id)
        return found is not None and self.clock() - found.read_at < ACCESS_CACHE_S

    def forget(self, account_id: str) -> None:
        self._access.pop(account_id, None)

    async def admit(self, frame: SealedSend, connection: TokenBucket) -> str:
        """Check a sealed send; returns the identity its recipient quotas are counted under.

        Raises:
            SealedRefused: no valid access (``sealed_access_denied``) or too fast
                (``rate_limited``); nothing was accepted.
        """
        access = await self.access(frame.recipient_account)
        presented = frame.access_key
        digest = access_verifier(presented) if len(presented) == ACCESS_KEY_BYTES else b""
        if access.verifier is not None and digest and _equal(digest, access.verifier):
            bucket_key = digest
        elif access.anyone:
            # Unrestricted: anyone may send, so all such senders to this account share one
            # bucket (a spammer slows only the recipient that opened its door).
            bucket_key = b"anyone:" + frame.recipient_account.encode()
        else:
            raise SealedRefused(
                ErrorCode.SEALED_ACCESS_DENIED,
                "the access key does not allow sealed messages to this account; "
                "send it authenticated",
            )
        now = self.clock()
        cost = len(frame.envelopes)
        wait = connection.take(now, cost)
        if wait:
            raise SealedRefused(
                ErrorCode.RATE_LIMITED,
                "sealed send rate of this connection exceeded",
                int(wait * 1000) + 1,
            )
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = TokenBucket(self.envelopes_per_second, self.envelope_burst, now)
            self._buckets[bucket_key] = bucket
            while len(self._buckets) > ACCESS_CACHE_MAX:
                self._buckets.popitem(last=False)
        wait = bucket.take(now, cost)
        if wait:
            raise SealedRefused(
                ErrorCode.RATE_LIMITED,
                "sealed send rate of this access key exceeded",
                int(wait * 1000) + 1,
            )
        return "sealed:" + hashlib.sha256(bucket_key).hexdigest()[:16]

    def connection_bucket(self) -> TokenBucket:
        return TokenBucket(self.envelopes_per_second, self.envelope_burst, self.clock())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


def open_gate(config: ServerConfig, store: SqlStore) -> SealedGate:
    return SealedGate(
        store,
        CertificateKeys(load_root(config.data_dir)),
        envelopes_per_second=config.envelopes_per_second,
        envelope_burst=config.envelope_burst,
    )
