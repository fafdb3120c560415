"""The database's schema version against the code's: check, refuse, migrate.

The rules (docs/UPGRADE.md says the same for operators):

1. This code knows migrations 1..``LATEST``. A database at a higher version was migrated by
   newer code; this code refuses it, because it would write rows the newer code does not
   expect. Rolling code back is therefore safe only to a release with the same schema
   version, or after restoring the backup taken before the upgrade.
2. A database behind the code is migrated by ``baat admin migrate`` (the one command made
   for it), or by ``baat serve --migrate auto`` (the default, so that a single node upgrades
   by restarting). ``baat serve --migrate off`` refuses such a database instead.
3. Administration and report commands never migrate: on a database that is behind they stop
   and name the command that would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from baat.server.storage import migrations
from baat.server.storage.base import StorageUnavailable
from baat.server.storage.sql import SqlStore

LATEST = migrations.MIGRATIONS[-1].version

T = TypeVar("T")


class SchemaError(Exception):
    """The database's schema does not fit this code; ``code`` is stable for scripts."""

    code = "schema_error"


class SchemaTooNew(SchemaError):
    """Newer code migrated the database; this code must not run on it."""

    code = "schema_too_new"


class SchemaBehind(SchemaError):
    """The database needs migrations that only ``baat admin migrate`` (or
    ``serve --migrate auto``) applies."""

    code = "schema_behind"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    # (version, description) of each migration this code would apply.
    pending: tuple[tuple[int, str], ...]

    def to_json(self) -> dict[str, object]:
        return {
            "current": self.current,
            "latest": self.latest,
            "pending": [{"version": v, "description": d} for v, d in self.pending],
        }


def _status(conn: Connection) -> SchemaStatus:
    current = migrations.current_version(conn)
    pending = tuple(
        (m.version, m.description) for m in migrations.MIGRATIONS if m.version > current
    )
    return SchemaStatus(current, LATEST, pending)


def _too_new(status: SchemaStatus) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database schema is at version {status.current}, newer than this code "
        f"(version {status.latest}, baat {_version()}): it was migrated by a newer release. "
        "Run that release, or restore the backup taken before the upgrade (docs/UPGRADE.md)"
    )


def _version() -> str:
    from baat import __version__

    return __version__


async def _run(store: SqlStore, fn: Callable[[Connection], T]) -> T:
    try:
        async with store.engine.begin() as conn:
            return await conn.run_sync(fn)
    except (sa_exc.DBAPIError, OSError) as exc:
        raise StorageUnavailable(str(exc).splitlines()[0]) from exc


async def schema_status(store: SqlStore) -> SchemaStatus:
    """Where the database stands; reads only.

    Raises:
        StorageUnavailable: the database cannot be reached.
    """
    return await _run(store, _status)


async def require_current(store: SqlStore) -> SchemaStatus:
    """Check that the schema is exactly this code's, changing nothing.

    Raises:
        SchemaTooNew: newer code migrated it.
        SchemaBehind: it needs ``baat admin migrate``.
        StorageUnavailable: the database cannot be reached.
    """
    status = await schema_status(store)
    if status.current > status.latest:
        raise _too_new(status)
    if status.pending:
        raise SchemaBehind(
            f"the database schema is at version {status.current}; this code (baat "
            f"{_version()}) needs version {status.latest}. Run `baat admin migrate` "
            "(after a backup, docs/UPGRADE.md)"
        )
    return status


async def migrate(store: SqlStore, *, dry_run: bool = False) -> tuple[SchemaStatus, list[int]]:
    """Apply the pending migrations (none with ``dry_run``), in one transaction.

    Returns the status before, and the versions applied.

    Raises:
        SchemaTooNew: newer code migrated it; nothing is changed.
        StorageUnavailable: the database cannot be reached.
    """

    def go(conn: Connection) -> tuple[SchemaStatus, list[int]]:
        before = _status(conn)
        if before.current > before.latest:
            raise _too_new(before)
        if dry_run:
            return before, []
        return before, migrations.migrate(conn)

    return await _run(store, go)


async def prepare(store: SqlStore, *, auto: bool) -> list[int]:
    """At server start: migrate when ``auto``, else require the current schema.

    Raises:
        SchemaTooNew, SchemaBehind, StorageUnavailable: as above.
    """
    if not auto:
        await require_current(store)
        return []
    return (await migrate(store))[1]


def preflight(db_url: str, *, auto: bool) -> list[int]:
    """Before the server binds: bring the schema to this code's version (``auto``) or check
    that it is there, so that a wrong schema stops the process with a clear error and a
    non-zero exit instead of a failed start-up inside the web server.

    Raises:
        SchemaTooNew, SchemaBehind, StorageUnavailable: as above.
        ValueError: unsupported database URL.
    """

    async def go() -> list[int]:
        store = await SqlStore.open(db_url, migrate=False)
        try:
            return await prepare(store, auto=auto)
        finally:
            await store.close()

    return asyncio.run(go())
