"""What a consent record says about where and by whom consent was given.

ISO/IEC TS 27560 and the Kantara Consent Receipt ask for the notice the person saw (an
absolute URL a third party can open), how consent was collected, and enough to tie the
record to the person without naming them. Baat records:

- ``notice.url``: the server address the person used plus ``/v1/policy`` (the version and
  SHA-256 sit next to it, so the exact text is fixed even after a new version);
- ``method``: ``cli``, ``web`` or ``api``, as declared by the client in the
  ``Baat-Collection-Method`` header (``account-erasure`` for withdrawals made by erasure);
- ``identity_key``: the SHA-256 fingerprint of the identity key of the device that asked.
  Only the person holds the private key, so they can prove the receipt is theirs; after
  erasure the server no longer holds the key, so the record stays unlinked for it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy.policy import Policy
from baat.server.storage.schema import devices

METHODS = ("cli", "web", "api")
HEADER = "Baat-Collection-Method"


def notice_url(base: str | None, policy: Policy) -> str:
    """The notice's absolute URL: on the server the person used, else the controller's site."""
    root = (base or policy.controller.website).rstrip("/")
    return f"{root}/v1/policy"


def fingerprint(identity_key: bytes) -> str:
    """``sha256:`` and the hex SHA-256 of a raw identity public key."""
    return "sha256:" + hashlib.sha256(identity_key).hexdigest()


async def identity(
    conn: AsyncConnection, account_id: str, device_id: int | None
) -> dict[str, Any] | None:
    """The fingerprint of the asking device's identity key (the account's first device when
    none is named); ``None`` for an account without devices."""
    query = select(devices.c.device_id, devices.c.identity_key).where(
        devices.c.account_id == account_id
    )
    if device_id is not None:
        query = query.where(devices.c.device_id == device_id)
    row = (await conn.execute(query.order_by(devices.c.device_id).limit(1))).first()
    if row is None:
        return None
    return {"device_id": int(row.device_id), "fingerprint": fingerprint(bytes(row.identity_key))}
