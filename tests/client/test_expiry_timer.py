"""The expiry timer of a long-running client: disappearing messages go when they are due,
without a sync, on a virtual clock the tests move (docs/GROUPS.md §5)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from baat.client.expiry import MAX_NAP_S
from baat.client.features import timer_key
from baat.client.sdk import Client
from baat.client.store import Contact, ProfileInfo, Store
from baat.crypto import IdentityKeyPair

PASS = "correct horse battery staple"
START = 1_700_000_000_000
BOB, CAROL = "acct-bob", "acct-carol"


class VirtualTime:
    """``Client.clock`` and ``ExpiryTimer.sleep`` on one time line that only ``advance``
    moves: a sleep ends once the clock has reached its end."""

    def __init__(self, start: int) -> None:
        self.now = start
        self.naps: list[float] = []
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        entry = (self.now + math.ceil(seconds * 1000), asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> list[float]:
        """The lengths (s) of the naps under way."""
        return [(end - self.now) / 1000 for end, fut in self._sleepers if not fut.done()]

    def advance(self, ms: int) -> None:
        self.now += ms
        for end, fut in self._sleepers:
            if end <= self.now and not fut.done():
                fut.set_result(None)


async def settle(ok: Callable[[], bool] | None = None, turns: int = 200) -> None:
    """Let the timer task run until ``ok()`` holds; with no condition, let it run a while
    (for checks that nothing happens)."""
    for _ in range(turns):
        if ok is not None and ok():
            return
        await asyncio.sleep(0)
    assert ok is None or ok(), "the timer did not get there"


def planned(client: Client, vt: VirtualTime, due: int, nap: float) -> Callable[[], bool]:
    """The timer waits for ``due`` and has started its nap of ``nap`` seconds."""
    return lambda: client.expiry.next_due == due and vt.sleeping == [nap]


def offline_client(root: Path, vt: VirtualTime | None = None) -> Client:
    """A profile with two contacts, never connected: everything here is local."""
    store = Store.create(root / "alice", PASS)
    identity = IdentityKeyPair.generate()
    store.save_identity(identity.to_bytes(), {"token": "unused"})
    store.set_info(ProfileInfo("http://127.0.0.1:9", "alice", "acct-alice", 1))
    with store.transaction() as tx:
        store.put_contact(tx, Contact(BOB, "bob", b"b" * 32))
        store.put_contact(tx, Contact(CAROL, "carol", b"c" * 32))
    client = Client(store, identity, {"token": "unused"})
    if vt is not None:
        client.clock = vt
        client.expiry.sleep = vt.sleep
    return client


def set_timer(client: Client, chat: str, seconds: int) -> None:
    with client.store.transaction() as tx:
        client.store.put_setting(tx, timer_key(chat), seconds)


def ids(client: Client) -> set[str]:
    return {m.message_id for m in client.store.messages()}


async def test_a_message_expires_on_time_without_sync(tmp_path: Path) -> None:
    vt = VirtualTime(START)
    client = offline_client(tmp_path, vt)
    gone: list[tuple[str, list[str]]] = []

    def broken(chat: str, message_ids: list[str]) -> None:
        raise RuntimeError("a view that failed to refresh")

    client.expiry_listeners += [broken, lambda chat, message_ids: gone.append((chat, message_ids))]
    try:
        client.expiry.start()
        await settle()
        assert client.expiry.next_due is None and vt.naps == []  # nothing to wait for
        set_timer(client, BOB, 60)
        mid = await client.send_text("bob", "this will vanish")
        kept = await client.send_text("carol", "no timer here")
        await settle(planned(client, vt, START + 60_000, 60.0))
        vt.advance(59_999)
        await settle()
        assert ids(client) == {mid, kept} and gone == []
        vt.advance(1)
        await settle(lambda: bool(gone))
        # The failing listener did not keep the other one from hearing of it.
        assert gone == [(BOB, [mid])]
        assert ids(client) == {kept}
        assert client.expiry.next_due is None
    finally:
        await client.close()
    assert not client.expiry.running


async def test_a_shorter_timer_wakes_the_task_and_a_longer_one_does_not(tmp_path: Path) -> None:
    vt = VirtualTime(START)
    client = offline_client(tmp_path, vt)
    gone: list[tuple[str, list[str]]] = []
    client.expiry_listeners.append(lambda chat, message_ids: gone.append((chat, message_ids)))
    try:
        client.expiry.start()
        set_timer(client, BOB, 120)
        first = await client.send_text("bob", "two minutes")
        await settle(planned(client, vt, START + 120_000, 120.0))
        vt.advance(1_000)
        set_timer(client, CAROL, 5)
        short = await client.send_text("carol", "five seconds")
        # Planned again for the shorter timer, at once: no wait for the two minutes.
        await settle(planned(client, vt, START + 6_000, 5.0))
        naps = len(vt.naps)
        later = await client.send_text("bob", "also two minutes")
        await settle()
        assert len(vt.naps) == naps and client.expiry.next_due == START + 6_000
        vt.advance(5_000)
        await settle(lambda: bool(gone))
        assert gone == [(CAROL, [short])]
        assert ids(client) == {first, later}
        await settle(planned(client, vt, START + 120_000, 114.0))
        vt.advance(115_000)
        await settle(lambda: len(gone) == 2)
        assert gone[1][0] == BOB and sorted(gone[1][1]) == sorted([first, later])
        assert ids(client) == set()
    finally:
        await client.close()


async def test_a_long_timer_is_waited_for_in_bounded_naps(tmp_path: Path) -> None:
    # asyncio waits on the monotonic clock, which stands still while a machine sleeps:
    # the timer reads the wall clock again at least every MAX_NAP_S.
    vt = VirtualTime(START)
    client = offline_client(tmp_path, vt)
    try:
        client.expiry.start()
        set_timer(client, BOB, 86_400)
        mid = await client.send_text("bob", "a day")
        await settle(lambda: vt.naps == [MAX_NAP_S])
        vt.advance(86_400_000)  # a suspended laptop wakes up a day later
        await settle(lambda: mid not in ids(client))
        assert vt.naps == [MAX_NAP_S]
    finally:
        await client.close()


async def test_with_the_real_clock_and_sleep(tmp_path: Path) -> None:
    client = offline_client(tmp_path)
    expired = asyncio.Event()
    client.expiry_listeners.append(lambda chat, message_ids: expired.set())
    try:
        client.expiry.start()
        set_timer(client, BOB, 1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        mid = await client.send_text("bob", "one second")
        await asyncio.wait_for(expired.wait(), 10)
        assert loop.time() - began >= 0.9
        assert mid not in ids(client)
    finally:
        await client.close()


async def test_close_ends_the_task_while_it_sleeps(tmp_path: Path) -> None:
    vt = VirtualTime(START)
    client = offline_client(tmp_path, vt)
    set_timer(client, BOB, 60)
    await client.send_text("bob", "pending")
    client.expiry.start()
    client.expiry.start()  # once is enough; a second start changes nothing
    await settle(lambda: len(vt.naps) == 1)
    await client.close()
    assert not client.expiry.running
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await client.expiry.stop()  # stopping again is harmless


@pytest.mark.parametrize("stored_first", [True, False])
async def test_expire_by_hand_tells_the_listeners_too(tmp_path: Path, stored_first: bool) -> None:
    vt = VirtualTime(START)
    client = offline_client(tmp_path, vt)
    gone: list[tuple[str, list[str]]] = []
    client.expiry_listeners.append(lambda chat, message_ids: gone.append((chat, message_ids)))
    try:
        set_timer(client, BOB, 10)
        mid = await client.send_text("bob", "ten seconds") if stored_first else None
        vt.advance(10_000)
        assert client.features.expire() == (1 if stored_first else 0)
        assert gone == ([(BOB, [mid])] if stored_first else [])
    finally:
        await client.close()
