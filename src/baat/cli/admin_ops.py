"""Operator commands on the deployment itself: ``baat admin migrate`` and ``baat admin
backup``, added to the ``admin`` group of ``baat.cli.privacy``.

``migrate`` is the one command that changes the schema on purpose (docs/UPGRADE.md);
``backup`` copies a running SQLite deployment (docs/BACKUP.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from baat.cli.operator import admin  # with invite and region-key
from baat.cli.privacy import CliFailure, _emit, db_options

__all__ = ["admin"]


@admin.command("migrate")
@click.option("--dry-run", is_flag=True, help="Show the pending migrations; change nothing.")
@db_options
def admin_migrate(dry_run: bool, db: str, as_json: bool) -> None:
    """Apply the pending schema migrations (take a backup first: docs/UPGRADE.md)."""
    from baat.server import upgrade
    from baat.server.storage.base import StorageUnavailable
    from baat.server.storage.sql import SqlStore

    async def go() -> tuple[upgrade.SchemaStatus, list[int]]:
        store = await SqlStore.open(db, migrate=False)
        try:
            return await upgrade.migrate(store, dry_run=dry_run)
        finally:
            await store.close()

    try:
        before, applied = asyncio.run(go())
    except (upgrade.SchemaError, StorageUnavailable, ValueError) as exc:
        raise CliFailure(str(exc)) from exc
    data: dict[str, Any] = {**before.to_json(), "dry_run": dry_run, "applied": applied}

    def human(d: dict[str, Any]) -> str:
        if not d["pending"]:
            return f"schema at version {d['current']}: up to date"
        steps = [f"  {p['version']}: {p['description']}" for p in d["pending"]]
        if d["dry_run"]:
            head = f"schema at version {d['current']}; would apply (dry run, nothing changed):"
        else:
            head = f"schema migrated from version {d['current']} to {d['latest']}; applied:"
        return "\n".join([head, *steps])

    _emit(data, as_json, human)


@admin.command("backup")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="New (or empty) directory for the backup.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("./var/server"),
    show_default=True,
    help="The server's --data directory (database, blobs/, key files).",
)
@click.option(
    "--db",
    default=None,
    envvar="BAAT_DB",
    help="sqlite:///PATH when the database is not DATA/baat.sqlite3.",
)
@click.option(
    "--secret-file",
    "secret_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Another secret to keep with the backup, e.g. the region secret (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def admin_backup(
    out: Path, data_dir: Path, db: str | None, secret_files: tuple[Path, ...], as_json: bool
) -> None:
    """Back up a SQLite deployment while it runs: the database (SQLite's online backup),
    blobs/ and the key files. PostgreSQL deployments use pg_dump (docs/BACKUP.md)."""
    from baat.server.admin.backup import BackupError, backup_sqlite

    try:
        manifest = backup_sqlite(data_dir, out, db=db, secret_files=list(secret_files))
    except BackupError as exc:
        raise CliFailure(str(exc)) from exc

    def human(d: dict[str, Any]) -> str:
        return (
            f"backed up schema version {d['schema_version']} ({d['database_bytes']} bytes), "
            f"{d['blobs']} blob files and {len(d['keys'])} key files to {out}\n"
            f"restore: stop the server, copy {out / 'data'}/. into an empty --data directory"
        )

    _emit(manifest, as_json, human)


# ``baat admin verify-business`` lives with the business commands.
from baat.cli import business_admin as _business_admin  # noqa: E402, F401
