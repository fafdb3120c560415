"""Erasure benchmark: what overwriting deleted data and compacting after erasure cost.

Two figures, each against a baseline measured in the same run on the same machine:

- queue churn (SQLite): envelopes written in group-commit batches and deleted on
  acknowledgement, the delivery path's disk pattern, with ``secure_delete`` ON (what the
  server sets) against OFF. Deleted envelopes are overwritten instead of unlinked.
- account erasure: ``PrivacyService.delete_account`` of an account holding ``--envelopes``
  queued envelopes and its prekeys, with the compaction step (WAL checkpoint on SQLite,
  VACUUM on PostgreSQL) against the same erasure without it.

Figures are the median of ``--runs`` runs.

    .venv/bin/python bench/erasure.py
    .venv/bin/python bench/erasure.py --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from baat.server.privacy.service import PrivacyService
from baat.server.storage.base import Account, Device, QueuedEnvelope
from baat.server.storage.sql import SqlStore

BATCH = 500


async def _open(db: str, secure: bool | None) -> SqlStore:
    store = await SqlStore.open(db)
    if secure is not None and store.dialect == "sqlite":

        @event.listens_for(store.engine.sync_engine, "connect")
        def _override(dbapi_conn: Any, _record: Any) -> None:
            # Runs after SqlStore's own pragmas: the last word on secure_delete.
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA secure_delete={'ON' if secure else 'OFF'}")
            cur.close()

        await store.engine.dispose()  # reconnect with the override
    return store


async def _account(store: SqlStore, name: str) -> str:
    account_id = "in-" + secrets.token_hex(14)
    await store.create_account(
        Account(account_id, name, "in", "IN", 20_000, 20_000),
        Device(account_id, 1, os.urandom(32), os.urandom(32), os.urandom(64), 20_000, b"h" * 32),
    )
    return account_id


def _envelopes(to: str, sender: str, n: int) -> list[QueuedEnvelope]:
    now = int(time.time() * 1000)
    return [
        QueuedEnvelope(os.urandom(16), to, 1, sender, 1, f"m{i}", os.urandom(400), now)
        for i in range(n)
    ]


async def churn(db: str, secure: bool, n: int) -> float:
    """Seconds to write then delete ``n`` envelopes in batches."""
    store = await _open(db, secure)
    try:
        a, b = (
            await _account(store, "a" + secrets.token_hex(4)),
            await _account(store, "b" + secrets.token_hex(4)),
        )
        envs = _envelopes(a, b, n)
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            await store.enqueue(envs[i : i + BATCH])
        for i in range(0, n, BATCH):
            await store.delete_envelopes(a, 1, [e.guid for e in envs[i : i + BATCH]])
        return time.perf_counter() - start
    finally:
        await store.close()


async def erase(db: str, data: Path, compact: bool, n: int) -> float:
    """Seconds for ``delete_account`` of an account with ``n`` queued envelopes."""
    store = await SqlStore.open(db)
    try:
        service = await PrivacyService.open(store, data_dir=data, region="in")
        if not compact:
            service.erasure.compactors.clear()
        a = await _account(store, "z" + secrets.token_hex(4))
        b = await _account(store, "y" + secrets.token_hex(4))
        envs = _envelopes(a, b, n)
        for i in range(0, n, BATCH):
            await store.enqueue(envs[i : i + BATCH])
        start = time.perf_counter()
        await service.delete_account(a)
        return time.perf_counter() - start
    finally:
        await store.close()


async def _reset(db: str) -> None:
    if not db.startswith("postgres"):
        return
    store = await SqlStore.open(db)
    async with store.engine.begin() as conn:
        await conn.execute(text("TRUNCATE envelopes, devices, accounts CASCADE"))
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--envelopes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results: dict[str, list[float]] = {}
        for run in range(args.runs):
            for label, secure in (("churn, secure_delete OFF", False), ("churn, ON", True)):
                if args.db is not None:
                    continue  # PostgreSQL has no secure_delete
                db = f"sqlite:///{root / f'churn-{run}-{secure}.sqlite3'}"
                results.setdefault(label, []).append(await churn(db, secure, args.envelopes))
            for label, compact in (("erasure, no compaction", False), ("erasure, compacted", True)):
                db = args.db or f"sqlite:///{root / f'erase-{run}-{compact}.sqlite3'}"
                await _reset(db)
                took = await erase(db, root / "data", compact, args.envelopes)
                results.setdefault(label, []).append(took)
        medians = {k: statistics.median(v) for k, v in results.items()}
        engine = "PostgreSQL" if args.db else "SQLite"
        print(f"{engine}, {args.envelopes} envelopes, median of {args.runs} runs")
        pairs = [
            ("churn, secure_delete OFF", "churn, ON"),
            ("erasure, no compaction", "erasure, compacted"),
        ]
        for base, measured in pairs:
            if base not in medians:
                continue
            b, m = medians[base], medians[measured]
            print(f"  {base:28s} {b * 1000:9.1f} ms")
            print(f"  {measured:28s} {m * 1000:9.1f} ms   ratio {m / b:5.2f}x the baseline")


if __name__ == "__main__":
    asyncio.run(main())
