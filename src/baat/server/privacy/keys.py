"""The server's receipt signing keys.

A key is generated on first start and kept in ``server_keys``: the public half in clear,
the private half sealed with AES-256-GCM under a key-encryption key (KEK) in the server's
data directory (``receipt-signing.kek``, mode 0600). A database dump or backup alone cannot
forge receipts. A node whose KEK opens none of the stored keys creates its own; all keys,
retired ones included, stay published so that every receipt ever issued can be checked.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from baat.privacy.receipts import ALG
from baat.server.privacy.schema import server_keys

KEK_FILE = "receipt-signing.kek"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: OKPKey  # private


def _public_jwk(public_raw: bytes, kid: str) -> dict[str, Any]:
    jwk = OKPKey.import_key(Ed25519PublicKey.from_public_bytes(public_raw)).as_dict(private=False)
    return {**jwk, "kid": kid, "alg": ALG, "use": "sig"}


def load_kek(data_dir: Path) -> bytes:
    """Read, or create with mode 0600, the key-encryption key."""
    path = data_dir / KEK_FILE
    if path.exists():
        kek = path.read_bytes()
        if len(kek) != 32:
            raise ValueError(f"{path} must hold exactly 32 bytes")
        return kek
    data_dir.mkdir(parents=True, exist_ok=True)
    kek = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(kek)
    return kek


def _seal(kek: bytes, kid: str, private_raw: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(kek).encrypt(nonce, private_raw, kid.encode())


def _open(kek: bytes, kid: str, sealed: bytes) -> bytes | None:
    try:
        return AESGCM(kek).decrypt(sealed[:12], sealed[12:], kid.encode())
    except (InvalidTag, ValueError):
        return None


async def load_or_create(engine: AsyncEngine, kek: bytes, now: int) -> SigningKey:
    """The oldest active key this node can open, creating one when there is none."""
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(server_keys)
                .where(server_keys.c.retired_at.is_(None))
                .order_by(server_keys.c.created_at, server_keys.c.kid)
            )
        ).all()
        for row in rows:
            raw = _open(kek, row.kid, row.private_key)
            if raw is not None:
                return SigningKey(
                    row.kid, OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(raw))
                )
        private = Ed25519PrivateKey.generate()
        key = OKPKey.import_key(private)
        kid = key.thumbprint()
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        await conn.execute(
            server_keys.insert().values(
                kid=kid,
                alg=ALG,
                public_key=public_raw,
                private_key=_seal(kek, kid, raw),
                created_at=now,
                retired_at=None,
            )
        )
        return SigningKey(kid, key)


async def jwks(engine: AsyncEngine) -> dict[str, Any]:
    """Every public key, active or retired, as a JWK Set (RFC 7517 section 5)."""
    async with engine.connect() as conn:
        return await jwks_on(conn)


async def jwks_on(conn: AsyncConnection) -> dict[str, Any]:
    """``jwks`` inside the caller's transaction."""
    rows = (
        await conn.execute(
            select(server_keys.c.kid, server_keys.c.public_key).order_by(
                server_keys.c.created_at, server_keys.c.kid
            )
        )
    ).all()
    return {"keys": [_public_jwk(r.public_key, r.kid) for r in rows]}
