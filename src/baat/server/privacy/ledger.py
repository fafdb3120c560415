"""The consent ledger: append-only, hash-chained, every event receipted.

Each event is a consent record with the fields ISO/IEC TS 27560 and the Kantara Consent
Receipt 1.1 ask for (notice id, version, hash and language; purpose; data categories;
recipients; jurisdiction; retention; state as a DPV consent status; time; method; actor;
how to withdraw; consent manager) plus ``prev_hash``, the SHA-256 of the previous record.
Changing, inserting or deleting a record in the middle breaks the chain, and every record's
signed receipt must still verify, so ``verify`` detects tampering (GDPR Art. 7(1) and DPDP
s. 6(10) put the burden of proving consent on the controller).

Records name people by a random pseudonym (``consent_subjects``), never by account id.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy import receipts
from baat.privacy.errors import ReceiptError, ReceiptForged, ReceiptMalformed, ReceiptUnknownKey
from baat.privacy.policy import NOTICE_ID, Policy, canonical_json
from baat.privacy.purposes import DPV, Purpose
from baat.server.privacy import ledger_head
from baat.server.privacy.keys import SigningKey
from baat.server.privacy.schema import consent_events, consent_subjects, ledger_anchor

GIVEN = "given"
WITHDRAWN = "withdrawn"
STATE_IRI = {GIVEN: DPV + "ConsentGiven", WITHDRAWN: DPV + "ConsentWithdrawn"}
GENESIS = "0" * 64
RECORD_SCHEMA = "baat-consent-record/1"
# Any constant shared by all writers; it serialises appends on PostgreSQL.
_PG_LOCK = 0x62616174


def iso_time(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def subject_ref(conn: AsyncConnection, account_id: str, *, create: bool) -> str | None:
    """The account's ledger pseudonym, created on first use when ``create``."""
    query = select(consent_subjects.c.subject_ref).where(
        consent_subjects.c.account_id == account_id
    )
    ref = await conn.scalar(query)
    if ref is None and create:
        # Two first grants may race: the loser's insert does nothing and it reads the
        # winner's pseudonym.
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(
            insert(consent_subjects)
            .values(account_id=account_id, subject_ref=secrets.token_urlsafe(32))
            .on_conflict_do_nothing()
        )
        ref = await conn.scalar(query)
    return None if ref is None else str(ref)


def consenting_accounts_query(purpose: Purpose) -> Any:
    """Account ids whose newest event for ``purpose`` grants it under a policy version that
    still counts (``consent_since``), from the unsigned columns: for counting in reports
    only. Decisions to process use ``consent_view.ConsentView``, built from signed records."""
    e, e2, s = consent_events, consent_events.alias("newer"), consent_subjects
    newest = (
        select(func.max(e2.c.seq))
        .where(e2.c.subject_ref == e.c.subject_ref, e2.c.purpose == e.c.purpose)
        .scalar_subquery()
    )
    return (
        select(s.c.account_id, s.c.subject_ref)
        .join(e, e.c.subject_ref == s.c.subject_ref)
        .where(
            e.c.purpose == purpose.id,
            e.c.seq == newest,
            e.c.state == GIVEN,
            e.c.policy_version >= purpose.consent_since,
        )
        .order_by(s.c.account_id)
    )


