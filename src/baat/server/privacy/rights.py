"""Access, erasure and correction, driven by the inventory.

Which tables hold an account, and which columns go into the export, are read from the
inventory's ``account_columns`` and ``in_export``: a new table that references accounts is
covered as soon as its columns are declared, and the erasure test, which scans every table
of the real schema for the account id, fails until they are.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baat.privacy.policy import Policy
from baat.server.privacy import ledger
from baat.server.privacy.schema import consent_events, consent_subjects, transfer_log
from baat.server.storage.schema import metadata


def account_columns(policy: Policy) -> dict[str, list[str]]:
    """Table name → columns holding an account id."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in policy.entries:
        for ref in e.account_columns:
            table, column = ref.split(".", 1)
            out[table].append(column)
    return dict(out)


def owned_rows(policy: Policy) -> list[tuple[str, str, str, str]]:
    """(child table, child column, parent table, parent column) for rows that belong to an
    account through another table's row."""
    out = []
    for e in policy.entries:
        for child, parent in e.belongs_to:
            (child_t, child_c), (parent_t, parent_c) = child.split("."), parent.split(".")
            out.append((child_t, child_c, parent_t, parent_c))
    return out


def _owned_where(policy: Policy, account_id: str) -> list[tuple[Any, Any]]:
    """(child table, condition) for every row owned through a parent of the account."""
    owners = account_columns(policy)
    out = []
    for child_t, child_c, parent_t, parent_c in owned_rows(policy):
        parent = metadata.tables[parent_t]
        keys = select(parent.c[parent_c]).where(
            or_(*(parent.c[c] == account_id for c in owners.get(parent_t, [])))
        )
        child = metadata.tables[child_t]
        out.append((child, child.c[child_c].in_(keys)))
    return out


def _column_entries(policy: Policy) -> dict[str, str]:
    return {col: e.id for e in policy.entries for col in e.columns}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


async def held_rows(conn: AsyncConnection, policy: Policy, account_id: str) -> dict[str, Any]:
    """Every row that references the account, with the columns the export may show."""
    owners = _column_entries(policy)
    exportable = {e.id for e in policy.entries if e.in_export}
    held: dict[str, Any] = {}
    sources = [
        (metadata.tables[t], or_(*(metadata.tables[t].c[c] == account_id for c in cols)))
        for t, cols in sorted(account_columns(policy).items())
    ] + _owned_where(policy, account_id)
    for table, condition in sources:
        shown = [
            c.name for c in table.columns if owners.get(f"{table.name}.{c.name}") in exportable
        ]
        if not shown:
            continue
        rows = await conn.execute(select(*(table.c[c] for c in shown)).where(condition))
        items = [{c: _plain(r._mapping[c]) for c in shown} for r in rows]
        if items:
            held[table.name] = items
    return held


async def consent_history(conn: AsyncConnection, ref: str | None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    rows = await conn.execute(
        select(consent_events.c.record, consent_events.c.receipt)
        .where(consent_events.c.subject_ref == ref)
        .order_by(consent_events.c.seq)
    )
    return [{"record": json.loads(r.record), "receipt": r.receipt} for r in rows]


async def transfers(conn: AsyncConnection, ref: str | None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    t = transfer_log
    rows = await conn.execute(
        select(t.c.transfer_id, t.c.at, t.c.purpose, t.c.recipient, t.c.country, t.c.fields)
        .where(t.c.subject_ref == ref)
        .order_by(t.c.seq)
    )
    return [
        {
            "transfer_id": r.transfer_id,
            "at": ledger.iso_time(r.at),
            "purpose": r.purpose,
            "recipient": r.recipient,
            "country": r.country,
            "fields": json.loads(r.fields),
        }
        for r in rows
    ]


async def erase(conn: AsyncConnection, policy: Policy, account_id: str) -> dict[str, int]:
    """Delete every row that references the account, inside the caller's transaction.

    The ledger and transfer log keep their records under the pseudonym; deleting the
    ``consent_subjects`` row (one of the account's rows) unlinks them.
    """
    deleted: dict[str, int] = {}
    # Owned rows first: their parents are how they are found.
    for child, condition in _owned_where(policy, account_id):
        result = await conn.execute(child.delete().where(condition))
        if result.rowcount:
            deleted[child.name] = int(result.rowcount)
    for table_name, cols in sorted(account_columns(policy).items()):
        table = metadata.tables[table_name]
        result = await conn.execute(
            table.delete().where(or_(*(table.c[c] == account_id for c in cols)))
        )
        if result.rowcount:
            deleted[table_name] = int(result.rowcount)
    return deleted


async def shared_with(conn: AsyncConnection, account_id: str, recipient: str) -> bool:
    """Whether any transfer of the account's data went to ``recipient``."""
    t, s = transfer_log, consent_subjects
    found = await conn.scalar(
        select(t.c.seq)
        .join(s, s.c.subject_ref == t.c.subject_ref)
        .where(s.c.account_id == account_id, t.c.recipient == recipient)
        .limit(1)
    )
    return found is not None


async def recipients_of(conn: AsyncConnection, account_id: str) -> dict[str, set[str]]:
    """Every recipient that received the account's data (``transfer_log``), with the
    purposes it received it for: whom an erasure must be passed on to (GDPR Art. 19)."""
    t, s = transfer_log, consent_subjects
    rows = await conn.execute(
        select(t.c.recipient, t.c.purpose)
        .distinct()
        .join(s, s.c.subject_ref == t.c.subject_ref)
        .where(s.c.account_id == account_id)
    )
    out: dict[str, set[str]] = defaultdict(set)
    for recipient, purpose in rows:
        out[str(recipient)].add(str(purpose))
    return dict(out)
