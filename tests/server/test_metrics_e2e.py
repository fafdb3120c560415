"""``/metrics`` of a real ``baat serve --metrics``: the counters move as messages flow, the
refusals are counted by code, and no label or value names an account or a username."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baat.client.transport import Transport
from baat.proto import Ack, Deliver, Error, OutgoingEnvelope, QueueDrained, Send, SendResult
from support.devices import DeviceUnderTest, register
from support.server import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e


async def next_of(t: Transport, kind: type | tuple[type, ...], timeout: float = 5.0) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await t.next_frame(max(deadline - asyncio.get_running_loop().time(), 0.01))
        assert frame is not None, t.close_reason
        if isinstance(frame, kind):
            return frame


async def send(t: Transport, to: DeviceUnderTest, mid: str, body: bytes) -> SendResult:
    await t.send(Send(mid, [OutgoingEnvelope(to.account_id, to.device_id, body)]))
    result = await next_of(t, SendResult)
    assert isinstance(result, SendResult) and result.message_id == mid
    return result


async def drain(t: Transport) -> list[Deliver]:
    """Every queued envelope up to QueueDrained, acknowledged."""
    got: list[Deliver] = []
    while not isinstance(frame := await next_of(t, (Deliver, QueueDrained)), QueueDrained):
        assert isinstance(frame, Deliver)
        got.append(frame)
    if got:
        await t.send(Ack([d.guid for d in got]))
    return got


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return r.text, values


def value(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    # A send rate low enough for the test to exceed it.
    node = ServerProcess(
        tmp_path / "srv", None, "--metrics", f"127.0.0.1:{port}", "--envelopes-per-second", "20"
    )
    node.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    node.start()
    yield node
    if node.proc is not None:
        node.stop()


async def test_counters_move_as_messages_flow_and_name_no_account(metered: ServerProcess) -> None:
    url: str = metered.metrics_url  # type: ignore[attr-defined]
    _, before = scrape(url)
    assert value(before, "baat_websocket_connections", state="authenticated") == 0
    alice = await register(metered.url, "alice")
    bob = await register(metered.url, "bob")
    a = await alice.connect(metered.url)
    await drain(a)
    for n in range(3):  # bob offline: stored
        assert (await send(a, bob, f"off{n}", b"x" * 100)).results[0].status == "stored"
    b = await bob.connect(metered.url)
    got = await drain(b)  # acknowledged: deleted from the queue
    assert len(got) == 3
    await a.send(Send("live", [OutgoingEnvelope(bob.account_id, 1, b"now")]))
    live = await next_of(b, Deliver)
    assert isinstance(live, Deliver)
    await b.send(Ack([live.guid]))
    assert isinstance(await next_of(a, SendResult), SendResult)
    # Past the account's rate (20 a second, bursts of 40): refused with rate_limited.
    refused = 0
    for n in range(60):
        await a.send(Send(f"burst{n}", [OutgoingEnvelope(bob.account_id, 1, b"b")]))
    for _ in range(60):
        frame = await next_of(a, (SendResult, Error))
        refused += isinstance(frame, Error) and frame.code == "rate_limited"
    assert refused > 0

    await asyncio.sleep(0.3)  # the acknowledged envelopes' DELETE (batched every 0.1 s)
    text, after = scrape(url)
    assert value(after, "baat_websocket_connections", state="authenticated") == 2
    assert value(after, "baat_online_devices") == 2
    assert value(after, "baat_envelopes_accepted_total") >= 4 + 60 - refused
    assert value(after, "baat_envelopes_stored_total") >= 3
    assert value(after, "baat_envelopes_delivered_total", path="stored") >= 3
    assert value(after, "baat_send_results_total", status="stored") >= 3
    assert value(after, "baat_sends_refused_total", code="rate_limited") == refused
    assert value(after, "baat_frames_total", result="accepted", code="") > value(
        before, "baat_frames_total", result="accepted", code=""
    )
    assert value(after, "baat_writer_pass_seconds_count") >= 1
    assert value(after, "baat_database_up") == 1 and value(after, "baat_bus_up") == 1
    assert value(
        after, "baat_build_info", version=value_of_version(text), region="in", node="node-1"
    )
    # Nothing that names a person: no account id, no username, anywhere in the exposition.
    for secret in (alice.account_id, bob.account_id, "alice", "bob"):
        assert secret not in text
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {
        "state",
        "result",
        "code",
        "status",
        "path",
        "direction",
        "le",
        "version",
        "region",
        "node",
    }

    # A malformed frame is counted by its error code; the connection is refused.
    await b.send_raw(b"\xff\x00garbage")
    await asyncio.sleep(0.3)
    _, last = scrape(url)
    refused_frames = sum(
        v
        for (name, labels), v in last.items()
        if name == "baat_frames_total" and ("result", "refused") in labels
    )
    assert refused_frames >= 1
    await a.close()
    await b.close()


def test_the_dashboard_plots_only_exported_metrics(metered: ServerProcess) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baat-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", m)
        for e in exprs
        for m in re.findall(r"baat_[a-z_]+", e)
    }
    text, _ = scrape(metered.metrics_url)  # type: ignore[attr-defined]
    # Every family, with samples or not yet (a counter by code has none before a refusal).
    exported = {
        re.sub(r"_total$", "", m) for m in re.findall(r"^# TYPE (baat_[a-z_]+) ", text, re.M)
    }
    assert exported and used == exported, (used - exported, exported - used)


def value_of_version(text: str) -> str:
    found = re.search(r'baat_build_info\{[^}]*version="([^"]+)"', text)
    assert found
    return found.group(1)


def test_metrics_answer_only_metrics(metered: ServerProcess) -> None:
    url: str = metered.metrics_url  # type: ignore[attr-defined]
    assert httpx.get(url.replace("/metrics", "/healthz"), timeout=5).status_code == 404
    # And the public port does not serve them.
    assert httpx.get(metered.url + "/metrics", timeout=5).status_code == 404
