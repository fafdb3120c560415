"""The delivery router in-process, on the real store over in-memory SQLite."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from baat.proto import Deliver, OutgoingEnvelope, QueueDrained, SendResult, decode_server
from baat.server.delivery import Router
from baat.server.routed import DeviceKey
from baat.server.storage.base import Account, Device, StorageUnavailable
from baat.testing import memory_store

BOB: DeviceKey = ("bob", 1)


class FakeOutlet:
    def __init__(self, key: DeviceKey) -> None:
        self.key = key
        self.frames: list[object] = []
        self.superseded = False
        self.removed = False

    def push(self, data: bytes) -> None:
        self.frames.append(decode_server(data))

    async def wait_writable(self) -> None:
        return None

    def close_superseded(self) -> None:
        self.superseded = True

    def close_removed(self) -> None:
        self.removed = True

    def close_suspended(self) -> None:
        self.suspended = True

    def delivered(self) -> list[Deliver]:
        return [f for f in self.frames if isinstance(f, Deliver)]


async def make_router(grace: float = 0.02) -> Router:
    store = await memory_store()
    for name in ("alice", "bob"):
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    router = Router(store, ack_grace=grace)
    await router.start()
    return router


async def finish(router: Router) -> None:
    await router.stop()
    await router.store.close()


async def send(router: Router, mid: str, results: list[SendResult]) -> None:
    await router.accept_send(
        ("alice", 1), mid, [OutgoingEnvelope("bob", 1, mid.encode())], results.append
    )


async def test_acknowledged_within_grace_never_touches_the_disk() -> None:
    router = await make_router(grace=0.05)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    results: list[SendResult] = []
    await send(router, "m1", results)
    router.ack(BOB, [bob.delivered()[0].guid])
    await asyncio.sleep(0.1)
    assert results[0].results[0].status == "delivered"
    assert router.stats.stored == 0 and router.stats.delivered_unstored == 1
    assert await router.store.pending("bob", 1) == []
    await finish(router)


async def test_unacknowledged_is_stored_then_deleted_on_ack() -> None:
    router = await make_router(grace=0.01)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    results: list[SendResult] = []
    await send(router, "m1", results)
    await asyncio.sleep(0.1)
    assert results[0].results[0].status == "stored"
    assert len(await router.store.pending("bob", 1)) == 1
    router.ack(BOB, [bob.delivered()[0].guid])
    await router.flush_now()
    assert await router.store.pending("bob", 1) == []
    await finish(router)


async def test_a_device_cannot_acknowledge_for_another() -> None:
    router = await make_router(grace=0.01)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    results: list[SendResult] = []
    await send(router, "m1", results)
    router.ack(("alice", 1), [bob.delivered()[0].guid])
    await asyncio.sleep(0.1)
    assert results[0].results[0].status == "stored"
    assert len(await router.store.pending("bob", 1)) == 1
    await finish(router)


async def test_new_connection_supersedes_the_old() -> None:
    router = await make_router()
    first, second = FakeOutlet(BOB), FakeOutlet(BOB)
    await router.attach(first)
    await router.attach(second)
    assert first.superseded and router.online[BOB] is second
    await finish(router)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(["send", "send", "send", "connect", "disconnect", "ack", "tick"]),
        min_size=1,
        max_size=40,
    )
)
def test_every_message_arrives_once_and_in_order(ops: list[str]) -> None:
    """Whatever the interleaving of sends, acks, reconnects and timer ticks, the device
    ends up with every message exactly once, in the order they were sent."""

    async def run() -> None:
        router = await make_router(grace=0.001)
        results: list[SendResult] = []
        seen: list[str] = []
        outlet: FakeOutlet | None = None
        consumed = 0
        sent = 0

        def take_new() -> None:
            nonlocal consumed
            assert outlet is not None
            for frame in outlet.frames[consumed:]:
                if isinstance(frame, Deliver) and frame.message_id not in seen:
                    seen.append(frame.message_id)
            consumed = len(outlet.frames)

        for op in ops:
            if op == "send":
                await send(router, f"m{sent:03d}", results)
                sent += 1
            elif op == "connect" and outlet is None:
                outlet, consumed = FakeOutlet(BOB), 0
                await router.attach(outlet)
            elif op == "disconnect" and outlet is not None:
                take_new()
                router.detach(outlet)
                outlet = None
            elif op == "ack" and outlet is not None:
                take_new()
                router.ack(BOB, [f.guid for f in outlet.delivered()])
            elif op == "tick":
                await asyncio.sleep(0.002)
        if outlet is not None:
            take_new()
            router.detach(outlet)
        final = FakeOutlet(BOB)
        await router.attach(final)
        outlet, consumed = final, 0
        take_new()
        assert isinstance(final.frames[-1], QueueDrained)
        assert seen == [f"m{n:03d}" for n in range(sent)]
        await router.flush_now()
        await asyncio.sleep(0.01)
        assert len(results) == sent
        await finish(router)

    asyncio.run(run())


async def test_cross_node_delivery_through_the_bus() -> None:
    from baat.server.bus import LocalBus, LocalHub

    hub = LocalHub()
    store = await memory_store()
    for name in ("alice", "bob"):
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    node_a = Router(store, ack_grace=0.01, bus=LocalBus("a", hub))
    node_b = Router(store, ack_grace=0.01, bus=LocalBus("b", hub))
    await node_a.start()
    await node_b.start()
    bob = FakeOutlet(BOB)
    await node_b.attach(bob)
    results: list[SendResult] = []
    for n in range(5):
        await send(node_a, f"m{n}", results)
    for _ in range(100):
        if len(bob.delivered()) == 5:
            break
        await asyncio.sleep(0.01)
    assert [d.message_id for d in bob.delivered()] == [f"m{n}" for n in range(5)]
    assert [r.results[0].status for r in results] == ["stored"] * 5
    node_b.ack(BOB, [d.guid for d in bob.delivered()])
    await node_b.flush_now()
    assert await store.pending("bob", 1) == []
    # Bob moves to node a: node b's connection is told to close.
    moved = FakeOutlet(BOB)
    await node_a.attach(moved)
    await asyncio.sleep(0.05)
    assert bob.superseded
    await node_a.stop()
    await node_b.stop()
    await store.close()


async def test_acknowledged_envelopes_leave_memory_while_the_writer_waits() -> None:
    """A slow commit must not keep every envelope pushed meanwhile alive (their content,
    waiter and callback): acknowledged ones leave at once, late ones are still stored."""
    router = await make_router(grace=0.001)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    gate = asyncio.Event()
    real_write = router.store.write_batch

    async def stalled_write(*args: object, **kwargs: object) -> object:
        await gate.wait()
        return await real_write(*args, **kwargs)  # type: ignore[arg-type]

    router.store.write_batch = stalled_write  # type: ignore[method-assign,assignment]
    results: list[SendResult] = []
    await send(router, "late", results)  # never acknowledged in time: must be stored
    await asyncio.sleep(0.01)  # past the grace: the writer takes it and stalls
    for i in range(2000):
        await send(router, f"m{i}", results)
        router.ack(BOB, [bob.delivered()[-1].guid])
        if i % 100 == 0:
            await asyncio.sleep(0.002)  # some pass their grace before their ack
    held = len(router._pushed) + len(router._due)
    assert held < 50, f"{held} entries kept while the writer waits"
    gate.set()
    await router.flush_now()
    await asyncio.sleep(0.05)
    by_id = {r.message_id: r.results[0].status for r in results}
    assert by_id["late"] == "stored"
    assert sum(1 for s in by_id.values() if s == "delivered") >= 1990
    assert len(by_id) == 2001
    await finish(router)


async def test_order_per_device_holds_across_a_failed_commit() -> None:
    """A commit that fails keeps its envelopes in memory and retries them; envelopes that
    passed their grace meanwhile must not be stored ahead of them (the device would
    receive its queue out of order)."""
    router = await make_router(grace=0.001)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    real_write = router.store.write_batch
    failures = [StorageUnavailable("database restarting")]

    async def flaky_write(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real_write(*args, **kwargs)  # type: ignore[arg-type]

    router.store.write_batch = flaky_write  # type: ignore[method-assign,assignment]
    results: list[SendResult] = []
    for i in range(5):  # never acknowledged: the first pass takes them and fails
        await send(router, f"m{i}", results)
    await asyncio.sleep(0.05)
    assert not failures and router.storage_error is not None
    router.storage_error = None  # the retry is due: later sends are accepted meanwhile
    for i in range(5, 10):
        await send(router, f"m{i}", results)
        await asyncio.sleep(0.003)  # past the grace: due while the retry waits
    await asyncio.sleep(0.3)
    await router.flush_now()
    queued = await router.store.pending("bob", 1)
    assert [q.message_id for q in queued] == [f"m{i}" for i in range(10)]
    await finish(router)


async def test_an_ack_during_a_failed_commit_settles_the_send() -> None:
    """The device acknowledges while the commit holding its envelope fails: the sender is
    told "delivered", and nothing is stored for it."""
    router = await make_router(grace=0.001)
    bob = FakeOutlet(BOB)
    await router.attach(bob)
    real_write = router.store.write_batch
    gate = asyncio.Event()
    calls: list[int] = []

    async def failing_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            await gate.wait()
            raise StorageUnavailable("database restarting")
        return await real_write(*args, **kwargs)  # type: ignore[arg-type]

    router.store.write_batch = failing_once  # type: ignore[method-assign,assignment]
    results: list[SendResult] = []
    await send(router, "late ack", results)
    await asyncio.sleep(0.02)  # past the grace: the writer's commit holds it
    assert calls and not results
    router.ack(BOB, [bob.delivered()[0].guid])
    gate.set()
    await asyncio.sleep(0.3)  # the failed pass, its pause, the next pass
    await router.flush_now()
    assert [r.results[0].status for r in results] == ["delivered"]
    assert await router.store.pending("bob", 1) == []
    assert router.queue_depth() == (0, 0)
    await finish(router)