async def lock(conn: AsyncConnection) -> None:
    """Serialise ledger writers until the caller's transaction ends (PostgreSQL; SQLite
    has a single writer already). Taking it before reading a consent's state makes the
    read and the append one step, so two withdrawals cannot both pass the check."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})


async def _head(conn: AsyncConnection) -> str:
    last = await conn.scalar(
        select(consent_events.c.record_hash).order_by(consent_events.c.seq.desc()).limit(1)
    )
    if last is not None:
        return str(last)
    anchor = await conn.scalar(select(ledger_anchor.c.last_hash).where(ledger_anchor.c.id == 1))
    return GENESIS if anchor is None else str(anchor)


def build_record(
    policy: Policy,
    purpose: Purpose,
    ref: str,
    state: str,
    *,
    jurisdiction: str,
    method: str,
    actor: str,
    now: int,
    prev_hash: str,
    notice_url: str,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    entries = policy.entries_for(purpose.id)
    recipients = [r for r in (policy.recipient(x) for x in purpose.recipients) if r]
    return {
        "schema": RECORD_SCHEMA,
        "record_id": str(uuid.uuid4()),
        "subject": ref,
        "controller": {"name": policy.controller.name, "contact": policy.controller.email},
        "notice": {
            "id": NOTICE_ID,
            "version": policy.version,
            "sha256": policy.sha256,
            "language": "en",
            "url": notice_url,
        },
        "purpose": {"id": purpose.id, "title": purpose.title, "dpv": purpose.dpv},
        "data": [
            {"field": e.id, "fides": e.category.fides, "dpv": e.category.dpv} for e in entries
        ],
        "recipients": [{"name": r.name, "role": r.role, "country": r.country} for r in recipients],
        "jurisdiction": jurisdiction,
        "retention": {
            "processing": "until you withdraw",
            "record": "P7Y after the consent ends",
        },
        "state": STATE_IRI[state],
        "event_time": iso_time(now),
        "method": method,
        "actor": actor,
        # Lets the person prove the record is theirs: only they hold the private key.
        "identity_key": identity,
        "valid_until": None,
        "withdraw": f"DELETE /v1/consents/{purpose.id} or `baat consent withdraw {purpose.id}`",
        "consent_manager": None,
        "prev_hash": prev_hash,
    }


async def append(
    conn: AsyncConnection,
    key: SigningKey,
    policy: Policy,
    purpose: Purpose,
    ref: str,
    state: str,
    *,
    jurisdiction: str,
    method: str,
    actor: str,
    now: int,
    notice_url: str,
    identity: dict[str, Any] | None = None,
) -> receipts.Receipt:
    """Append one event inside the caller's transaction and return its receipt, which
    carries the signed head that the append produced."""
    await lock(conn)
    prev = await _head(conn)
    record = build_record(
        policy,
        purpose,
        ref,
        state,
        jurisdiction=jurisdiction,
        method=method,
        actor=actor,
        now=now,
        prev_hash=prev,
        notice_url=notice_url,
        identity=identity,
    )
    receipt = receipts.sign(key.key, key.kid, str(uuid.uuid4()), record, now)
    inserted = await conn.execute(
        consent_events.insert().values(
            record_id=record["record_id"],
            subject_ref=ref,
            purpose=purpose.id,
            state=state,
            policy_version=policy.version,
            at=now,
            prev_hash=prev,
            record_hash=receipt.record_hash,
            record=canonical_json(record).decode(),
            receipt=receipt.jws,
        )
    )
    # The head moves in the same transaction: a chain shorter than its head was cut.
    key_row = inserted.inserted_primary_key
    assert key_row is not None
    seq = int(key_row[0])
    head = ledger_head.sign(key, seq, receipt.record_hash, now)
    await ledger_head.store(conn, head)
    return replace(receipt, head=head.to_json())


def empty_head(key: SigningKey, now: int) -> ledger_head.Head:
    """The head of a ledger without records (nothing appended yet)."""
    return ledger_head.sign(key, 0, GENESIS, now)


async def seal_head(conn: AsyncConnection, key: SigningKey, now: int) -> ledger_head.Head | None:
    """Sign the current end of the chain when no head is stored yet (a ledger written
    before heads existed); returns the new head, or ``None`` when one exists."""
    if await ledger_head.load(conn) is not None:
        return None
    last = (
        await conn.execute(
            select(consent_events.c.seq, consent_events.c.record_hash)
            .order_by(consent_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    anchor = (await conn.execute(select(ledger_anchor).where(ledger_anchor.c.id == 1))).first()
    if last is not None:
        seq, digest = int(last.seq), str(last.record_hash)
    elif anchor is not None:
        seq, digest = int(anchor.through_seq), str(anchor.last_hash)
    else:
        seq, digest = 0, GENESIS
    head = ledger_head.sign(key, seq, digest, now)
    await ledger_head.store(conn, head)
    return head


@dataclass
class LedgerReport:
    ok: bool = True
    events: int = 0
    head: str = GENESIS
    anchored_through: int = 0
    last_seq: int = 0
    signed_head: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def fail(self, seq: int, why: str) -> None:
        self.ok = False
        self.problems.append(f"event {seq}: {why}")

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "anchored_through": self.anchored_through,
            "last_seq": self.last_seq,
            "signed_head": self.signed_head,
            "problems": list(self.problems),
        }


async def verify(conn: AsyncConnection, jwks: dict[str, Any]) -> LedgerReport:
    """Walk the whole chain: hashes, links, columns against records, receipt signatures, and
    the signed head (a chain that ends before it was truncated)."""
    report = LedgerReport()
    token = await ledger_head.load(conn)  # before the records: see consent_view
    anchor = (await conn.execute(select(ledger_anchor).where(ledger_anchor.c.id == 1))).first()
    prev = GENESIS if anchor is None else anchor.last_hash
    report.anchored_through = 0 if anchor is None else int(anchor.through_seq)
    rows = await conn.execute(select(consent_events).order_by(consent_events.c.seq))
    for row in rows:
        report.events += 1
        seq = int(row.seq)
        if seq <= report.anchored_through:
            report.fail(seq, "sits before the pruning anchor")
        try:
            record = json.loads(row.record)
        except ValueError:
            report.fail(seq, "record is not JSON")
            prev = row.record_hash
            continue
        digest = receipts.record_hash(record)
        if digest != row.record_hash:
            report.fail(seq, "record does not match its hash")
        if row.prev_hash != prev or record.get("prev_hash") != prev:
            report.fail(seq, "chain broken: previous hash does not match")
        expected = {
            "record_id": record.get("record_id"),
            "subject_ref": record.get("subject"),
            "purpose": (record.get("purpose") or {}).get("id"),
            "state": next((k for k, v in STATE_IRI.items() if v == record.get("state")), None),
            "policy_version": (record.get("notice") or {}).get("version"),
        }
        for column, value in expected.items():
            if row._mapping[column] != value:
                report.fail(seq, f"column {column} disagrees with the signed record")
        try:
            signed = receipts.verify(row.receipt, jwks)
            if signed.record_hash != digest:
                report.fail(seq, "receipt is for a different record")
        except ReceiptForged:
            report.fail(seq, "receipt signature does not verify")
        except (ReceiptMalformed, ReceiptUnknownKey) as exc:
            report.fail(seq, f"receipt unusable: {exc}")
        prev = digest
        report.last_seq = seq
    report.head = prev
    _check_head(report, token, jwks)
    return report


def _check_head(report: LedgerReport, token: str | None, jwks: dict[str, Any]) -> None:
    last = max(report.last_seq, report.anchored_through)
    if token is None:
        if report.events:
            report.ok = False
            report.problems.append("no signed head: the newest records cannot be vouched for")
        return
    try:
        head = ledger_head.verify(token, jwks)
    except ReceiptError as exc:
        report.ok = False
        report.problems.append(f"signed head does not verify: {exc}")
        return
    report.signed_head = head.to_json()
    if head.seq > last:
        report.fail(
            head.seq,
            f"truncated: the signed head names event {head.seq} ({head.head[:16]}...) but "
            f"the chain ends at event {last}",
        )
    elif head.seq == last and head.head != report.head:
        report.fail(head.seq, "the signed head names a different record")


async def prune(conn: AsyncConnection, cutoff: int, now: int, limit: int = 10_000) -> int:
    """Delete records whose consent ended before ``cutoff``, from the start of the chain.

    A record is prunable once the consent it belongs to ended before ``cutoff`` (a grant
    ends at the next event for the same pseudonym and purpose; a withdrawal ends at once).
    A grant still in force is never pruned, and pruning stops at the first record that must
    stay, so the remaining chain starts at the anchor.
    """
    e = consent_events
    rows = (
        await conn.execute(
            select(e.c.seq, e.c.subject_ref, e.c.purpose, e.c.state, e.c.at, e.c.record_hash)
            .order_by(e.c.seq)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    next_at: dict[int, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for r in reversed(rows):
        key = (r.subject_ref, r.purpose)
        if key in seen:
            next_at[r.seq] = seen[key]
        seen[key] = r.at
    last = None
    for r in rows:
        ended = r.at if r.state == WITHDRAWN else next_at.get(r.seq)
        if ended is None or ended >= cutoff:
            break
        last = r
    if last is None:
        return 0
    result = await conn.execute(delete(e).where(e.c.seq <= last.seq))
    values = {"through_seq": last.seq, "last_hash": last.record_hash, "pruned_at": now}
    updated = await conn.execute(
        ledger_anchor.update().where(ledger_anchor.c.id == 1).values(**values)
    )
    if not updated.rowcount:
        await conn.execute(ledger_anchor.insert().values(id=1, **values))
    return int(result.rowcount or 0)
