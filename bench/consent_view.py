"""What deciding consent from verified, signed records costs, against the column query it
replaced (the baseline, measured in the same run on the same SQLite database).

* baseline: the SQL query over ``consent_events`` columns (newest event per pseudonym and
  purpose) that the gate used before, which trusted the mutable ``state`` column;
* cold: a fresh ``ConsentView`` (a new process) verifying every record: hash, chain link,
  Ed25519 receipt signature, then the signed head;
* warm: the next refresh, with nothing new (one read of the small columns and the head);
* incremental: a refresh after ``--new`` more records.

Usage: ``python bench/consent_view.py [--records N] [--new M]`` (defaults 1000, 20; under a
minute on a quiet machine, most of it writing the ledger).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from baat.privacy.policy import Policy
from baat.server.privacy import keys, ledger
from baat.server.privacy.consent_view import ConsentView
from baat.server.privacy.service import PrivacyService
from baat.server.storage.base import Account, Device
from baat.server.storage.sql import SqlStore

REPEAT = 5


async def _accounts(store: SqlStore, start: int, count: int) -> list[str]:
    ids = []
    for i in range(start, start + count):
        account = Account(f"{i:032x}", f"user{i}", "in", "IN", 20_000, 20_000)
        device = Device(account.account_id, 1, bytes(32), bytes(32), bytes(64), 20_000, bytes(32))
        await store.create_account(account, device)
        ids.append(account.account_id)
    return ids


async def _best(fn: object, repeat: int = REPEAT) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


async def main(records: int, new: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqlStore.open(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        service = await PrivacyService.open(store, data_dir=Path(tmp), region="in")
        market = Policy.current().purpose("market")
        t = time.perf_counter()
        for account_id in await _accounts(store, 0, records):
            await service.grant(account_id, "market")
        write = time.perf_counter() - t

        async def baseline() -> None:
            async with store.engine.connect() as conn:
                (await conn.execute(ledger.consenting_accounts_query(market))).all()

        async def refresh(view: ConsentView) -> None:
            async with store.engine.connect() as conn:
                await view.refresh(conn, await keys.jwks_on(conn))
            assert len(view.consenting(market)) >= records

        base = await _best(baseline)

        async def cold_once() -> None:
            await refresh(ConsentView())

        cold = await _best(cold_once, 3)
        view = ConsentView()
        await refresh(view)
        warm = await _best(lambda: refresh(view))
        for account_id in await _accounts(store, records, new):
            await service.grant(account_id, "market")
        t = time.perf_counter()
        await refresh(view)
        incremental = time.perf_counter() - t
        await store.close()

    table = Table(title=f"Consent decisions over {records:,} ledger records (SQLite)")
    table.add_column("what")
    table.add_column("time", justify="right")
    table.add_column("vs column query", justify="right")
    table.add_row("writing the ledger (append + sign + head)", f"{write:,.2f} s", "")
    table.add_row("per append", f"{write / records * 1e3:,.2f} ms", "")
    table.add_row("baseline: column query (unsigned)", f"{base * 1e3:,.2f} ms", "1.0x")
    table.add_row("cold: verify every record", f"{cold * 1e3:,.1f} ms", f"{cold / base:,.1f}x")
    table.add_row("per record verified", f"{cold / records * 1e6:,.1f} µs", "")
    table.add_row("warm: nothing new", f"{warm * 1e3:,.2f} ms", f"{warm / base:,.1f}x")
    table.add_row(
        f"incremental: {new} new records",
        f"{incremental * 1e3:,.2f} ms",
        f"{incremental / base:,.1f}x",
    )
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--new", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.new))
