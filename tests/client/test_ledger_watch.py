"""The client's memory of the consent ledger (``baat.client.ledger_watch``), fed signed heads
and receipts made with a real Ed25519 key; the end-to-end case against a real server is in
``tests/privacy/test_ledger_e2e.py``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

from baat.client.ledger_watch import LedgerWatch
from baat.privacy import receipts
from baat.server.privacy import ledger_head
from baat.server.privacy.keys import SigningKey, _public_jwk

SERVER = "http://baat.test"


def _key() -> tuple[SigningKey, dict[str, Any]]:
    private = Ed25519PrivateKey.generate()
    key = OKPKey.import_key(private)
    kid = key.thumbprint()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(kid, key), {"keys": [_public_jwk(raw, kid)]}


def _receipt(key: SigningKey, seq: int, purpose: str, state: str) -> dict[str, Any]:
    record = {
        "record_id": str(uuid.uuid4()),
        "purpose": {"id": purpose},
        "state": f"https://w3id.org/dpv#{state}",
    }
    signed = receipts.sign(key.key, key.kid, str(uuid.uuid4()), record, 1_700_000_000 + seq)
    head = ledger_head.sign(key, seq, signed.record_hash, 1_700_000_000 + seq)
    return {**signed.to_json(), "ledger_head": head.to_json()}


def test_newer_heads_and_receipts_are_remembered(tmp_path: Path) -> None:
    key, jwks = _key()
    watch = LedgerWatch.for_profile(tmp_path, SERVER)
    first = _receipt(key, 4, "market", "ConsentGiven")
    assert watch.observe_receipt(first, jwks) == []
    second = _receipt(key, 9, "market", "ConsentWithdrawn")
    assert watch.observe_receipt(second, jwks) == []
    watch.save()

    again = LedgerWatch.for_profile(tmp_path, SERVER)
    assert again.head == {"seq": 9, "head": second["record_hash"]}
    assert again.receipts["market"]["record_id"] == second["record_id"]
    assert again.receipts["market"]["state"] == "ConsentWithdrawn"
    row = {"purpose": "market", "record_id": second["record_id"], "seq": 9}
    assert again.check_listing([row], second["ledger_head"], jwks) == []
    # Another device's newer record for the same purpose is not a loss.
    newer = _receipt(key, 12, "market", "ConsentGiven")
    row = {"purpose": "market", "record_id": newer["record_id"], "seq": 12}
    assert again.check_listing([row], newer["ledger_head"], jwks) == []
    # A profile pointed at another server starts afresh.
    assert LedgerWatch.for_profile(tmp_path, "http://elsewhere.test").head is None


def test_rollbacks_and_forgeries_are_warned_about(tmp_path: Path) -> None:
    key, jwks = _key()
    watch = LedgerWatch.for_profile(tmp_path, SERVER)
    granted = _receipt(key, 4, "market", "ConsentGiven")
    withdrawn = _receipt(key, 5, "market", "ConsentWithdrawn")
    watch.observe_receipt(granted, jwks)
    watch.observe_receipt(withdrawn, jwks)

    row = {"purpose": "market", "record_id": granted["record_id"], "seq": 4}
    warnings = watch.check_listing([row], granted["ledger_head"], jwks)
    assert any("older ledger head (event 4)" in w for w in warnings)
    assert any("predates your latest receipt for market" in w for w in warnings)
    assert any("omits your latest consent record for market" in w for w in warnings)
    assert watch.head is not None and watch.head["seq"] == 5  # the older head is not adopted

    rewritten = ledger_head.sign(key, 5, "f" * 64, 1_700_000_100).to_json()
    assert any("changed" in w for w in watch.observe_head(rewritten, jwks))
    other, other_jwks = _key()
    forged = ledger_head.sign(other, 6, "e" * 64, 1_700_000_100).to_json()
    assert any("does not verify" in w for w in watch.observe_head(forged, jwks))
    assert watch.observe_head(None, jwks) == ["the server showed no signed ledger head"]
    assert any("does not verify" in w for w in watch.observe_receipt(granted, other_jwks))
