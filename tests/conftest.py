"""Fixtures shared by every test package.

Storage tests run on SQLite always and on PostgreSQL when ``BAAT_TEST_POSTGRES`` names a
server (``make test`` sets it). Each pytest run gets its own PostgreSQL database, dropped at
the end, so that parallel runs never share tables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from baat.server.storage import migrations
from baat.server.storage.schema import metadata
from baat.server.storage.sql import SqlStore
from support.devices import OPEN_TRANSPORTS
from support.server import ServerProcess

PG_BASE = os.environ.get("BAAT_TEST_POSTGRES")


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        assert PG_BASE
        conn = await asyncpg.connect(PG_BASE)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run."""
    if not PG_BASE:
        pytest.skip("BAAT_TEST_POSTGRES is not set")
    name = "baat_t_" + secrets.token_hex(6)
    _pg_admin(f"CREATE DATABASE {name}")
    base = PG_BASE.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each engine; PostgreSQL starts from empty tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'baat.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    asyncio.run(_empty(url))
    return url


async def _empty(url: str) -> None:
    """Migrated, with every table empty: cheaper than dropping and migrating again."""
    store = await SqlStore.open(url)
    try:
        migrations.load_all_tables()
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "schema_version")
        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    finally:
        await store.close()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = await SqlStore.open(db_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(autouse=True)
async def _close_transports() -> AsyncIterator[None]:
    yield
    while OPEN_TRANSPORTS:
        await OPEN_TRANSPORTS.pop().close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``baat serve`` process on SQLite."""
    proc = ServerProcess(tmp_path / "server").start()
    try:
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()


@pytest.fixture
def sealed_server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    """A real ``baat serve`` on ``db_url``; a PostgreSQL database is emptied afterwards, since
    other tests register the same fixed names."""
    from support.sealed_scan import empty

    server = ServerProcess(tmp_path / "server", None if "sqlite" in db_url else db_url)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()
        if "sqlite" not in db_url:
            asyncio.run(empty(db_url))
