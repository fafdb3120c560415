"""The operator's commands against a real ``baat serve``: suspend and delete act at once on
connected devices, registration closes and opens on the running server, a queue is shown as
counts only, and each action is counted in the transparency report."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from baat.client.transport import Transport, TransportError
from baat.proto import Error, OutgoingEnvelope, Send, SendResult
from support.devices import register, registration_body
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def admin(db: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "baat", "admin", *args, "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "BAAT_DB"},
    )
    assert out.returncode == 0, out
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


async def closed_with(t: Transport, timeout: float = 5.0) -> str:
    """The code of the fatal error the server closed ``t`` with."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = await t.next_frame(0.2)
        except TransportError:
            break
        if isinstance(frame, Error) and frame.fatal:
            return str(frame.code)
        if frame is None and t.close_reason:
            break
    raise AssertionError(f"not closed with an error within {timeout} s ({t.close_reason})")


async def test_suspend_and_delete_act_at_once_on_connected_devices(
    server: ServerProcess,
) -> None:
    db = f"sqlite:///{server.data_dir / 'baat.sqlite3'}"
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    carol = await register(server.url, "carol")
    a = await alice.connect(server.url)
    b = await bob.connect(server.url)

    began = time.monotonic()
    done = await asyncio.to_thread(admin, db, "accounts", "suspend", "alice")
    assert done["suspended"] is True and done["applied_by_server"] is True
    assert await closed_with(a) == "account_suspended"
    assert time.monotonic() - began < 10  # the command's own start-up included
    # While suspended, alice cannot come back; bob is untouched.
    with pytest.raises(TransportError) as refused:
        await alice.connect(server.url)
    assert refused.value.code == "account_suspended"
    await b.send(Send("m1", [OutgoingEnvelope(carol.account_id, 1, b"hello")]))
    result = await b.next_frame(5)
    while not isinstance(result, SendResult) and result is not None:  # QueueDrained first
        result = await b.next_frame(5)
    assert isinstance(result, SendResult) and result.results[0].status == "stored"

    done = await asyncio.to_thread(admin, db, "accounts", "unsuspend", "alice")
    assert done["was"] is True
    a = await alice.connect(server.url)  # may connect again
    await a.close()

    queue = await asyncio.to_thread(admin, db, "queue", "carol")
    assert queue["envelopes"] == 1 and queue["devices"] == [
        {"device": 1, "envelopes": 1, "bytes": 5, "oldest_days": 0}
    ]
    assert "hello" not in json.dumps(queue) and bob.account_id not in json.dumps(queue)

    began = time.monotonic()
    done = await asyncio.to_thread(admin, db, "accounts", "delete", "bob", "--yes")
    assert done["by_server"] is True
    assert await closed_with(b) in ("device_removed", "account_suspended")
    async with httpx.AsyncClient(base_url=server.url) as http:
        # Bob is gone: his name is free again.
        r = await http.post("/v1/accounts", json=registration_body("bob"))
        assert r.status_code == 201

    report = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "baat", "transparency", "report", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report
    counted = json.loads(report.stdout)["operator_actions_last_year"]
    assert counted == {"suspend": 1, "unsuspend": 1, "delete": 1, "registration": 0, "queue": 1}
    assert alice.account_id not in report.stdout and bob.account_id not in report.stdout


async def test_registration_closes_and_opens_on_a_running_server(server: ServerProcess) -> None:
    db = f"sqlite:///{server.data_dir / 'baat.sqlite3'}"
    done = await asyncio.to_thread(admin, db, "registration", "closed")
    assert done == {"registration": "closed", "applied_by_server": True}
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/v1/accounts", json=registration_body("dora"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "registration_closed"
        await asyncio.to_thread(admin, db, "registration", "invite")
        r = await http.post("/v1/accounts", json=registration_body("dora"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "invite_required"
        await asyncio.to_thread(admin, db, "registration", "open")
        r = await http.post("/v1/accounts", json=registration_body("dora"))
        assert r.status_code == 201
    # The setting outlives a restart: it overrides --registration until changed.
    await asyncio.to_thread(admin, db, "registration", "closed")
    await asyncio.to_thread(server.restart)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await asyncio.sleep(1.5)  # the first read of the settings
        r = await http.post("/v1/accounts", json=registration_body("erin"))
        assert r.status_code == 403


def test_commands_refuse_an_unknown_user(server: ServerProcess) -> None:
    db = f"sqlite:///{server.data_dir / 'baat.sqlite3'}"
    out = subprocess.run(
        [sys.executable, "-m", "baat", "admin", "accounts", "suspend", "nobody", "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "no account named 'nobody'" in out.stderr


@pytest.mark.postgres
async def test_suspend_and_delete_reach_every_node(tmp_path: Path, pg_url: str) -> None:
    """Two nodes on one PostgreSQL and Redis: a device connected to either is closed."""
    import secrets

    import redis

    bus = os.environ.get("BAAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(bus, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {bus}")
    nodes = [
        ServerProcess(tmp_path / f"n{i}", pg_url, "--bus", bus, "--node-id", f"op-{i}").start()
        for i in range(2)
    ]
    try:
        tag = secrets.token_hex(3)
        eve = await register(nodes[0].url, f"eve{tag}")
        fay = await register(nodes[1].url, f"fay{tag}")
        on_other = await eve.connect(nodes[1].url)
        fay_there = await fay.connect(nodes[0].url)
        done = await asyncio.to_thread(admin, pg_url, "accounts", "suspend", f"eve{tag}")
        assert done["applied_by_server"] is True
        assert await closed_with(on_other) == "account_suspended"
        # The other node learns of it within its next read (a second): either it refuses the
        # authentication or it closes the connection that got in just before.
        try:
            late = await eve.connect(nodes[0].url)
        except TransportError as exc:
            assert exc.code == "account_suspended"
        else:
            assert await closed_with(late, timeout=3) == "account_suspended"
        done = await asyncio.to_thread(admin, pg_url, "accounts", "delete", f"fay{tag}", "--yes")
        assert done["by_server"] is True
        assert await closed_with(fay_there) == "device_removed"
    finally:
        for node in nodes:
            node.stop()
