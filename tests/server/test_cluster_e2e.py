"""Several real server processes over PostgreSQL and Redis; nodes and services fail."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from baat.client.transport import Transport, TransportError
from baat.proto import Ack, Deliver, Error, OutgoingEnvelope, QueueDrained, Send, SendResult
from support.devices import DeviceUnderTest, register
from support.server import ServerProcess
from support.services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def unique(name: str) -> str:
    """The database is shared by the tests of a run: give each its own users."""
    return name + os.urandom(3).hex()


REDIS = os.environ.get("BAAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def start_nodes(tmp: Path, db: str, bus: str, n: int) -> list[ServerProcess]:
    nodes = []
    for i in range(n):
        node = ServerProcess(
            tmp / f"n{i}",
            db,
            "--bus",
            bus,
            "--node-id",
            f"{tmp.name}-n{i}",
            "--registrations-per-minute",
            "1000",
        )
        nodes.append(node.start())
    return nodes


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[list[ServerProcess]]:
    _require_redis()
    nodes = start_nodes(tmp_path, pg_url, REDIS, 3)
    try:
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.kill()


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS}")


class Receiver:
    """Reads Deliver frames, acknowledges them and records their message ids."""

    def __init__(self, t: Transport) -> None:
        self.t = t
        self.ids: list[str] = []
        self.drained = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            frame = await self.t.next_frame()
            if frame is None:
                return
            if isinstance(frame, Deliver):
                self.ids.append(frame.message_id)
                try:
                    await self.t.send(Ack([frame.guid]))
                except TransportError:
                    return  # its node was killed: the test reconnects elsewhere
            elif isinstance(frame, QueueDrained):
                self.drained.set()

    async def wait_for(self, count: int, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while len(set(self.ids)) < count:
                await asyncio.sleep(0.02)


class Sender:
    """Sends numbered messages with a window and records what the server confirmed."""

    def __init__(self, t: Transport, to: DeviceUnderTest) -> None:
        self.t = t
        self.to = to
        self.confirmed: list[str] = []
        self.refused: list[str] = []
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.drained = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.t.next_frame()
            if frame is None:
                for fut in self.waiting.values():
                    if not fut.done():
                        fut.set_result(None)
                return
            if isinstance(frame, QueueDrained):
                self.drained.set()
            if isinstance(frame, SendResult):
                if frame.results[0].status in ("stored", "delivered"):
                    self.confirmed.append(frame.message_id)
                fut = self.waiting.pop(frame.message_id, None)
                if fut and not fut.done():
                    fut.set_result(None)
            elif isinstance(frame, Error) and frame.message_id:
                self.refused.append(frame.message_id)
                fut = self.waiting.pop(frame.message_id, None)
                if fut and not fut.done():
                    fut.set_result(None)

    async def send(self, mid: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[mid] = fut
        with contextlib.suppress(Exception):
            await self.t.send(Send(mid, [OutgoingEnvelope(self.to.account_id, 1, mid.encode())]))
        await asyncio.wait_for(fut, 30)

    async def run(self, prefix: str, count: int, window: int = 8) -> None:
        sem = asyncio.Semaphore(window)

        async def one(n: int) -> None:
            async with sem:
                if not self.t.closed.is_set():
                    await self.send(f"{prefix}{n:04d}")

        await asyncio.gather(*(one(n) for n in range(count)))


async def test_delivery_across_nodes_online_and_offline(cluster: list[ServerProcess]) -> None:
    n1, n2, n3 = cluster
    alice = await register(n1.url, unique("alice"))
    bob = await register(n2.url, unique("bob"))
    b = Receiver(await bob.connect(n2.url))
    await b.drained.wait()
    s = Sender(await alice.connect(n1.url), bob)
    await s.run("live", 20, window=4)
    await b.wait_for(20)
    assert b.ids == [f"live{n:04d}" for n in range(20)]  # in order, pushed through the bus
    await b.t.close()
    await s.run("away", 10, window=4)
    b = Receiver(await bob.connect(n3.url))
    await b.drained.wait()
    assert b.ids == [f"away{n:04d}" for n in range(10)]
    assert s.confirmed == [f"live{n:04d}" for n in range(20)] + [f"away{n:04d}" for n in range(10)]


@pytest.mark.parametrize("victim", ["recipient", "sender"])
async def test_kill_a_node_under_load_loses_no_confirmed_envelope(
    cluster: list[ServerProcess], victim: str
) -> None:
    n1, n2, n3 = cluster
    alice = await register(n1.url, unique("alice"))
    bob = await register(n2.url, unique("bob"))
    b = Receiver(await bob.connect(n2.url))
    await b.drained.wait()
    s = Sender(await alice.connect(n1.url), bob)
    load = asyncio.create_task(s.run("m", 400, window=8))
    while len(s.confirmed) < 120:
        await asyncio.sleep(0.01)
    (n2 if victim == "recipient" else n1).kill()
    await load
    # Everyone reconnects to the surviving node n3 and finishes there.
    with contextlib.suppress(Exception):
        await b.t.close()
    b2 = Receiver(await bob.connect(n3.url))
    await b2.drained.wait()
    await asyncio.sleep(0.5)
    received = set(b.ids) | set(b2.ids)
    missing = [m for m in s.confirmed if m not in received]
    assert not missing, f"{len(missing)} confirmed envelopes never arrived: {missing[:5]}"
    # After the reconnect, nothing comes twice.
    assert len(b2.ids) == len(set(b2.ids))
    assert len(s.confirmed) >= 120


async def test_redis_restart_delays_but_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    redis = PrivateRedis()
    redis.start()
    nodes = start_nodes(tmp_path, pg_url, redis.url, 2)
    try:
        n1, n2 = nodes
        alice = await register(n1.url, unique("alice"))
        bob = await register(n2.url, unique("bob"))
        b = Receiver(await bob.connect(n2.url))
        await b.drained.wait()
        s = Sender(await alice.connect(n1.url), bob)
        await s.run("before", 3)
        await b.wait_for(3)
        redis.stop()
        await s.run("during", 5)  # stored in PostgreSQL; the bus is down
        assert s.confirmed[-5:] == [f"during{n:04d}" for n in range(5)]
        redis.start()
        # The nodes reconnect by themselves and catch up, without the device reconnecting.
        await b.wait_for(8, timeout=20)
        assert b.ids == [f"before{n:04d}" for n in range(3)] + [f"during{n:04d}" for n in range(5)]
        await s.run("after", 2)
        await b.wait_for(10)
    finally:
        for node in nodes:
            node.kill()
        redis.stop()


async def test_postgres_outage_refuses_clearly_and_writes_nothing_half(tmp_path: Path) -> None:
    pg = PrivatePostgres()
    pg.start()
    node = ServerProcess(tmp_path / "n", pg.url, "--registrations-per-minute", "1000").start()
    try:
        alice = await register(node.url, unique("alice"))
        bob = await register(node.url, unique("bob"))
        s = Sender(await alice.connect(node.url), bob)
        # Connected and drained first: an outage while a device's queue is being read
        # closes that connection (retryable), which is another test's subject.
        await s.drained.wait()
        await s.run("ok", 1)
        pg.stop()
        first = asyncio.create_task(s.send("held0000"))  # accepted; waits in memory
        await asyncio.sleep(1.5)
        await s.send("refused0000")
        assert "refused0000" in s.refused  # a clear, retryable error
        pg.start()
        await asyncio.wait_for(first, 20)  # written once the database is back
        await s.send("refused0000")  # the retry goes through
        b = Receiver(await bob.connect(node.url))
        await b.drained.wait()
        assert b.ids == ["ok0000", "held0000", "refused0000"]
    finally:
        node.kill()
        pg.destroy()
