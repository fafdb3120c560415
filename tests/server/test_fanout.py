"""The fan-out hold in the router (``baat.server.fanout``), on the real store (in-memory SQLite)."""

from __future__ import annotations

import asyncio
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from baat.proto import Deliver, OutgoingEnvelope, QueueDrained, SendResult, decode_server
from baat.server.delivery import Router
from baat.server.routed import DeviceKey
from baat.server.storage.base import Account, Device
from baat.server.storage.sql import SqlStore
from baat.testing import memory_store

BOB: DeviceKey = ("bob", 1)
CAROL: DeviceKey = ("carol", 1)
MEMBERS = [f"m{i}" for i in range(8)]


class Outlet:
    def __init__(self, key: DeviceKey) -> None:
        self.key = key
        self.frames: list[object] = []

    def push(self, data: bytes) -> None:
        self.frames.append(decode_server(data))

    async def wait_writable(self) -> None:
        return None

    def close_superseded(self) -> None:
        pass

    def close_removed(self) -> None:
        pass

    def delivered(self) -> list[Deliver]:
        return [f for f in self.frames if isinstance(f, Deliver)]


async def make_router(grace: float = 0.005, hold: float = 1.0, path: str = "") -> Router:
    # A file gets the server's own pool (one connection, used in turn); the in-memory
    # store shares one connection between concurrent readers and the writer.
    store = await SqlStore.open(f"sqlite:///{path}") if path else await memory_store()
    for name in ("alice", "bob", "carol", *MEMBERS):
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    router = Router(store, ack_grace=grace, fanout_hold=hold)
    await router.start()
    return router


async def finish(router: Router) -> None:
    await router.stop()
    await router.store.close()


async def fan_out(router: Router, mid: str, to: list[str], results: list[SendResult]) -> None:
    envs = [OutgoingEnvelope(a, 1, mid.encode()) for a in to]
    await router.accept_send(("alice", 1), mid, envs, results.append)


async def test_members_acknowledging_late_cost_no_write() -> None:
    router = await make_router(grace=0.005, hold=1.0)
    outlets = {m: Outlet((m, 1)) for m in MEMBERS}
    for o in outlets.values():
        await router.attach(o)
    results: list[SendResult] = []
    await fan_out(router, "g1", MEMBERS, results)
    await asyncio.sleep(0.05)  # ten times the grace: the old rule would have stored all
    assert results == []  # no SendResult before every member acknowledged
    for m, o in outlets.items():
        router.ack((m, 1), [d.guid for d in o.delivered()])
    assert [r.status for r in results[0].results] == ["delivered"] * len(MEMBERS)
    await router.flush_now()
    assert router.stats.stored == 0
    for m in MEMBERS:
        assert await router.store.pending(m, 1) == []
    await finish(router)


async def test_the_hold_is_bounded_then_everything_is_committed_together() -> None:
    router = await make_router(grace=0.005, hold=0.1)
    outlets = {m: Outlet((m, 1)) for m in MEMBERS}
    for o in outlets.values():
        await router.attach(o)
    results: list[SendResult] = []
    await fan_out(router, "g1", MEMBERS, results)
    router.ack((MEMBERS[0], 1), [outlets[MEMBERS[0]].delivered()[0].guid])
    await asyncio.sleep(0.05)
    assert results == []
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    statuses = [r.status for r in results[0].results]
    assert statuses == ["delivered"] + ["stored"] * (len(MEMBERS) - 1)
    flushes = router.stats.flushes
    assert flushes == 1  # one commit for the whole rest of the fan-out
    for m in MEMBERS[1:]:
        assert len(await router.store.pending(m, 1)) == 1
    await finish(router)


async def test_offline_members_are_stored_at_once_online_ones_held() -> None:
    router = await make_router(grace=0.005, hold=1.0)
    bob = Outlet(BOB)
    await router.attach(bob)  # carol is offline
    results: list[SendResult] = []
    await fan_out(router, "g1", ["bob", "carol"], results)
    await asyncio.sleep(0.05)
    assert results == [] and len(await router.store.pending("carol", 1)) == 1
    router.ack(BOB, [bob.delivered()[0].guid])
    assert {(r.recipient_account, r.status) for r in results[0].results} == {
        ("bob", "delivered"),
        ("carol", "stored"),
    }
    assert await router.store.pending("bob", 1) == []
    await finish(router)


async def test_a_fan_out_over_the_budget_gets_the_ordinary_grace() -> None:
    router = await make_router(grace=0.005, hold=1.0)
    router._hold.budget = 10  # smaller than one fan-out
    outlets = [Outlet((m, 1)) for m in MEMBERS[:2]]
    for o in outlets:
        await router.attach(o)
    results: list[SendResult] = []
    await fan_out(router, "g1", MEMBERS[:2], results)
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    assert [r.status for r in results[0].results] == ["stored", "stored"]
    await finish(router)


async def test_a_device_leaving_commits_its_held_envelopes() -> None:
    router = await make_router(grace=0.005, hold=5.0)
    bob, carol = Outlet(BOB), Outlet(CAROL)
    await router.attach(bob)
    await router.attach(carol)
    results: list[SendResult] = []
    await fan_out(router, "g1", ["bob", "carol"], results)
    router.detach(bob)
    for _ in range(100):  # the writer runs by itself (no flush_now): the leave forced it
        if router.stats.stored:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert router.stats.stored == 1  # bob's only: carol's stays held
    assert len(await router.store.pending("bob", 1)) == 1
    router.ack(CAROL, [carol.delivered()[0].guid])
    assert {r.status for r in results[0].results} == {"stored", "delivered"}
    await finish(router)


async def test_shutdown_commits_what_is_held() -> None:
    router = await make_router(grace=0.005, hold=60.0)
    bob, carol = Outlet(BOB), Outlet(CAROL)
    await router.attach(bob)
    await router.attach(carol)
    results: list[SendResult] = []
    await fan_out(router, "g1", ["bob", "carol"], results)
    store = router.store
    await router.stop()
    assert [r.status for r in results[0].results] == ["stored", "stored"]
    assert len(await store.pending("bob", 1)) == 1
    assert len(await store.pending("carol", 1)) == 1
    await store.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(["send", "group", "group", "connect", "disconnect", "ack", "tick"]),
        min_size=1,
        max_size=40,
    )
)
def test_one_device_sees_fan_outs_and_direct_sends_once_and_in_order(ops: list[str]) -> None:
    """Held fan-out envelopes and ordinary ones for the same device, under reconnects and
    timer ticks: every message exactly once, in the order sent."""

    async def run(path: str) -> None:
        router = await make_router(grace=0.001, hold=0.004, path=path)
        carol = Outlet(CAROL)
        await router.attach(carol)
        results: list[SendResult] = []
        seen: list[str] = []
        outlet: Outlet | None = None
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
            if op in ("send", "group"):
                to = ["bob"] if op == "send" else ["bob", "carol"]
                await fan_out(router, f"m{sent:03d}", to, results)
                sent += 1
            elif op == "connect" and outlet is None:
                outlet, consumed = Outlet(BOB), 0
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
        final = Outlet(BOB)
        await router.attach(final)
        outlet, consumed = final, 0
        take_new()
        assert isinstance(final.frames[-1], QueueDrained)
        assert seen == [f"m{n:03d}" for n in range(sent)]
        await router.flush_now()
        router.ack(CAROL, [d.guid for d in carol.delivered()])
        await asyncio.sleep(0.01)
        assert len(results) == sent
        await finish(router)

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"{tmp}/baat.sqlite3"))
