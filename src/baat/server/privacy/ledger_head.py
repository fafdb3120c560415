"""The consent ledger's signed head: what makes deleting the newest record detectable.

A hash chain proves that nothing in the middle changed, but not that nothing was cut off the
end: the chain without its last record is a valid chain. So the server signs the newest
record's sequence number and hash after every append (in the same transaction, in
``ledger_head``), publishes it at ``/.well-known/baat/ledger-head`` and returns it with every
receipt. Then

1. ``admin verify-ledger`` and every consent decision find the chain ending before the
   stored head (truncation) or the head's signature broken;
2. a person's client keeps the last head it saw and its own latest receipt, and warns when
   the server later shows an older head or a state without that receipt
   (``baat.client.ledger_watch``): rolling the head row back to an older signed head cannot
   fool someone who saw the newer one.

The head is a compact JWS (Ed25519, ``typ`` ``baat-ledger-head+jws``) over
``{"seq", "head", "issued_at"}``, checked with the same published keys as receipts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc import jws
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy import receipts
from baat.privacy.errors import ReceiptMalformed
from baat.privacy.policy import canonical_json
from baat.server.privacy.keys import SigningKey
from baat.server.privacy.schema import ledger_head

TYP = receipts.HEAD_TYP


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    head: str
    issued_at: int
    kid: str
    jws: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head": self.head,
            "issued_at": self.issued_at,
            "kid": self.kid,
            "jws": self.jws,
        }


def sign(key: SigningKey, seq: int, head: str, now: int) -> Head:
    """Sign the chain head ``head`` (the hash of record ``seq``; 0 for an empty ledger)."""
    payload = {"seq": seq, "head": head, "issued_at": now}
    token = jws.serialize_compact(
        {"alg": receipts.ALG, "kid": key.kid, "typ": TYP},
        canonical_json(payload),
        key.key,
        algorithms=[receipts.ALG],
    )
    return Head(seq, head, now, key.kid, token)


def verify(token: str, jwks: dict[str, Any]) -> Head:
    """Check a published head against the key set.

    Raises:
        ReceiptMalformed, ReceiptUnknownKey, ReceiptForged: as for receipts.
    """
    kid, payload = receipts.verify_compact(token, jwks, TYP)
    try:
        seq, head, at = int(payload["seq"]), str(payload["head"]), int(payload["issued_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptMalformed("ledger head lacks seq, head or issued_at") from exc
    return Head(seq, head, at, kid, token.strip())


async def store(conn: AsyncConnection, head: Head) -> None:
    """Replace the stored head inside the caller's transaction."""
    values = {"seq": head.seq, "head_hash": head.head, "signed_at": head.issued_at}
    values["jws"] = head.jws
    updated = await conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(values))
    if not updated.rowcount:
        await conn.execute(ledger_head.insert().values(id=1, **values))


async def load(conn: AsyncConnection) -> str | None:
    """The stored head's JWS, unverified (``None`` before the first record)."""
    token = await conn.scalar(select(ledger_head.c.jws).where(ledger_head.c.id == 1))
    return None if token is None else str(token)
