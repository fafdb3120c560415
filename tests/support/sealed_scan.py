"""What a seized server reveals after sealed sends (issue 16): scans of every table, the
data directory's files and the server log for a sender next to a recipient."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from baat.server.storage import migrations
from baat.server.storage.schema import metadata
from baat.server.storage.sql import SqlStore


def server_db(data_dir: Path, db: str | None) -> str:
    return db if db else f"sqlite:///{data_dir / 'baat.sqlite3'}"


async def linking_rows(db: str, sender_ids: list[str], recipient_id: str) -> list[str]:
    """Rows of any table that hold one of ``sender_ids`` together with the recipient's
    account id, and envelopes naming a sender other than their recipient's own account (a
    copy between one account's devices goes authenticated, and says nothing of whom it
    writes to)."""
    store = await SqlStore.open(db, migrate=False)
    found: list[str] = []
    try:
        migrations.load_all_tables()
        async with store.engine.connect() as conn:
            for table in metadata.sorted_tables:
                rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
                for row in rows:
                    cells = " ".join(
                        v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row
                    )
                    if recipient_id in cells and any(s in cells for s in sender_ids):
                        found.append(f"{table.name}: {cells[:200]}")
            senders = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM envelopes WHERE sender_account IS NOT NULL "
                        "AND sender_account <> recipient_account"
                    )
                )
            ).scalar_one()
            if senders:
                found.append(f"envelopes: {senders} with another account as sender")
    finally:
        await store.close()
    return found


def files_naming(data_dir: Path, needles: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Files under ``data_dir`` (blobs, keys, logs) that contain any of ``needles``."""
    hits = []
    for path in data_dir.rglob("*"):
        if not path.is_file() or path.name.startswith(skip):
            continue
        data = path.read_bytes()
        hits += [f"{path.name}: {n}" for n in needles if n.encode() in data]
    return hits


def log_lines_linking(log: str, sender_id: str, recipient_id: str) -> list[str]:
    return [line for line in log.splitlines() if sender_id in line and recipient_id in line]


async def empty(db: str) -> None:
    """Empty every table again after a test on the run's shared PostgreSQL database, so
    that later tests there (which register fixed names) start clean."""
    store = await SqlStore.open(db, migrate=False)
    try:
        migrations.load_all_tables()
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "schema_version")
        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    finally:
        await store.close()
