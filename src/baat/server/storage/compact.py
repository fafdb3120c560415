"""Making deleted rows unrecoverable from the database's files (docs/PRIVACY.md, "Erasure").

SQLite: every connection runs with ``PRAGMA secure_delete=ON`` (``SqlStore.open``), so a
deleted row's bytes are overwritten with zeros in the page that held it; but in WAL mode the
old page images stay in the ``-wal`` file until a checkpoint copies the pages back and,
with ``TRUNCATE``, empties the file. ``compact`` runs that checkpoint.

PostgreSQL: a deleted row stays in its heap page (and the old index entries in theirs) as a
dead tuple until ``VACUUM`` reclaims it; the bytes of the page may still be overwritten only
later, when new rows reuse the space, and copies remain in the write-ahead log and in base
backups until they are recycled. ``compact`` runs ``VACUUM`` on the touched tables, which
is what an operator can do without rewriting the tables; ``VACUUM FULL`` would rewrite them
under an exclusive lock and is left to maintenance windows.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from baat.server.storage.schema import metadata


async def compact(engine: AsyncEngine, tables: Iterable[str]) -> None:
    """Checkpoint and truncate SQLite's WAL, or ``VACUUM`` the given PostgreSQL tables.

    Raises:
        sqlalchemy.exc.DBAPIError: the database refused or is unreachable.
    """
    names = [t for t in tables if t in metadata.tables]
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            await conn.commit()
            return
        if not names:
            return
        # VACUUM cannot run inside a transaction block.
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in names:
            # Names come from the schema's own metadata, never from input.
            await auto.exec_driver_sql(f'VACUUM "{name}"')
