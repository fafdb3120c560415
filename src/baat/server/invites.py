"""One-time registration invites (``baat serve --registration invite``).

The operator makes codes with ``baat admin invite``; only the SHA-256 of each is stored
(``registration_invites``), so a copy of the database cannot be used to sign up. A code is
deleted in the statement that accepts it, so it admits exactly one account, and expired
codes are deleted on the way.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from baat.server.storage.base import StorageUnavailable
from baat.server.storage.schema import registration_invites

INVITE_TTL_S = 30 * 86_400
MAX_INVITE_CHARS = 64


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


async def create_invites(
    engine: AsyncEngine, count: int, ttl_s: int = INVITE_TTL_S, now: float | None = None
) -> tuple[list[str], int]:
    """Make ``count`` codes valid for ``ttl_s`` seconds; returns them and their expiry.

    Raises:
        ValueError: ``count`` or ``ttl_s`` is not positive.
    """
    if count < 1 or ttl_s < 1:
        raise ValueError("give a positive number of invites and a positive lifetime")
    expires_at = int(time.time() if now is None else now) + ttl_s
    codes = [secrets.token_urlsafe(15) for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(registration_invites),
            [{"code_hash": _hash(c), "expires_at": expires_at} for c in codes],
        )
    return codes, expires_at


async def consume_invite(engine: AsyncEngine, code: object, now: float | None = None) -> int | None:
    """Use up ``code``: its expiry if it was valid (it is now deleted), else None.

    Raises:
        StorageUnavailable: the database cannot be reached.
    """
    if not isinstance(code, str) or not 0 < len(code) <= MAX_INVITE_CHARS:
        return None
    at = int(time.time() if now is None else now)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                delete(registration_invites).where(registration_invites.c.expires_at < at)
            )
            row = (
                await conn.execute(
                    delete(registration_invites)
                    .where(registration_invites.c.code_hash == _hash(code))
                    .returning(registration_invites.c.expires_at)
                )
            ).first()
    except (sa_exc.DBAPIError, OSError) as exc:
        raise StorageUnavailable(str(exc).splitlines()[0]) from exc
    return int(row[0]) if row is not None else None


async def restore_invite(engine: AsyncEngine, code: str, expires_at: int) -> None:
    """Put back a code used by a registration that then failed (a taken name), so that
    the person can choose another name with the same code.

    Raises:
        StorageUnavailable: the database cannot be reached.
    """
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(registration_invites).values(code_hash=_hash(code), expires_at=expires_at)
            )
    except (sa_exc.DBAPIError, OSError) as exc:
        raise StorageUnavailable(str(exc).splitlines()[0]) from exc
