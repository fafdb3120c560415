"""Consent state rebuilt from verified ledger records: what the gate and every job decide from.

The ``consent_events`` columns (``state``, ``purpose``, ``policy_version``, ...) are a copy of
the signed record kept for indexing. Anyone with write access to the database can change
them, so no consent decision reads them. ``ConsentView`` instead

1. reads the signed head first (``ledger_head``), then every record after the last one it has
   verified, and checks each: its hash, its link to the previous record, its receipt's
   Ed25519 signature against the published keys;
2. takes purpose, pseudonym, state and policy version from the verified record;
3. refuses (``LedgerUnverifiable``) when any record fails, when a record it verified earlier
   has gone, or when the chain ends before the signed head: without proof of the latest
   state no optional processing runs (GDPR Art. 7(1), DPDP s. 6(10));
4. compares the columns of records already verified with what was signed and returns every
   disagreement, which the caller logs: editing a column is detected and changes nothing.

A view is kept per process and refreshed incrementally at every use, so a withdrawal applies
to the very next run (GDPR Art. 7(3)); after pruning moves the anchor it is rebuilt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy import receipts
from baat.privacy.errors import LedgerUnverifiable, ReceiptError
from baat.privacy.purposes import Purpose
from baat.server.privacy import ledger_head
from baat.server.privacy.ledger import GENESIS, GIVEN, STATE_IRI
from baat.server.privacy.schema import consent_events, ledger_anchor

log = logging.getLogger("baat.privacy.consent")
_STATE = {v: k for k, v in STATE_IRI.items()}


@dataclass(frozen=True, slots=True)
class Event:
    """One verified record, as signed."""

    seq: int
    record_id: str
    record_hash: str
    subject_ref: str
    purpose: str
    state: str
    policy_version: int
    at: int

    def as_row(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "record_id": self.record_id,
            "state": self.state,
            "policy_version": self.policy_version,
            "at": self.at,
        }


def _event(seq: int, at: int, record: dict[str, Any], digest: str) -> Event:
    try:
        return Event(
            seq,
            str(record["record_id"]),
            digest,
            str(record["subject"]),
            str(record["purpose"]["id"]),
            _STATE[record["state"]],
            int(record["notice"]["version"]),
            at,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerUnverifiable(f"event {seq}: signed record lacks a consent field") from exc


@dataclass
class ConsentView:
    anchor: tuple[int, str] = (0, GENESIS)
    last_seq: int = 0
    head: str = GENESIS
    events: dict[int, Event] = field(default_factory=dict)
    newest: dict[tuple[str, str], Event] = field(default_factory=dict)
    _reported: set[int] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _reset(self, anchor: tuple[int, str]) -> None:
        self.anchor, self.last_seq, self.head = anchor, anchor[0], anchor[1]
        self.events, self.newest = {}, {}

    async def refresh(self, conn: AsyncConnection, jwks: dict[str, Any]) -> list[str]:
        """Verify what is new since the last refresh; return column disagreements.

        Raises:
            LedgerUnverifiable: a record or the signed head does not verify, a verified
                record was deleted, or the chain ends before the signed head.
        """
        async with self._lock:
            return await self._refresh(conn, jwks)

    async def _refresh(self, conn: AsyncConnection, jwks: dict[str, Any]) -> list[str]:
        # The head first: on PostgreSQL each statement sees the latest commits, so records
        # read afterwards include at least everything the head names.
        token = await ledger_head.load(conn)
        row = (await conn.execute(select(ledger_anchor).where(ledger_anchor.c.id == 1))).first()
        anchor = (0, GENESIS) if row is None else (int(row.through_seq), str(row.last_hash))
        if anchor != self.anchor:
            self._reset(anchor)
        e = consent_events
        indexed = (e.c.record_hash, e.c.record_id, e.c.subject_ref, e.c.purpose, e.c.state)
        query = select(e.c.seq, *indexed, e.c.policy_version).order_by(e.c.seq)
        columns = (await conn.execute(query)).all()
        problems: list[str] = []
        present: set[int] = set()
        for c in columns:
            seq = int(c.seq)
            present.add(seq)
            known = self.events.get(seq)
            if known is None:
                if seq <= self.last_seq:
                    raise LedgerUnverifiable(f"event {seq} appeared inside the verified chain")
                continue
            signed = (
                known.record_hash,
                known.record_id,
                known.subject_ref,
                known.purpose,
                known.state,
                known.policy_version,
            )
            stored = (
                c.record_hash,
                c.record_id,
                c.subject_ref,
                c.purpose,
                c.state,
                c.policy_version,
            )
            if signed != stored and seq not in self._reported:
                self._reported.add(seq)
                problems.append(f"event {seq}: columns disagree with the signed record")
        gone = sorted(set(self.events) - present)
        if gone:
            raise LedgerUnverifiable(f"verified events {gone} were deleted from the ledger")
        rows = await conn.execute(select(e).where(e.c.seq > self.last_seq).order_by(e.c.seq))
        for r in rows:
            self._append(r, jwks)
        self._check_head(token, jwks)
        for p in problems:
            log.warning("consent ledger: %s; decisions use the signed record", p)
        return problems

    def _append(self, r: Any, jwks: dict[str, Any]) -> None:
        seq = int(r.seq)
        try:
            record = json.loads(r.record)
        except ValueError as exc:
            raise LedgerUnverifiable(f"event {seq}: record is not JSON") from exc
        if not isinstance(record, dict):
            raise LedgerUnverifiable(f"event {seq}: record is not an object")
        digest = receipts.record_hash(record)
        if record.get("prev_hash") != self.head:
            raise LedgerUnverifiable(f"event {seq}: chain broken before it")
        try:
            signed = receipts.verify(r.receipt, jwks)
        except ReceiptError as exc:
            raise LedgerUnverifiable(f"event {seq}: receipt does not verify ({exc})") from exc
        if signed.record_hash != digest:
            raise LedgerUnverifiable(f"event {seq}: receipt is for a different record")
        event = _event(seq, int(signed.issued_at), record, digest)
        self.events[seq] = event
        self.newest[(event.subject_ref, event.purpose)] = event
        self.last_seq, self.head = seq, digest

    def _check_head(self, token: str | None, jwks: dict[str, Any]) -> None:
        if token is None:
            if self.last_seq > self.anchor[0]:
                raise LedgerUnverifiable("the ledger has records but no signed head")
            return
        try:
            head = ledger_head.verify(token, jwks)
        except ReceiptError as exc:
            raise LedgerUnverifiable(f"the signed ledger head does not verify ({exc})") from exc
        if head.seq > self.last_seq:
            raise LedgerUnverifiable(
                f"the chain ends at event {self.last_seq} but the signed head names event "
                f"{head.seq}: records were deleted"
            )
        named = self.events.get(head.seq)
        expected = named.record_hash if named else self.anchor[1]
        if (named or head.seq == self.anchor[0]) and head.head != expected:
            raise LedgerUnverifiable(f"event {head.seq} is not the one the signed head names")

    # -- decisions -----------------------------------------------------------------------

    def latest(self, subject_ref: str | None) -> dict[str, dict[str, Any]]:
        """The newest verified event per purpose for one pseudonym."""
        if subject_ref is None:
            return {}
        return {p: ev.as_row() for (s, p), ev in self.newest.items() if s == subject_ref}

    def consenting(self, purpose: Purpose) -> set[str]:
        """Pseudonyms whose newest verified event for ``purpose`` grants it under a policy
        version that still counts (``consent_since``)."""
        return {
            ev.subject_ref
            for (_, pid), ev in self.newest.items()
            if pid == purpose.id
            and ev.state == GIVEN
            and ev.policy_version >= purpose.consent_since
        }
