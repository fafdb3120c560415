"""Schema versions through the real commands: an old schema is migrated only by
``baat admin migrate`` (or ``serve --migrate auto``), a newer one is refused by everything."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from baat.server.storage import migrations
from baat.server.storage.schema import schema_version
from baat.server.storage.sql import SqlStore
from baat.server.upgrade import LATEST
from support.server import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

OLD = 3
# Migration numbers are not contiguous (some are reserved): the ones after OLD.
PENDING = [m.version for m in migrations.MIGRATIONS if m.version > OLD]


def baat(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baat", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def on_db(url: str, fn: Callable[[Connection], object] | None) -> int:
    """Run ``fn(conn)`` in a transaction (if given) and return the schema version."""

    async def go() -> int:
        store = await SqlStore.open(url, migrate=False)
        try:
            async with store.engine.begin() as conn:
                if fn is not None:
                    await conn.run_sync(fn)
                return await conn.run_sync(migrations.current_version)
        finally:
            await store.close()

    return asyncio.run(go())


def version(url: str) -> int:
    return on_db(url, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each engine, for this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    base = os.environ.get("BAAT_TEST_POSTGRES")
    if not base:
        pytest.skip("BAAT_TEST_POSTGRES is not set")
    import asyncpg

    name = "baat_up_" + secrets.token_hex(5)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def serve_refused(tmp_path: Path, db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = ["serve", "--data", str(tmp_path / "srv"), "--db", db, "--port", str(free_port())]
    cmd += ["--region", "in"]
    return baat(*cmd, *extra, timeout=60)


def test_old_schema_is_migrated_only_by_admin_migrate(tmp_path: Path, fresh_db: str) -> None:
    db = fresh_db
    assert on_db(db, lambda conn: migrations.migrate(conn, OLD)) == OLD

    # Administration and report commands read it as it is, and say what to run.
    for args in (("admin", "retention"), ("admin", "verify-ledger"), ("transparency", "report")):
        out = baat(*args, "--db", db)
        assert out.returncode == 1, out
        assert "schema_behind" in out.stderr and "baat admin migrate" in out.stderr
    assert version(db) == OLD

    # A server told not to migrate refuses, quickly and clearly.
    out = serve_refused(tmp_path, db, "--migrate", "off")
    assert out.returncode == 2
    assert "baat admin migrate" in out.stderr and "Traceback" not in out.stderr
    assert version(db) == OLD

    dry = baat("admin", "migrate", "--dry-run", "--db", db, "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["current"] == OLD and plan["latest"] == LATEST and plan["applied"] == []
    assert [p["version"] for p in plan["pending"]] == PENDING
    assert version(db) == OLD

    done = baat("admin", "migrate", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == PENDING
    assert version(db) == LATEST
    again = baat("admin", "migrate", "--db", db)
    assert again.returncode == 0 and "up to date" in again.stdout

    # Now the server runs without migrating, and the admin commands work.
    node = ServerProcess(tmp_path / "srv", db, "--migrate", "off").start()
    try:
        assert baat("admin", "verify-ledger", "--db", db).returncode == 0
    finally:
        node.stop()


def test_serve_migrates_at_start_by_default(tmp_path: Path, fresh_db: str) -> None:
    on_db(fresh_db, lambda conn: migrations.migrate(conn, OLD))
    node = ServerProcess(tmp_path / "srv", fresh_db).start()
    try:
        assert version(fresh_db) == LATEST
        assert "migrated the database schema to version" in node.log()
    finally:
        node.stop()


def test_newer_schema_is_refused_by_everything(tmp_path: Path, fresh_db: str) -> None:
    db = fresh_db

    def from_the_future(conn: Connection) -> None:
        migrations.migrate(conn)
        conn.execute(insert(schema_version).values(version=LATEST + 1, applied_at=0))

    assert on_db(db, from_the_future) == LATEST + 1
    out = serve_refused(tmp_path, db)  # --migrate auto, the default
    assert out.returncode == 2
    assert "newer than this code" in out.stderr and "Traceback" not in out.stderr
    for args in (("admin", "migrate"), ("admin", "migrate", "--dry-run"), ("admin", "retention")):
        out = baat(*args, "--db", db)
        assert out.returncode == 1, out
        assert "newer than this code" in out.stderr
    assert version(db) == LATEST + 1


def test_unreachable_database_at_start_is_exit_1_not_2(tmp_path: Path) -> None:
    """Status 2 tells a supervisor not to restart (a schema that does not fit); a database
    that is not there yet is status 1, worth a restart later."""
    out = serve_refused(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/baat")
    assert out.returncode == 1
    assert "cannot reach the database" in out.stderr and "Traceback" not in out.stderr
