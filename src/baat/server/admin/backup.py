"""An online backup of a SQLite deployment (docs/BACKUP.md).

What a SQLite deployment needs to come back, all under its ``--data`` directory:

1. ``baat.sqlite3`` (with its ``-wal`` file while the server runs): copied with SQLite's
   online backup API, which reads one consistent snapshot, WAL included, while the server
   goes on writing (in WAL mode a reader never blocks the writer). Copying the files with
   ``cp`` instead could catch the database and its WAL at different moments.
2. ``blobs/``: attachment ciphertext, one file per blob. Copied after the database, so that
   every blob the snapshot names is in the copy (files of blobs created later are extra and
   harmless; they expire like any other).
3. The key files (``*.kek``): without ``receipt-signing.kek`` the stored receipt-signing key
   cannot be opened, and the restored server would sign with a new one. And
   ``sealed-sender-root.key``: without it the restored server would certify senders under a
   new root, which clients that pinned the old one refuse (docs/CRYPTO.md §18.1).

The backup directory holds ``data/`` (copy its contents into an empty ``--data`` directory
to restore), ``secrets/`` (other files named with ``--secret-file``) and ``MANIFEST.json``
(sizes and SHA-256 of every file, the schema version and the code version).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from baat.server.sealed import ROOT_KEY_FILE

DB_FILE = "baat.sqlite3"


class BackupError(Exception):
    """The backup cannot be made; nothing usable was written."""


def _sqlite_path(data_dir: Path, db: str | None) -> Path:
    if db is None:
        return data_dir / DB_FILE
    if db.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise BackupError(
            "this command backs up SQLite deployments; back up PostgreSQL with pg_dump "
            "(docs/BACKUP.md), and the key files with it"
        )
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if db.startswith(prefix):
            return Path(db[len(prefix) :])
    raise BackupError(f"unsupported database URL {db!r}: use sqlite:///PATH")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_database(source: Path, target: Path) -> int:
    """The online backup; returns the schema version of the copy."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    # Opened read-write only because a WAL database needs its shared-memory file; the
    # backup API reads and never writes the source.
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            check = dst.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy failed SQLite's check: {check}")
            row = dst.execute("SELECT max(version) FROM schema_version").fetchone()
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from exc
    finally:
        src.close()
    return int(row[0]) if row and row[0] is not None else 0


def _copy_private(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)


def backup_sqlite(
    data_dir: Path, out: Path, *, db: str | None = None, secret_files: list[Path] | None = None
) -> dict[str, Any]:
    """Back up the SQLite deployment under ``data_dir`` into ``out`` (new or empty).

    Returns the manifest, also written to ``out/MANIFEST.json``.

    Raises:
        BackupError: PostgreSQL, no database, ``out`` not empty, or SQLite failed.
    """
    from baat import __version__

    source = _sqlite_path(data_dir, db)
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: back up into a new directory")
    data_out = out / "data"
    data_out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)  # keys and the database: readable by the operator only
    db_copy = data_out / DB_FILE
    schema = _copy_database(source, db_copy)
    os.chmod(db_copy, 0o600)
    files: dict[str, dict[str, Any]] = {}
    blobs = 0
    blob_dir = data_dir / "blobs"
    if blob_dir.is_dir():
        for path in sorted(p for p in blob_dir.rglob("*") if p.is_file()):
            try:
                _copy_private(path, data_out / path.relative_to(data_dir))
            except FileNotFoundError:
                continue  # expired while we copied: the snapshot no longer needs it
            blobs += 1
    keys = []
    sealed_root = data_dir / ROOT_KEY_FILE
    present = [sealed_root] if sealed_root.exists() else []
    for path in sorted([*data_dir.glob("*.kek"), *present]):
        _copy_private(path, data_out / path.name)
        keys.append(path.name)
    for path in secret_files or []:
        _copy_private(path, out / "secrets" / path.name)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        files[str(path.relative_to(out))] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        "baat_version": __version__,
        "schema_version": schema,
        "created_at": int(time.time()),
        "database_bytes": db_copy.stat().st_size,
        "blobs": blobs,
        "keys": keys,
        "secrets": [p.name for p in secret_files or []],
        "files": files,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
