"""Tables of the privacy layer, declared on the server's shared metadata (migration 2).

No table here holds an account id except ``consent_subjects``: the ledger and the transfer
log name people by a random pseudonym, so that erasing an account (deleting its
``consent_subjects`` row) leaves the hash chain intact and verifiable but no longer linked
to anyone the server knows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from baat.server.storage.schema import metadata

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


def _inv(key: str) -> dict[str, str]:
    return {"inventory": key}


consent_subjects = Table(
    "consent_subjects",
    metadata,
    Column("account_id", String(32), primary_key=True, info=_inv("account.id")),
    Column(
        "subject_ref", String(64), nullable=False, unique=True, info=_inv("consent.subject_ref")
    ),
)

_REC = _inv("consent.record")

# Append-only. A row is never updated; rows are deleted only from the start of the chain by
# the retention job, which moves ``ledger_anchor`` forward in the same transaction.
consent_events = Table(
    "consent_events",
    metadata,
    Column("seq", _SEQ, Identity(), primary_key=True, info=_REC),
    Column("record_id", String(36), nullable=False, unique=True, info=_REC),
    Column("subject_ref", String(64), nullable=False, info=_REC),
    # 64: a business chat's purpose names the business, ``business-chat:<account id>``
    # (migration 15 widens it on PostgreSQL).
    Column("purpose", String(64), nullable=False, info=_REC),
    Column("state", String(16), nullable=False, info=_REC),
    Column("policy_version", Integer, nullable=False, info=_REC),
    Column("at", BigInteger, nullable=False, info=_REC),
    # Unique: two events can never claim the same predecessor, so the chain cannot fork
    # even if two writers race.
    Column("prev_hash", String(64), nullable=False, unique=True, info=_REC),
    Column("record_hash", String(64), nullable=False, info=_REC),
    Column("record", Text, nullable=False, info=_REC),
    Column("receipt", Text, nullable=False, info=_REC),
    Index("consent_events_by_subject", "subject_ref", "purpose", "seq"),
    # Sequence numbers must never be reused, also after pruning empties the table; plain
    # INTEGER PRIMARY KEY in SQLite would restart from max(rowid) + 1.
    sqlite_autoincrement=True,
)

ledger_anchor = Table(
    "ledger_anchor",
    metadata,
    Column("id", Integer, primary_key=True, info=_inv("consent.ledger_anchor")),
    Column("through_seq", BigInteger, nullable=False, info=_inv("consent.ledger_anchor")),
    Column("last_hash", String(64), nullable=False, info=_inv("consent.ledger_anchor")),
    Column("pruned_at", BigInteger, nullable=False, info=_inv("consent.ledger_anchor")),
)

_HEAD = _inv("consent.ledger_head")

# The newest record's sequence number and hash, signed (``ledger_head.py``, migration 8).
# Rewritten in the transaction of every append: a chain that ends before it was truncated.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, info=_HEAD),
    Column("seq", BigInteger, nullable=False, info=_HEAD),
    Column("head_hash", String(64), nullable=False, info=_HEAD),
    Column("signed_at", BigInteger, nullable=False, info=_HEAD),
    Column("jws", Text, nullable=False, info=_HEAD),
)

_TR = _inv("transfer.record")

transfer_log = Table(
    "transfer_log",
    metadata,
    Column("seq", _SEQ, Identity(), primary_key=True, info=_TR),
    Column("transfer_id", String(36), nullable=False, info=_TR),
    Column("at", BigInteger, nullable=False, info=_TR),
    Column("purpose", String(32), nullable=False, info=_TR),
    Column("recipient", String(32), nullable=False, info=_TR),
    Column("country", String(16), nullable=False, info=_TR),
    Column("region", String(16), nullable=False, info=_TR),
    Column("subject_ref", String(64), nullable=False, info=_TR),
    Column("fields", Text, nullable=False, info=_TR),
    Column("policy_version", Integer, nullable=False, info=_TR),
    Index("transfer_log_by_subject", "subject_ref"),
    Index("transfer_log_by_time", "at"),
    sqlite_autoincrement=True,
)

_KEY = _inv("server.signing_key")

server_keys = Table(
    "server_keys",
    metadata,
    Column("kid", String(64), primary_key=True, info=_KEY),
    Column("alg", String(16), nullable=False, info=_KEY),
    Column("public_key", LargeBinary, nullable=False, info=_KEY),
    # AES-256-GCM under a key-encryption key kept in the server's data directory, so that a
    # database dump alone cannot forge receipts.
    Column("private_key", LargeBinary, nullable=False, info=_KEY),
    Column("created_at", BigInteger, nullable=False, info=_KEY),
    Column("retired_at", BigInteger, nullable=True, info=_KEY),
)

_RT = _inv("transfer.region_count")

# Essential transfers to Baat's other storage regions (envelopes, prekey bundles, account
# lookups), counted per day, kind and direction. Counts only: a per-envelope log would be a
# record of who writes to whom, which the service does not need (GDPR Art. 5(1)(c)).
region_transfers = Table(
    "region_transfers",
    metadata,
    Column("day", Integer, nullable=False, info=_RT),
    Column("kind", String(16), nullable=False, info=_RT),
    Column("from_region", String(16), nullable=False, info=_RT),
    Column("to_region", String(16), nullable=False, info=_RT),
    Column("count", BigInteger, nullable=False, info=_RT),
    PrimaryKeyConstraint("day", "kind", "from_region", "to_region"),
)

# One row per `baat transparency legal-process` run: the day, nothing else (no username, no
# answer), so that the transparency report can count requests without keeping their content.
legal_process_runs = Table(
    "legal_process_runs",
    metadata,
    Column("seq", _SEQ, Identity(), primary_key=True, info=_inv("operator.legal_process_run")),
    Column("day", Integer, nullable=False, info=_inv("operator.legal_process_run")),
    sqlite_autoincrement=True,
)
