"""What the server holds in memory and in Redis about an account goes when it is erased,
on every node: the router's recent sends, device list and rate bucket, live sessions, and
presence keys (baat.privacy.erasure, baat.server.erasable)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from baat.proto import OutgoingEnvelope, SendResult
from baat.server.bus import LocalBus, LocalHub
from baat.server.bus.redis import RedisBus
from baat.server.delivery import Router
from baat.server.storage.base import Account, Device
from baat.testing import memory_store

from .test_router import FakeOutlet

REDIS = os.environ.get("BAAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def test_an_erasure_reaches_the_memory_of_every_node() -> None:
    hub = LocalHub()
    store = await memory_store()
    for name in ("alice", "bob"):
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    here = Router(store, ack_grace=0.01, bus=LocalBus("a", hub))
    there = Router(store, ack_grace=0.01, bus=LocalBus("b", hub))
    await here.start()
    await there.start()
    # Alice is connected to the other node and sent from there.
    alice = FakeOutlet(("alice", 1))
    await there.attach(alice)
    results: list[SendResult] = []
    await there.accept_send(("alice", 1), "m1", [OutgoingEnvelope("bob", 1, b"hi")], results.append)
    assert ("alice", 1) in hub.presence and there._recent

    assert await here.close_account("alice") == 0  # not connected here
    assert await here.erase_account("alice") == 0
    for _ in range(500):
        if alice.removed:
            break
        await asyncio.sleep(0.01)
    assert alice.removed  # the other node closed her session
    assert not [k for k in there._recent if k[0] == "alice"]
    assert "alice" not in there._buckets and "alice" not in there._devices
    assert here.bus is not None
    assert await here.bus.forget("alice") == 1
    assert ("alice", 1) not in hub.presence
    there.detach(alice)
    await here.stop()
    await there.stop()
    # Nothing of hers is written out at shutdown.
    assert [r for r in await store.load_recent_sends(0) if r[0] == "alice"] == []
    await store.close()


async def test_redis_presence_keys_of_an_account_are_deleted() -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    probe = aioredis.from_url(REDIS, socket_connect_timeout=1)
    try:
        await probe.ping()
    except (RedisError, OSError):
        pytest.skip(f"no Redis at {REDIS}")
    prefix = f"baat:test-{os.urandom(4).hex()}"
    one = RedisBus(REDIS, "node-1", prefix=prefix)
    two = RedisBus(REDIS, "node-2", prefix=prefix)
    try:
        await one.claim(("in-zed", 1))
        await two.claim(("in-zed", 2))  # written by another node
        await one.claim(("in-zed2", 1))  # a different account sharing the prefix
        assert await one.forget("in-zed") == 2
        assert await one.locate([("in-zed", 1), ("in-zed", 2), ("in-zed2", 1)]) == {
            ("in-zed2", 1): "node-1"
        }
        assert await one.forget("in-zed") == 0
    finally:
        await probe.delete(*[k async for k in probe.scan_iter(match=prefix + ":*")] or ["none"])
        await probe.aclose()
        await one.stop()
        await two.stop()


async def test_every_store_outside_the_database_is_registered_for_erasure(
    tmp_path: Path,
) -> None:
    from baat.privacy.inventory import SERVER_ENTRIES
    from baat.server.app import create_app
    from baat.server.config import ServerConfig

    app = create_app(ServerConfig(data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        erasure = app.state.privacy.erasure
        covered = {e for s in erasure.stores for e in s.entries}
        names = erasure.names()
    outside = {e.id for e in SERVER_ENTRIES if e.storage in ("memory", "redis") and e.subjects}
    assert outside <= covered, f"not erased: {sorted(outside - covered)}"
    assert names == [
        "attachments", "live sessions", "router memory", "presence", "last-seen cache",
        "database",
    ]  # fmt: skip


async def test_a_node_the_erasure_did_not_reach_saves_nothing_of_the_account() -> None:
    from sqlalchemy import delete

    from baat.server.storage.schema import accounts, devices

    store = await memory_store()
    for name in ("alice", "bob"):
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    router = Router(store, ack_grace=0.01)
    await router.start()
    results: list[SendResult] = []
    for sender, to in (("alice", "bob"), ("bob", "alice")):
        await router.accept_send(
            (sender, 1), f"from-{sender}", [OutgoingEnvelope(to, 1, b"x")], results.append
        )
        await router.flush_now()  # one user of the in-memory database at a time
    # Alice is erased elsewhere and this node never heard of it (the bus was down).
    async with store.engine.begin() as conn:
        await conn.execute(delete(devices).where(devices.c.account_id == "alice"))
        await conn.execute(delete(accounts).where(accounts.c.account_id == "alice"))
    await router.stop()
    assert [r[:3] for r in await store.load_recent_sends(0)] == [("bob", 1, "from-bob")]
    await store.close()
