"""Retry requests and prekey rotation through a real ``baat serve`` with two SDK clients
(docs/CRYPTO.md §14 and §15)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from baat.client import schema as s
from baat.client.prekeys import DAY_MS, GRACE_MS, ROTATE_AFTER_MS
from baat.client.retries import MAX_RETRIES
from baat.client.sdk import Client
from baat.crypto import (
    PREKEY_KIND_CURVE_SIGNED,
    PREKEY_KIND_KEM_LAST_RESORT,
    PrekeyBundle,
    SessionRecord,
    add_session,
    initiate_session,
)
from baat.proto import DeviceBundleRecord
from support.cli import PASS
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def two(server: ServerProcess, tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    tag = secrets.token_hex(3)
    a = await Client.register(tmp_path / "a", PASS, server.url, f"alice{tag}")
    b = await Client.register(tmp_path / "b", PASS, server.url, f"bob{tag}")
    await a.connect()
    await b.connect()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _texts(c: Client, chat: str) -> list[str]:
    return [m.body.get("text", "") for m in c.store.messages(chat) if m.direction == "in"]


def _status(c: Client, message_id: str) -> str:
    with c.store.transaction() as tx:
        return c.store.find_messages(tx, message_id)[0].status


async def _talk(a: Client, b: Client) -> None:
    await a.send_text(b.info.username, "hello")
    await _until(lambda: _texts(b, a.info.account_id) == ["hello"], "hello")
    await b.send_text(a.info.username, "hi")
    await _until(lambda: "hi" in _texts(a, b.info.account_id), "hi")


async def test_lost_session_is_recovered_by_a_retry_and_read_once(
    two: tuple[Client, Client],
) -> None:
    a, b = two
    await _talk(a, b)
    # Bob loses his sessions with Alice (a restored backup, a bug): her next message
    # cannot be decrypted.
    with b.store.transaction() as tx:
        tx.execute(delete(s.sessions).where(s.sessions.c.account_id == a.info.account_id))
    mid = await a.send_text(b.info.username, "after the loss")
    await _until(lambda: "after the loss" in _texts(b, a.info.account_id), "the re-send")
    assert [i.kind for i in b.incidents] == ["undecryptable"]
    assert mid in b.incidents[0].detail
    await asyncio.sleep(1.0)  # nothing else arrives: exactly one copy
    assert _texts(b, a.info.account_id) == ["hello", "after the loss"]
    assert _status(a, mid) != "failed"
    # Alice got exactly one retry request for it and sent it once more.
    with a.store.transaction() as tx:
        attempts = tx.execute(
            select(s.resend.c.attempts).where(s.resend.c.message_id == mid)
        ).scalar_one()
    assert attempts == 1
    # The conversation goes on both ways on the new sessions.
    await b.send_text(a.info.username, "got it")
    await _until(lambda: "got it" in _texts(a, b.info.account_id), "the answer")
    assert not [i for i in a.incidents if i.kind == "undecryptable"]


async def test_a_message_that_never_decrypts_ends_not_delivered(
    two: tuple[Client, Client],
) -> None:
    a, b = two
    await _talk(a, b)
    statuses: list[tuple[str, str]] = []
    a.status_listeners.append(lambda m, st: statuses.append((m, st)))
    # Bob can read nothing new from Alice: no session, and every private prekey is gone,
    # so each fresh session Alice starts fails too.
    with b.store.transaction() as tx:
        tx.execute(delete(s.sessions).where(s.sessions.c.account_id == a.info.account_id))
        tx.execute(delete(s.prekeys))
    mid = await a.send_text(b.info.username, "doomed")
    await _until(lambda: _status(a, mid) == "failed", "the failure", timeout=90)
    with a.store.transaction() as tx:
        m = a.store.find_messages(tx, mid)[0]
    assert "not delivered" in m.body["error"]
    assert (mid, "failed") in statuses
    assert [i.kind for i in a.incidents] == ["undeliverable"]
    undecryptable = [i for i in b.incidents if i.kind == "undecryptable"]
    assert len(undecryptable) == MAX_RETRIES + 1  # the first send and every re-send
    assert "doomed" not in _texts(b, a.info.account_id)
    # Never shown delivered or read while Bob could not read it.
    assert not [st for m_id, st in statuses if m_id == mid and st in ("delivered", "read")]
    assert _status(a, mid) == "failed"


def _bundle(dev: DeviceBundleRecord) -> PrekeyBundle:
    assert dev.signed_prekey is not None and dev.kem_last_resort is not None
    return PrekeyBundle.from_parts(
        dev.identity_key,
        dev.identity_dh_key,
        dev.identity_dh_sig,
        dev.signed_prekey,
        dev.kem_last_resort,
        dev.one_time_curve,
        dev.one_time_kem,
    )


async def test_rotation_keeps_old_signed_prekeys_for_the_grace_period(
    two: tuple[Client, Client],
) -> None:
    a, b = two
    await _talk(a, b)
    ta = a._need()
    # Two bundles of Bob's current keys, as a peer that fetched them before a rotation.
    old = [(await ta.fetch_bundle(b.info.account_id, 1)).devices[0] for _ in range(2)]
    assert old[0].signed_prekey is not None and old[0].signed_prekey.key_id == 1
    start = b.clock()
    b.clock = lambda: start + ROTATE_AFTER_MS + DAY_MS  # a week and a day later
    new_ids = await b.prekeys.rotate_if_due()
    assert len(new_ids) == 2
    fresh = (await ta.fetch_bundle(b.info.account_id, 1)).devices[0]
    assert fresh.signed_prekey is not None and fresh.kem_last_resort is not None
    assert {fresh.signed_prekey.key_id, fresh.kem_last_resort.key_id} == set(new_ids)
    with b.store.transaction() as tx:
        assert b.store.get_prekey(tx, PREKEY_KIND_CURVE_SIGNED, 1) is not None

    def use_bundle(dev: DeviceBundleRecord) -> None:
        with a.store.transaction() as tx:
            blob = a.store.session(tx, b.info.account_id, 1)
            old_record = None if blob is None else SessionRecord.from_bytes(blob)
            state = initiate_session(a.identity, _bundle(dev), a.clock() // 1000)
            record = add_session(old_record, state)
            a.store.put_session(tx, b.info.account_id, 1, record.to_bytes())

    # During the grace period a first message built on the old bundle decrypts.
    use_bundle(old[0])
    await a.send_text(b.info.username, "to the old keys")
    await _until(lambda: "to the old keys" in _texts(b, a.info.account_id), "old-key message")
    assert not b.incidents
    # After it, the old private halves are erased: the same kind of message fails cleanly
    # (an incident, no crash), and the retry path delivers it on the new keys.
    b.clock = lambda: start + ROTATE_AFTER_MS + DAY_MS + GRACE_MS + DAY_MS
    await b.prekeys.rotate_if_due()
    with b.store.transaction() as tx:
        assert b.store.get_prekey(tx, PREKEY_KIND_CURVE_SIGNED, 1) is None
        assert b.store.get_prekey(tx, PREKEY_KIND_KEM_LAST_RESORT, 1) is None
    use_bundle(old[1])
    await a.send_text(b.info.username, "too late for the old keys")
    await _until(lambda: "too late for the old keys" in _texts(b, a.info.account_id), "the re-send")
    assert [i.kind for i in b.incidents] == ["undecryptable"]
    assert "prekey" in b.incidents[0].detail
