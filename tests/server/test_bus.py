"""One suite for both buses: in-process and Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from baat.server.bus import Bus, CatchUp, Forward, Kick, LocalBus, LocalHub, NodeMessage
from baat.server.bus.messages import decode_batch, encode_batch
from baat.server.bus.redis import RedisBus

REDIS_URL = os.environ.get("BAAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


BusFactory = Callable[[str], Bus]


@pytest.fixture(params=["local", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    made: list[Bus] = []
    hub = LocalHub()
    if request.param == "redis" and not _redis_up():
        pytest.skip(f"no Redis at {REDIS_URL}")

    def factory(node: str) -> Bus:
        bus: Bus = LocalBus(node, hub) if request.param == "local" else RedisBus(REDIS_URL, node)
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.stop()


def fwd(seq: int) -> Forward:
    return Forward(seq, os.urandom(16), "bob", 1, "alice", 1, f"m{seq}", b"c", 5)


async def started(bus: Bus) -> list[list[NodeMessage]]:
    got: list[list[NodeMessage]] = []

    async def on_messages(batch: list[NodeMessage]) -> None:
        got.append(batch)

    async def on_recovered() -> None:
        return None

    await bus.start(on_messages, on_recovered)
    for _ in range(100):
        if bus.healthy:
            break
        await asyncio.sleep(0.02)
    return got


async def test_presence_claim_locate_release(make_bus: BusFactory) -> None:
    tag = uuid.uuid4().hex
    a, b = make_bus(f"a-{tag}"), make_bus(f"b-{tag}")
    await started(a)
    await started(b)
    dev = (f"acct-{tag}", 1)
    assert await a.claim(dev) is None
    assert await b.locate([dev, (f"none-{tag}", 1)]) == {dev: a.node_id}
    # The device moves to b: a's release must not remove b's record.
    assert await b.claim(dev) == a.node_id
    await a.release(dev)
    assert await a.locate([dev]) == {dev: b.node_id}
    await b.release(dev)
    assert await a.locate([dev]) == {}


async def test_publish_reaches_only_the_named_node(make_bus: BusFactory) -> None:
    tag = uuid.uuid4().hex
    a, b, c = make_bus(f"a-{tag}"), make_bus(f"b-{tag}"), make_bus(f"c-{tag}")
    await started(a)
    got_b = await started(b)
    got_c = await started(c)
    batch: list[NodeMessage] = [fwd(1), fwd(2), Kick("bob", 1, a.node_id), CatchUp(a.node_id)]
    await a.publish(b.node_id, batch)
    for _ in range(100):
        if got_b:
            break
        await asyncio.sleep(0.02)
    assert got_b == [batch]
    assert got_c == []


def test_codec_round_trip_and_rejects_garbage() -> None:
    batch: list[NodeMessage] = [fwd(7), Kick("a", 2, "n")]
    assert decode_batch(encode_batch(batch)) == batch
    import msgspec

    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_batch(b"\x93\x01\x02")


async def test_a_silent_node_stops_counting_as_present() -> None:
    """A crashed node refreshes nothing: its devices are not considered connected for long."""
    if not _redis_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    tag = uuid.uuid4().hex
    crashed = RedisBus(REDIS_URL, f"crashed-{tag}", presence_ttl=1)
    other = RedisBus(REDIS_URL, f"other-{tag}")
    try:
        dev = (f"acct-{tag}", 1)
        await crashed.claim(dev)
        assert await other.locate([dev]) == {dev: crashed.node_id}
        await asyncio.sleep(1.3)
        assert await other.locate([dev]) == {}
    finally:
        await crashed.stop()
        await other.stop()
