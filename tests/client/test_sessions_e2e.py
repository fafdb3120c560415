"""Crossed first messages through a real ``baat serve`` with two SDK clients, on SQLite and
PostgreSQL (docs/CRYPTO.md §13): every message decrypts on the other side exactly once and
both sides end up sending on the same session."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from baat.client.sdk import Client
from baat.crypto import SessionRecord
from support.cli import PASS
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    db = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    proc = ServerProcess(tmp_path / "server", db).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def two(any_server: ServerProcess, tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    tag = secrets.token_hex(3)  # PostgreSQL keeps accounts of earlier tests of the run
    a = await Client.register(tmp_path / "a", PASS, any_server.url, f"alice{tag}")
    b = await Client.register(tmp_path / "b", PASS, any_server.url, f"bob{tag}")
    await a.connect()
    await b.connect()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _queued_on_lock(c: Client) -> None:
    """Until a send of ``c`` waits for its store lock (held by the test)."""
    deadline = asyncio.get_running_loop().time() + 30
    while not getattr(c._store_lock, "_waiters", None):
        assert asyncio.get_running_loop().time() < deadline, "the send never started"
        await asyncio.sleep(0.01)


async def _collect(c: Client, want: int) -> list[str]:
    texts: list[str] = []
    deadline = asyncio.get_running_loop().time() + 60
    while len(texts) < want and asyncio.get_running_loop().time() < deadline:
        texts += [m.body.get("text", "") for m in await c.receive(wait=0.3)]
    await asyncio.sleep(0.5)
    texts += [m.body.get("text", "") for m in await c.receive()]
    return texts


def _active(c: Client, peer: Client) -> bytes:
    with c.store.transaction() as tx:
        blob = c.store.session(tx, peer.info.account_id, peer.info.device_id)
    assert blob is not None
    record = SessionRecord.from_bytes(blob)
    assert record.active is not None
    return record.active.base_key


def _sessions(c: Client, peer: Client) -> int:
    with c.store.transaction() as tx:
        blob = c.store.session(tx, peer.info.account_id, peer.info.device_id)
    assert blob is not None
    return len(list(SessionRecord.from_bytes(blob).sessions()))


@pytest.mark.parametrize("order", ["alice_first", "bob_first", "at_once"])
async def test_crossed_first_messages_then_forty_more(
    two: tuple[Client, Client], order: str
) -> None:
    a, b = two
    a_name, b_name = a.info.username, b.info.username
    # Each side's first send waits on its store lock, so that neither has read the other's
    # first message before starting its own session: the first messages cross.
    await a._store_lock.acquire()
    await b._store_lock.acquire()
    sa = asyncio.create_task(a.send_text(b_name, "a0"))
    sb = asyncio.create_task(b.send_text(a_name, "b0"))
    await _queued_on_lock(a)
    await _queued_on_lock(b)
    first, second = (a, b) if order != "bob_first" else (b, a)
    first._store_lock.release()
    if order != "at_once":
        await (sa if first is a else sb)
    second._store_lock.release()
    await asyncio.gather(sa, sb)
    assert await _collect(b, 1) == ["a0"]
    assert await _collect(a, 1) == ["b0"]
    assert _sessions(a, b) == 2 and _sessions(b, a) == 2, "the first messages did not cross"
    # One more message each way, then both send on the same session.
    await asyncio.gather(a.send_text(b_name, "a1"), b.send_text(a_name, "b1"))
    assert await _collect(b, 1) == ["a1"]
    assert await _collect(a, 1) == ["b1"]
    assert _active(a, b) == _active(b, a)
    # 20 each way in alternation, then 10 each way in bursts sent at the same time.
    for i in range(2, 12):
        await a.send_text(b_name, f"a{i}")
        await b.send_text(a_name, f"b{i}")
    await asyncio.gather(
        *(a.send_text(b_name, f"a{i}") for i in range(12, 22)),
        *(b.send_text(a_name, f"b{i}") for i in range(12, 22)),
    )
    got_b = await _collect(b, 20)
    got_a = await _collect(a, 20)
    assert sorted(got_b) == sorted(f"a{i}" for i in range(2, 22))
    assert sorted(got_a) == sorted(f"b{i}" for i in range(2, 22))
    assert not [i for i in a.incidents + b.incidents if i.kind == "undecryptable"]
    assert _active(a, b) == _active(b, a)
