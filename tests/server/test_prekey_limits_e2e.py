"""One-time prekeys cannot be drained (server/bundles.py), through a real ``baat serve`` on
SQLite and PostgreSQL: the drain limit per requester, the low-prekey push with the client's
refill while connected, and the per-account cap."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from baat.client.sdk import Client
from baat.client.transport import TransportError
from baat.crypto import PREKEY_KIND_CURVE_ONE_TIME, PREKEY_KIND_KEM_ONE_TIME
from baat.proto import PrekeyRecord, PrekeysLow, UploadPrekeys
from baat.server.bundles import DRAIN_LIMIT, ONE_TIME_PREKEY_CAP
from support.cli import PASS
from support.devices import register
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


def _name(prefix: str) -> str:
    return prefix + secrets.token_hex(3)


async def _counts(c: Client) -> dict[int, int]:
    return (await c._need().upload_prekeys(UploadPrekeys(0, [], []))).counts


async def test_one_requester_cannot_drain_a_target(
    any_server: ServerProcess, tmp_path: Path
) -> None:
    target = await Client.register(tmp_path / "t", PASS, any_server.url, _name("target"))
    await target.connect()
    try:
        before = await _counts(target)
        mallory = await (await register(any_server.url, _name("mallory"))).connect(any_server.url)
        results = [await mallory.fetch_bundle(target.info.account_id, 1) for _ in range(30)]
        with_keys = [r for r in results if r.devices[0].one_time_curve is not None]
        assert len(with_keys) == DRAIN_LIMIT
        assert all(r.devices[0].one_time_curve is None for r in results[DRAIN_LIMIT:])
        # Past the limit the bundle still starts a session: signed and last-resort keys.
        assert all(
            r.devices[0].signed_prekey is not None and r.devices[0].kem_last_resort is not None
            for r in results
        )
        after = await _counts(target)
        assert before[PREKEY_KIND_CURVE_ONE_TIME] - after[PREKEY_KIND_CURVE_ONE_TIME] <= (
            DRAIN_LIMIT
        )
    finally:
        await target.close()


async def test_many_requesters_never_empty_a_connected_device(
    any_server: ServerProcess, tmp_path: Path
) -> None:
    target = await Client.register(tmp_path / "t", PASS, any_server.url, _name("target"))
    await target.connect()
    try:
        kem_start = (await _counts(target))[PREKEY_KIND_KEM_ONE_TIME]
        requesters = [
            await (await register(any_server.url, _name(f"r{i}"))).connect(any_server.url)
            for i in range(4)
        ]
        # 4 x DRAIN_LIMIT = 20 KEM one-time keys wanted, 10 stored: without the push and
        # the refill while connected, the device would run out.
        assert len(requesters) * DRAIN_LIMIT > kem_start
        lowest = kem_start
        for r in requesters:
            for _ in range(DRAIN_LIMIT):
                got = await r.fetch_bundle(target.info.account_id, 1)
                assert got.devices[0].one_time_kem is not None, "ran out of one-time KEM keys"
                counts = await _counts(target)
                lowest = min(lowest, counts[PREKEY_KIND_KEM_ONE_TIME])
                assert counts[PREKEY_KIND_KEM_ONE_TIME] > 0
            await asyncio.sleep(0.2)  # the refill runs in the background
        assert lowest > 0
        deadline = asyncio.get_running_loop().time() + 30
        while (await _counts(target))[PREKEY_KIND_KEM_ONE_TIME] < 10:
            assert asyncio.get_running_loop().time() < deadline, "never refilled"
            await asyncio.sleep(0.1)
        # The push that caused it reached the device (seen on a raw connection too).
        watcher = await (await register(any_server.url, _name("w"))).connect(any_server.url)
        raw_target = await register(any_server.url, _name("raw"))
        t = await raw_target.connect(any_server.url)
        await t.upload_prekeys(
            UploadPrekeys(
                0, [], [PrekeyRecord(PREKEY_KIND_CURVE_ONE_TIME, i, os.urandom(32)) for i in (1, 2)]
            )
        )
        await watcher.fetch_bundle(raw_target.account_id, 1)
        frame = await t.next_frame(timeout=10)
        while frame is not None and not isinstance(frame, PrekeysLow):
            frame = await t.next_frame(timeout=10)  # QueueDrained comes first
        assert isinstance(frame, PrekeysLow)
        assert frame.counts[PREKEY_KIND_CURVE_ONE_TIME] == 1
    finally:
        await target.close()


async def test_uploads_beyond_the_account_cap_get_a_typed_error(
    any_server: ServerProcess,
) -> None:
    dev = await register(any_server.url, _name("hoarder"))
    t = await dev.connect(any_server.url)

    def keys(start: int, n: int) -> list[PrekeyRecord]:
        return [
            PrekeyRecord(PREKEY_KIND_CURVE_ONE_TIME, i, os.urandom(32))
            for i in range(start, start + n)
        ]

    half = ONE_TIME_PREKEY_CAP // 2  # an upload carries at most 200 keys
    await t.upload_prekeys(UploadPrekeys(0, [], keys(1, half)))
    status = await t.upload_prekeys(UploadPrekeys(0, [], keys(half + 1, half)))
    assert status.counts[PREKEY_KIND_CURVE_ONE_TIME] == ONE_TIME_PREKEY_CAP
    with pytest.raises(TransportError) as info:
        await t.upload_prekeys(UploadPrekeys(0, [], keys(ONE_TIME_PREKEY_CAP + 1, 1)))
    assert info.value.code == "too_many_prekeys"
    # Nothing of the refused upload is stored, and the connection keeps serving.
    status = await t.upload_prekeys(UploadPrekeys(0, [], []))
    assert status.counts[PREKEY_KIND_CURVE_ONE_TIME] == ONE_TIME_PREKEY_CAP
    other = await (await register(any_server.url, _name("other"))).connect(any_server.url)
    got = await other.fetch_bundle(dev.account_id, 1)
    assert got.devices[0].one_time_curve is not None
    assert "Traceback" not in any_server.log()
