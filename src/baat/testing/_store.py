from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from baat.server.storage.sql import SqlStore


async def memory_store() -> SqlStore:
    """The real ``SqlStore`` on a private in-memory SQLite database, migrated."""
    engine = create_async_engine(
        "sqlite+aiosqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    store = SqlStore(engine)
    await store.migrate()
    return store
