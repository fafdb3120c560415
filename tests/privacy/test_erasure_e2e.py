"""Erasure end to end, through a real ``baat serve`` on SQLite and on PostgreSQL with Redis.

An account registers, writes and receives messages, sends an attachment, consents to every
optional purpose; every job runs; then ``baat me delete``. After a restart of the server,
nothing of the account may be left anywhere the server keeps data: no table row, no byte in
any file under the data directory (the database, its WAL, blob files, the log), no Redis
key. The needles are the account id, the username and the device's public keys (raw and in
base64), searched as raw bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from baat.server.storage.sql import SqlStore
from support.cli import baat, lines, listen
from support.server import ServerProcess

from .conftest import Receiver

pytestmark = pytest.mark.e2e

REDIS = os.environ.get("BAAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
JOBS = ("improve", "understand", "customize", "market", "share_affiliate")
PURPOSES = ("improve", "understand", "customize", "support", "market", "share_affiliate")


def _register(profile: Path, url: str, name: str) -> str:
    reg = baat(profile, "register", "--json", "--server", url, "--jurisdiction", "IN", name)
    return str(json.loads(reg.stdout)["account_id"])


async def _keys(db: str, account_id: str) -> list[bytes]:
    store = await SqlStore.open(db)
    try:
        devices = await store.devices(account_id)
    finally:
        await store.close()
    return [k for d in devices for k in (d.identity_key, d.identity_dh_key)]


def _needles(account_id: str, username: str, keys: list[bytes]) -> dict[str, bytes]:
    out = {"account id": account_id.encode(), "username": username.encode()}
    for i, key in enumerate(keys):
        out[f"key {i}"] = key
        out[f"key {i} base64"] = base64.b64encode(key)[:40]
        out[f"key {i} urlsafe"] = base64.urlsafe_b64encode(key)[:40]
    return out


def _table_rows(sync_conn: Any) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for table in inspect(sync_conn).get_table_names():
        rows = sync_conn.execute(text(f'SELECT * FROM "{table}"')).all()
        out[table] = [
            bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
            for row in rows
            for v in row
        ]
    return out


async def _scan_tables(db: str, needles: dict[str, bytes]) -> list[str]:
    store = await SqlStore.open(db, migrate=False)
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(_table_rows)
    finally:
        await store.close()
    assert tables["accounts"], "the scan must see the other account's rows"
    return [
        f"table {t}: {name}"
        for t, values in tables.items()
        for name, needle in needles.items()
        if any(needle in v for v in values)
    ]


def _scan_files(root: Path, needles: dict[str, bytes]) -> list[str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    found = []
    for path in files:
        data = path.read_bytes()
        found += [f"file {path.relative_to(root)}: {n}" for n, b in needles.items() if b in data]
    return found


def _scan_redis(needles: dict[str, bytes]) -> list[str]:
    import redis

    client = redis.Redis.from_url(REDIS)
    found = []
    try:
        for key in client.scan_iter(count=1000):
            value = client.get(key) if client.type(key) == b"string" else b""
            for name, needle in needles.items():
                if needle in key or (value and needle in value):
                    found.append(f"redis {key!r}: {name}")
    finally:
        client.close()
    return found


def _presence_keys(account_id: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        return list(client.scan_iter(match=f"baat:in:presence:{account_id}:*"))
    finally:
        client.close()


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _erase_everything(
    tmp: Path, server: ServerProcess, db: str, affiliate: Receiver, redis: bool
) -> None:
    suffix = os.urandom(3).hex()
    name, peer_name = f"zuleika{suffix}", f"bilal{suffix}"
    zed, bilal = tmp / "zed", tmp / "bilal"
    zed_id = _register(zed, server.url, name)
    _register(bilal, server.url, peer_name)

    # Messages both ways; then, while Bilal is away, a message and an attachment he never
    # fetches.
    baat(zed, "send", peer_name, "from zuleika")
    assert [m["text"] for m in lines(baat(bilal, "sync", "--json"))] == ["from zuleika"]
    baat(bilal, "send", name, "are you there?")
    photo = tmp / "photo.bin"
    photo.write_bytes(os.urandom(200_000))
    baat(zed, "send", peer_name, "--file", str(photo), "--caption", "a photo")
    baat(zed, "send", peer_name, "never fetched")

    # Every optional purpose, and every job and the support desk use it.
    for purpose in PURPOSES:
        baat(zed, "consent", "grant", purpose)
    for job in JOBS:
        baat(tmp, "admin", "run-job", job, "--db", db, "--affiliate-url", affiliate.url)
    assert name in baat(tmp, "admin", "support-lookup", name, "--db", db).stdout
    assert any(r.get("type") == "export" for r in affiliate.received)

    # Zuleika is online while she erases: her session, presence and memory are live.
    listener = listen(zed, 120)
    try:
        assert listener.stdout is not None
        first = json.loads(listener.stdout.readline())
        assert first["text"] == "are you there?"
        if redis:
            _wait_for(lambda: _presence_keys(zed_id), "the presence key")
        keys = asyncio.run(_keys(db, zed_id))
        assert len(keys) == 2

        reply = json.loads(baat(zed, "me", "delete", "--yes", "--json").stdout)
        listener.wait(30)  # the server closed her session
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(10)
        if listener.stdout is not None:
            listener.stdout.close()
    # Her later sends were sealed (she had Bilal's profile key by then): the server cannot
    # tell they are hers, so they are not among what her erasure finds (docs/PRIVACY.md).
    assert reply["deleted"]["accounts"] == 1 and "envelopes" not in reply["deleted"]
    assert reply["erased_elsewhere"]["attachments"] == 1
    assert reply["erased_elsewhere"]["live sessions"] == 1
    assert reply["erased_elsewhere"]["router memory"] >= 3  # her sends, devices, rate
    # Closing her session released its presence record; the store ran all the same.
    assert "presence" in reply["erased_elsewhere"]
    assert reply["incomplete"] == []
    assert reply["recipients_notified"] == {"affiliate": "sent", "baat-support": "sent"}
    assert len(reply["notices_recorded"]) == 2
    erasures = [r for r in affiliate.received if r.get("type") == "erasure"]
    assert erasures == [{"type": "erasure", "subjects": [name]}] * 2
    assert "intact" in baat(tmp, "admin", "verify-ledger", "--db", db).stdout

    needles = _needles(zed_id, name, keys)
    # While the server still runs: SQLite's WAL was checkpointed and truncated.
    found = _scan_files(server.data_dir, needles)
    assert found == [], "erased data still found before restart:\n" + "\n".join(found)
    server.restart()
    found = asyncio.run(_scan_tables(db, needles)) + _scan_files(server.data_dir, needles)
    if redis:
        found += _scan_redis(needles)
    assert found == [], "erased data still found:\n" + "\n".join(found)
    # The other account is still served; the sealed envelopes she sent him reach him (their
    # sender was inside the ciphertext), the attachment itself went with her.
    got = lines(baat(bilal, "sync", "--json"))
    assert {m["text"] for m in got} <= {"a photo", "never fetched"} and got
    server.stop()
    found = asyncio.run(_scan_tables(db, needles)) + _scan_files(server.data_dir, needles)
    assert found == [], "erased data still found after stop:\n" + "\n".join(found)


def test_erasure_reaches_every_store_on_sqlite(tmp_path: Path, affiliate: Receiver) -> None:
    data = tmp_path / "server"
    server = ServerProcess(
        data, None, "--affiliate-url", affiliate.url, "--support-url", affiliate.url
    )
    server.start()
    try:
        _erase_everything(
            tmp_path, server, f"sqlite:///{data / 'baat.sqlite3'}", affiliate, redis=False
        )
    finally:
        if server.proc is not None:
            server.stop()


@pytest.mark.postgres
def test_erasure_reaches_every_store_on_postgresql_with_redis(
    tmp_path: Path, pg_url: str, affiliate: Receiver
) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS}")
    server = ServerProcess(
        tmp_path / "server",
        pg_url,
        "--bus",
        REDIS,
        "--node-id",
        f"erasure-{os.urandom(3).hex()}",
        "--affiliate-url",
        affiliate.url,
        "--support-url",
        affiliate.url,
    )
    server.start()
    try:
        _erase_everything(tmp_path, server, pg_url, affiliate, redis=True)
    finally:
        if server.proc is not None:
            server.stop()
