"""Migrations 12 and 13 (sealed sender) on SQLite and PostgreSQL: envelopes already queued
survive, sealed envelopes store no sender, and a retried sealed send is stored once."""

from __future__ import annotations

import os

from sqlalchemy import text

from baat.server.storage import migrations
from baat.server.storage.base import QueuedEnvelope
from baat.server.storage.sql import SqlStore
from support.sealed_scan import empty


async def test_migration_12_keeps_queued_envelopes(db_url: str) -> None:
    store = await SqlStore.open(db_url, migrate=False)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS envelopes"))
            await conn.execute(text("DROP TABLE IF EXISTS delivery_access"))
            await conn.execute(text("DROP TABLE IF EXISTS profiles"))
            await conn.execute(text("DROP TABLE IF EXISTS schema_version"))
        # The database as migration 11 left it (envelopes with NOT NULL senders).
        async with store.engine.begin() as conn:
            await conn.run_sync(lambda c: migrations.migrate(c, target=11))
            await conn.execute(
                text(
                    "INSERT INTO envelopes (guid, recipient_account, recipient_device, "
                    "sender_account, sender_device, message_id, content, stored_at) VALUES "
                    "(:g, 'bob', 1, 'alice', 1, 'm1', :c, 5)"
                ),
                {"g": os.urandom(16), "c": b"old"},
            )
        assert await store.migrate() == [12, 13]
        old = await store.pending("bob", 1)
        assert [(e.sender_account, e.content) for e in old] == [("alice", b"old")]
        sealed = QueuedEnvelope(os.urandom(16), "bob", 1, "", 0, "s1", b"sealed", 6)
        retry = QueuedEnvelope(os.urandom(16), "bob", 1, "", 0, "s1", b"sealed", 7)
        seqs = await store.enqueue([sealed])
        assert sealed.guid in seqs
        assert await store.enqueue([retry]) == {}  # the same sealed send, stored once
        rows = await store.pending("bob", 1)
        assert [(e.sender_account, e.sender_device) for e in rows] == [("alice", 1), ("", 0)]
        async with store.engine.connect() as conn:
            raw = (
                await conn.execute(
                    text(
                        "SELECT sender_account, sender_device FROM envelopes WHERE message_id='s1'"
                    )
                )
            ).one()
        assert tuple(raw) == (None, None)
    finally:
        await store.close()
        if "sqlite" not in db_url:
            await empty(db_url)
