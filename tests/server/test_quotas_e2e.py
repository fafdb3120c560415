"""Quotas against a real ``baat serve`` on SQLite and PostgreSQL (baat.server.quotas): each
is reached, reported with its code, costs nothing to other senders, and a refused message
goes through once the queue has drained."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from baat.proto import Ack, Deliver, Error, OutgoingEnvelope, QueueDrained, Send, SendResult
from support.cli import baat, lines
from support.devices import register
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def answer(t: object) -> SendResult | Error:
    while True:
        frame = await t.next_frame(30)  # type: ignore[attr-defined]
        assert frame is not None
        if isinstance(frame, SendResult | Error):
            return frame


async def send(t: object, message_id: str, to: str, content: bytes) -> SendResult | Error:
    await t.send(Send(message_id, [OutgoingEnvelope(to, 1, content)]))  # type: ignore[attr-defined]
    return await answer(t)


async def drain(t: object) -> list[bytes]:
    """Receive and acknowledge everything queued."""
    got = []
    while True:
        frame = await t.next_frame(30)  # type: ignore[attr-defined]
        assert frame is not None
        if isinstance(frame, QueueDrained):
            return got
        if isinstance(frame, Deliver):
            got.append(frame.content)
            await t.send(Ack([frame.guid]))  # type: ignore[attr-defined]


@pytest.fixture
def quota_server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "server",
        db_url,
        *("--max-queued-envelopes", "4", "--max-queued-bytes", "3000"),
        *("--recipient-envelopes-per-second", "2"),
        *("--max-blobs-per-account", "2", "--max-blob-bytes-per-account", "5000"),
    ).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()
        assert "Traceback" not in server.log()


async def test_queue_quota_refuses_retryably_and_the_message_goes_once_drained(
    quota_server: ServerProcess,
) -> None:
    url = quota_server.url
    alice, carol = await register(url, "qalice"), await register(url, "qcarol")
    bob, dave = await register(url, "qbob"), await register(url, "qdave")
    a, c = await alice.connect(url), await carol.connect(url)
    await drain(a)
    await drain(c)
    # Four envelopes may wait for Bob's offline device (the per-second rate to one device
    # is 2 with bursts of 20 here, so it does not interfere).
    for i in range(4):
        res = await send(a, f"a{i}", bob.account_id, b"x%d" % i)
        assert isinstance(res, SendResult) and res.results[0].status == "stored"
    res = await send(a, "a4", bob.account_id, b"x4")
    assert isinstance(res, Error) and res.code == "recipient_queue_full"
    assert res.message_id == "a4" and res.retry_after_ms > 0 and not res.fatal
    # The connection goes on; Carol's messages to Dave are not affected, and hers to Bob
    # are refused the same way (the queue is Bob's), without losing anything queued.
    res = await send(c, "c0", dave.account_id, b"to dave")
    assert isinstance(res, SendResult) and res.results[0].status == "stored"
    res = await send(c, "c1", bob.account_id, b"from carol")
    assert isinstance(res, Error) and res.code == "recipient_queue_full"

    b = await bob.connect(url)
    assert await drain(b) == [b"x0", b"x1", b"x2", b"x3"]
    await b.close()
    # Once the queue has drained (acknowledgements are deleted in batches, and the queue's
    # size is read again within a second), the same message is accepted.
    deadline = time.monotonic() + 30
    while True:
        res = await send(a, "a4", bob.account_id, b"x4")
        if isinstance(res, SendResult):
            break
        assert res.code == "recipient_queue_full" and time.monotonic() < deadline
        await asyncio.sleep(0.2)
    b = await bob.connect(url)
    assert await drain(b) == [b"x4"]
    d = await dave.connect(url)
    assert await drain(d) == [b"to dave"]


async def test_queue_bytes_and_rate_to_one_device(quota_server: ServerProcess) -> None:
    url = quota_server.url
    alice, erin = await register(url, "qalice"), await register(url, "qerin")
    bob, frank = await register(url, "qbob"), await register(url, "qfrank")
    a, e = await alice.connect(url), await erin.connect(url)
    await drain(a)
    await drain(e)
    # 3000 bytes may wait for one device: two envelopes of 1400 fit, a third does not.
    for i in range(2):
        res = await send(a, f"big{i}", bob.account_id, b"\0" * 1400)
        assert isinstance(res, SendResult), res
    res = await send(a, "big2", bob.account_id, b"\0" * 1400)
    assert isinstance(res, Error) and res.code == "recipient_queue_full"
    # Small envelopes still fit under the byte limit.
    res = await send(a, "small", bob.account_id, b"hi")
    assert isinstance(res, SendResult)

    # Rate to one device: Erin's bursts to Frank stop at 20 (2 a second, bursts of 10x);
    # he is online, so his queue is not what refuses her.
    f = await frank.connect(url)
    await drain(f)
    statuses = []
    start = time.monotonic()
    for i in range(25):
        statuses.append(await send(e, f"e{i}", frank.account_id, b"."))
    elapsed = time.monotonic() - start
    refused = [r for r in statuses if isinstance(r, Error)]
    assert refused and all(r.code == "recipient_rate_limited" for r in refused)
    assert all(r.retry_after_ms > 0 for r in refused)
    # The burst, plus what refilled at 2 a second while a loaded machine sent the rest.
    accepted = sum(isinstance(r, SendResult) for r in statuses)
    assert 20 <= accepted <= 20 + 2 * elapsed + 1
    # Only that pair is limited: Erin still writes to Alice, and Alice to Frank.
    assert isinstance(await send(e, "to-alice", alice.account_id, b"."), SendResult)
    assert isinstance(await send(a, "to-frank", frank.account_id, b"."), SendResult)


async def test_blob_quota(quota_server: ServerProcess) -> None:
    alice = await register(quota_server.url, "qalice")
    bob = await register(quota_server.url, "qbob")
    auth = {"authorization": alice.creds.header()}
    async with httpx.AsyncClient(base_url=quota_server.url) as http:

        async def create(length: int, who: dict[str, str] = auth) -> httpx.Response:
            body = {"length": length, "fetches_allowed": 1}
            return await http.post("/v1/blobs", json=body, headers=who)

        assert (await create(4000)).status_code == 201
        r = await create(1001)  # 5001 bytes: over the account's 5000
        assert r.status_code == 413 and r.json()["error"]["code"] == "blob_quota_exceeded"
        assert (await create(1000)).status_code == 201
        r = await create(1)  # a third blob: over the count of 2
        assert r.status_code == 413 and r.json()["error"]["code"] == "blob_quota_exceeded"
        # Another account has its own quota.
        r = await create(4000, {"authorization": bob.creds.header()})
        assert r.status_code == 201


@pytest.mark.timeout(400)  # a dozen command-line runs, each a new process
def test_client_keeps_a_refused_message_and_sends_it_once_the_queue_drains(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "server", None, "--max-queued-envelopes", "2").start()
    try:
        client_keeps_a_refused_message(tmp_path, server.url)
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def client_keeps_a_refused_message(tmp_path: Path, url: str) -> None:
    asha, ravi, sita = tmp_path / "asha", tmp_path / "ravi", tmp_path / "sita"
    baat(asha, "register", "asha", "--server", url)
    baat(ravi, "register", "ravi", "--server", url)
    baat(sita, "register", "sita", "--server", url)
    for i in range(2):
        out = lines(baat(asha, "send", "ravi", f"hello {i}", "--json"))
        assert out[0]["status"] == "sent", out
    out = lines(baat(asha, "send", "ravi", "one too many", "--json"))
    assert out[0]["status"] != "sent"  # kept in the outbox, not lost
    # Ravi's full queue holds back only messages to Ravi: Asha still writes to Sita.
    out = lines(baat(asha, "send", "sita", "meanwhile", "--json"))
    assert out[0]["status"] == "sent", out
    assert [m["text"] for m in lines(baat(sita, "sync", "--json"))] == ["meanwhile"]
    got = [m["text"] for m in lines(baat(ravi, "sync", "--json"))]
    assert got == [f"hello {i}" for i in range(2)]
    # Ravi's queue has drained: Asha's next sync sends what her outbox kept.
    deadline = time.monotonic() + 60
    while True:
        baat(asha, "sync")
        got = [m["text"] for m in lines(baat(ravi, "sync", "--json"))]
        if got:
            break
        assert time.monotonic() < deadline, "the kept message never arrived"
    assert got == ["one too many"]
    history = json.dumps(lines(baat(asha, "history", "ravi", "--json")))
    assert "one too many" in history
