"""Consent receipts: compact JWS (RFC 7515) signed with Ed25519, checked offline.

The header names the algorithm ``Ed25519`` (RFC 9864, which deprecates the polymorphic
``EdDSA``; joserfc supports it) and a ``kid`` that is the RFC 7638 thumbprint of a key the
server publishes at ``/.well-known/baat/keys``. The payload carries the whole consent record
(ISO/IEC TS 27560 and Kantara Consent Receipt fields) and its SHA-256, so a receipt proves
on its own what was agreed, when, under which notice, and where it sits in the hash chain.

Verification accepts only ``Ed25519``: letting the token choose its algorithm invites
algorithm-confusion forgeries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from baat.privacy.errors import ReceiptForged, ReceiptMalformed, ReceiptUnknownKey
from baat.privacy.policy import canonical_json, sha256_hex

ALG = "Ed25519"
TYP = "baat-consent-receipt+jws"
HEAD_TYP = "baat-ledger-head+jws"  # the consent ledger's signed head (``ledger_head.py``)
_FIELDS = ("receipt_id", "record_id", "issued_at", "record", "record_hash")


@dataclass(frozen=True, slots=True)
class Receipt:
    jws: str
    receipt_id: str
    record_id: str
    issued_at: int
    kid: str
    record: dict[str, Any]
    record_hash: str
    # The signed ledger head right after this record was appended (``ledger_head.py``):
    # with it the holder can later tell whether the server still shows their record.
    head: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "receipt": self.jws,
            "receipt_id": self.receipt_id,
            "record_id": self.record_id,
            "issued_at": self.issued_at,
            "kid": self.kid,
            "record_hash": self.record_hash,
            "record": self.record,
        }
        if self.head is not None:
            out["ledger_head"] = self.head
        return out


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a consent record in canonical JSON."""
    return sha256_hex(canonical_json(dict(record)))


def sign(key: OKPKey, kid: str, receipt_id: str, record: dict[str, Any], issued_at: int) -> Receipt:
    """Sign ``record`` into a receipt with the private OKP ``key``."""
    digest = record_hash(record)
    payload = {
        "receipt_id": receipt_id,
        "record_id": record["record_id"],
        "issued_at": issued_at,
        "record": record,
        "record_hash": digest,
    }
    token = jws.serialize_compact(
        {"alg": ALG, "kid": kid, "typ": TYP}, canonical_json(payload), key, algorithms=[ALG]
    )
    return Receipt(token, receipt_id, record["record_id"], issued_at, kid, record, digest)


def verify_compact(token: str, jwks: Mapping[str, Any], typ: str) -> tuple[str, Any]:
    """Check a compact JWS of type ``typ`` against a key set; return its kid and payload.

    Raises:
        ReceiptMalformed: not a compact Ed25519 JWS of that type, or its payload is not JSON.
        ReceiptUnknownKey: the ``kid`` is not in ``jwks``.
        ReceiptForged: the signature does not verify.
    """
    token = token.strip()
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptMalformed("not a compact JWS") from exc
    if header.get("alg") != ALG or header.get("typ") != typ:
        raise ReceiptMalformed(f"not a {typ} (alg must be {ALG})")
    kid = header.get("kid")
    key_dict = next(
        (k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None
    )
    if not isinstance(kid, str) or key_dict is None:
        raise ReceiptUnknownKey(f"signed by unknown key {kid!r}")
    try:
        public = OKPKey.import_key({k: v for k, v in key_dict.items() if k in ("kty", "crv", "x")})
        verified = jws.deserialize_compact(token, public, algorithms=[ALG])
    except JoseError as exc:
        raise ReceiptForged("signature does not verify") from exc
    except (ValueError, TypeError) as exc:
        raise ReceiptMalformed(f"unusable key {kid!r} in the key set") from exc
    try:
        return kid, json.loads(verified.payload)
    except ValueError as exc:
        raise ReceiptMalformed("payload is not JSON") from exc


def verify(token: str, jwks: Mapping[str, Any]) -> Receipt:
    """Check a receipt against a published key set, without asking the server.

    Raises:
        ReceiptMalformed: not a compact JWS carrying a Baat receipt.
        ReceiptUnknownKey: the ``kid`` is not in ``jwks``.
        ReceiptForged: the signature, or the record's hash, does not verify.
    """
    kid, payload = verify_compact(token, jwks, TYP)
    if not isinstance(payload, dict) or any(f not in payload for f in _FIELDS):
        raise ReceiptMalformed("receipt payload lacks required fields")
    record = payload["record"]
    if not isinstance(record, dict) or record.get("record_id") != payload["record_id"]:
        raise ReceiptMalformed("receipt record does not match its record id")
    if record_hash(record) != payload["record_hash"]:
        raise ReceiptForged("receipt record does not match its hash")
    return Receipt(
        token.strip(),
        str(payload["receipt_id"]),
        str(payload["record_id"]),
        int(payload["issued_at"]),
        kid,
        record,
        str(payload["record_hash"]),
    )
