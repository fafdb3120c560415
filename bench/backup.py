"""Backup benchmark: ``baat admin backup``'s online SQLite copy against copying the files.

Builds a data directory the way a server leaves it (the migrated schema, ``--envelopes``
queued envelopes of ``--size`` bytes, ``--blobs`` blob files of 1 MiB, the key file), then
measures, the median of ``--runs`` runs each:

- baseline: ``cp -r`` of the data directory (what an operator might do with the server
  stopped; not a consistent copy while it runs);
- backup:   ``backup_sqlite`` (SQLite's online backup API, quick_check of the copy, blobs
  and keys with SHA-256 in the manifest).

Figures are seconds and MB/s (10^6 bytes of the data directory), and backup / baseline.

    .venv/bin/python bench/backup.py
    .venv/bin/python bench/backup.py --envelopes 200000 --blobs 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from baat.server.admin.backup import backup_sqlite
from baat.server.storage.schema import envelopes
from baat.server.storage.sql import SqlStore


async def build(data: Path, n: int, size: int, blobs: int) -> None:
    store = await SqlStore.open(f"sqlite:///{data / 'baat.sqlite3'}")
    try:
        body = os.urandom(size)
        rows = [
            {
                "guid": i.to_bytes(16, "big"),
                "recipient_account": f"in-{i % 500:029d}",
                "recipient_device": 1,
                "sender_account": "in-" + "s" * 29,
                "sender_device": 1,
                "message_id": f"m{i}",
                "content": body,
                "stored_at": 0,
            }
            for i in range(n)
        ]
        async with store.engine.begin() as conn:
            for start in range(0, n, 5000):
                await conn.execute(insert(envelopes), rows[start : start + 5000])
    finally:
        await store.close()
    (data / "blobs" / "in").mkdir(parents=True)
    for i in range(blobs):
        (data / "blobs" / "in" / f"blob{i}").write_bytes(os.urandom(1 << 20))
    (data / "receipt-signing.kek").write_bytes(os.urandom(32))


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        assert callable(fn)
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes of ciphertext each")
    parser.add_argument("--blobs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="baat-bench-backup-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        asyncio.run(build(data, args.envelopes, args.size, args.blobs))
        total = size_of(data)
        count = iter(range(10_000))

        def copy() -> None:
            shutil.copytree(data, root / f"cp{next(count)}")

        def backup() -> None:
            backup_sqlite(data, root / f"bk{next(count)}")

        base = timed(copy, args.runs)
        ours = timed(backup, args.runs)
    mb = total / 1e6
    print(f"data directory: {mb:.1f} MB ({args.envelopes} envelopes, {args.blobs} blobs)")
    print(f"baseline cp -r:      {base:.3f} s  {mb / base:8.1f} MB/s")
    print(f"baat admin backup:   {ours:.3f} s  {mb / ours:8.1f} MB/s")
    print(f"backup / baseline:   {ours / base:.2f}x")


if __name__ == "__main__":
    main()
