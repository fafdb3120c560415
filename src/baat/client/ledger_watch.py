"""The client's memory of the server's consent ledger: the last signed head it saw and the
person's own latest receipt per purpose.

The server signs the ledger's head (newest record's sequence number and hash) and returns it
with every receipt and every consent listing. A server, or anyone with its database, that
later deletes the newest record (a withdrawal, say) and restores an older head can produce a
chain that verifies on its own. It cannot make this client forget what it saw, so
``LedgerWatch`` warns when

1. a head's signature does not verify against the server's published keys;
2. the server shows a head older than one it signed before, or a different record at the
   same position;
3. the server's consent listing lacks the person's latest receipt for a purpose (an older
   record, or none, where the receipt says a newer one exists).

Nothing here decides anything: the warnings are for the person, who holds the receipts that
prove what they agreed to. The state is a small JSON file in the profile directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from baat.privacy import receipts
from baat.privacy.errors import ReceiptError

FILE = "ledger-watch.json"


class LedgerWatch:
    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server.rstrip("/")
        state: dict[str, Any] = {}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and loaded.get("server") == self.server:
                state = loaded
        except (OSError, ValueError):
            pass
        self.head: dict[str, Any] | None = state.get("head")
        self.receipts: dict[str, dict[str, Any]] = dict(state.get("receipts") or {})

    @classmethod
    def for_profile(cls, profile: Path, server: str) -> LedgerWatch:
        return cls(profile / FILE, server)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {"server": self.server, "head": self.head, "receipts": self.receipts}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)

    def observe_head(self, head: Mapping[str, Any] | None, jwks: Mapping[str, Any]) -> list[str]:
        """Check a head the server showed against the newest one seen; remember it if newer."""
        if not isinstance(head, Mapping) or not isinstance(head.get("jws"), str):
            return ["the server showed no signed ledger head"]
        try:
            _, payload = receipts.verify_compact(head["jws"], jwks, receipts.HEAD_TYP)
            seq, digest = int(payload["seq"]), str(payload["head"])
        except (ReceiptError, KeyError, TypeError, ValueError) as exc:
            return [f"the server's ledger head does not verify ({exc})"]
        warnings = []
        seen = self.head
        if seen is not None and seq < int(seen["seq"]):
            warnings.append(
                f"the server shows an older ledger head (event {seq}) than it signed before "
                f"(event {seen['seq']}): consent records may have been deleted"
            )
        elif seen is not None and seq == int(seen["seq"]) and digest != seen["head"]:
            warnings.append(f"the server's ledger head at event {seq} changed: it was rewritten")
        else:
            self.head = {"seq": seq, "head": digest}
        for purpose, mine in sorted(self.receipts.items()):
            if seq < int(mine["seq"]):
                warnings.append(
                    f"the server's ledger head (event {seq}) predates your latest receipt for "
                    f"{purpose} (event {mine['seq']})"
                )
        return warnings

    def observe_receipt(self, receipt: Mapping[str, Any], jwks: Mapping[str, Any]) -> list[str]:
        """Remember a fresh receipt (the server's answer to a grant or withdrawal)."""
        try:
            checked = receipts.verify(str(receipt["receipt"]), jwks)
        except (ReceiptError, KeyError) as exc:
            return [f"the receipt does not verify ({exc})"]
        head = receipt.get("ledger_head")
        warnings = self.observe_head(head, jwks)
        if isinstance(head, Mapping) and not warnings:
            purpose = str(checked.record["purpose"]["id"])
            self.receipts[purpose] = {
                "record_id": checked.record_id,
                "record_hash": checked.record_hash,
                "seq": int(head["seq"]),
                "state": str(checked.record["state"]).rsplit("#", 1)[-1],
            }
        return warnings

    def check_listing(
        self,
        consents: Iterable[Mapping[str, Any]],
        head: Mapping[str, Any] | None,
        jwks: Mapping[str, Any],
    ) -> list[str]:
        """Compare the server's consent listing and head with what this client holds."""
        warnings = self.observe_head(head, jwks)
        shown = {str(c.get("purpose")): c for c in consents}
        for purpose, mine in sorted(self.receipts.items()):
            row = shown.get(purpose) or {}
            seq = row.get("seq")
            if row.get("record_id") == mine["record_id"]:
                continue
            if not isinstance(seq, int) or seq < int(mine["seq"]):
                warnings.append(
                    f"the server omits your latest consent record for {purpose} "
                    f"({mine['state']}, event {mine['seq']}, record {mine['record_id']}); "
                    "keep your receipt"
                )
        return warnings
