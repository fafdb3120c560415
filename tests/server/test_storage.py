"""The storage suite, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import inspect

from baat.crypto import (
    PREKEY_KIND_CURVE_ONE_TIME,
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PREKEY_KIND_KEM_ONE_TIME,
)
from baat.server.storage import migrations
from baat.server.storage.base import Account, Device, Prekey, QueuedEnvelope, UsernameTaken
from baat.server.storage.schema import metadata
from baat.server.storage.sql import SqlStore


def account(name: str, aid: str | None = None) -> tuple[Account, Device]:
    aid = aid or os.urandom(8).hex()
    return (
        Account(aid, name, "local", "IN", 20000, 20000),
        Device(aid, 1, b"i" * 32, b"d" * 32, b"s" * 64, 20000, b"h" * 32),
    )


def env(recipient: str, n: int, sender: str = "alice", device: int = 1) -> QueuedEnvelope:
    return QueuedEnvelope(os.urandom(16), recipient, device, sender, 1, f"m{n}", b"c%d" % n, n)


async def test_migrated_schema_matches_the_declaration(store: SqlStore) -> None:
    migrations.load_all_tables()

    def reflect(sync_conn: object) -> dict[str, set[str]]:
        insp = inspect(sync_conn)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}

    async with store.engine.connect() as conn:
        real = await conn.run_sync(reflect)
    declared = {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables}
    assert real == declared


async def test_migrations_are_idempotent(store: SqlStore) -> None:
    assert await store.migrate() == []


async def test_usernames_are_unique(store: SqlStore) -> None:
    await store.create_account(*account("alice"))
    with pytest.raises(UsernameTaken):
        await store.create_account(*account("alice"))
    found = await store.account_by_username("alice")
    assert found is not None and found.username == "alice"


async def test_claim_hands_each_one_time_key_out_once(store: SqlStore) -> None:
    acct, dev = account("bob")
    await store.create_account(acct, dev)
    signed = [
        Prekey(PREKEY_KIND_CURVE_SIGNED, 1, b"s" * 32, b"x" * 64),
        Prekey(PREKEY_KIND_KEM_LAST_RESORT, 2, b"k" * 1184, b"x" * 64),
    ]
    one_time = [Prekey(PREKEY_KIND_CURVE_ONE_TIME, i, bytes([i]) * 32, b"") for i in range(10)]
    one_time += [Prekey(PREKEY_KIND_KEM_ONE_TIME, i, b"q" * 1184, b"x" * 64) for i in range(3)]
    await store.store_prekeys(acct.account_id, 1, signed, one_time)
    assert await store.prekey_counts(acct.account_id, 1) == {
        PREKEY_KIND_CURVE_ONE_TIME: 10,
        PREKEY_KIND_KEM_ONE_TIME: 3,
    }
    bundles = await asyncio.gather(*(store.claim_bundle(acct.account_id, 1) for _ in range(14)))
    curve = [b.one_time_curve.key_id for b in bundles if b.one_time_curve]
    kem = [b.one_time_kem.key_id for b in bundles if b.one_time_kem]
    assert sorted(curve) == list(range(10))
    assert sorted(kem) == [0, 1, 2]
    assert all(b.signed_prekey and b.kem_last_resort for b in bundles)
    assert await store.prekey_counts(acct.account_id, 1) == {
        PREKEY_KIND_CURVE_ONE_TIME: 0,
        PREKEY_KIND_KEM_ONE_TIME: 0,
    }


async def test_signed_prekey_is_replaced(store: SqlStore) -> None:
    acct, dev = account("carol")
    await store.create_account(acct, dev)
    for key_id in (1, 2):
        await store.store_prekeys(
            acct.account_id, 1, [Prekey(PREKEY_KIND_CURVE_SIGNED, key_id, b"s" * 32, b"x")], []
        )
    bundle = await store.claim_bundle(acct.account_id, 1)
    assert bundle.signed_prekey is not None and bundle.signed_prekey.key_id == 2


async def test_queue_keeps_order_ignores_duplicates_and_deletes_own(store: SqlStore) -> None:
    batch = [env("bob", n) for n in range(5)]
    await store.enqueue(batch)
    await store.enqueue(batch[:2])  # a retried batch
    rows = await store.pending("bob", 1)
    assert [r.message_id for r in rows] == [f"m{n}" for n in range(5)]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    # Another device cannot delete bob's envelopes.
    assert await store.delete_envelopes("mallory", 1, [r.guid for r in rows]) == 0
    assert await store.delete_envelopes("bob", 1, [rows[0].guid, rows[1].guid]) == 2
    assert [r.message_id for r in await store.pending("bob", 1)] == ["m2", "m3", "m4"]
    assert [r.message_id for r in await store.pending("bob", 1, after_seq=rows[3].seq)] == ["m4"]


async def test_expiry_removes_only_old_envelopes(store: SqlStore) -> None:
    await store.enqueue([env("bob", 1), env("bob", 100)])
    assert await store.expire_envelopes(50) == 1
    assert [r.message_id for r in await store.pending("bob", 1)] == ["m100"]


async def test_recent_sends_survive_a_restart(store: SqlStore) -> None:
    await store.save_recent_sends([("a", 1, "m1", 10_000), ("a", 1, "m2", 5)])
    assert await store.load_recent_sends(100) == [("a", 1, "m1", 10_000)]
    assert await store.load_recent_sends(100) == []
