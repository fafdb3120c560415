"""Prometheus metrics on their own address (``baat serve --metrics HOST:PORT``).

What is exported (docs/DEPLOY.md, "Metrics"), every name prefixed ``baat_``:

- ``websocket_connections{state}``: authenticated and unauthenticated WebSocket
  connections now; ``open_connections``: every open TCP connection (HTTP too);
- ``frames_total{result,code}``: frames received, ``accepted`` or ``refused`` by error code;
- ``sends_refused_total{code}``: sends refused as a whole (rate limits, quotas, storage);
  ``send_results_total{status}``: per-recipient results of completed sends;
- ``envelopes_accepted_total``, ``envelopes_stored_total`` (committed by the writer),
  ``envelopes_delivered_total{path}`` (``direct``: acknowledged before any write;
  ``stored``: acknowledged after it, then deleted);
- ``writer_queue_envelopes``: accepted envelopes waiting for the writer's commit;
  ``inflight_envelopes``: pushed and not yet acknowledged; ``online_devices``;
- ``writer_pass_seconds``: histogram of the writer's transactions;
- ``writer_errors_total``, ``storage_errors_total``, ``database_up``; ``bus_errors_total``,
  ``bus_up``;
- ``blob_bytes_total{direction}``: attachment bytes received and served;
- ``http_refusals_total{code}``: HTTP requests refused (registration rate, invites, blob
  quota), beside the send refusals above;
- ``build_info{version,region,node}``.

No label carries an account id, a device or a username: labels are error codes, results
and the node's own names, a closed set. The values are read at scrape time from
``baat.server.counters`` and the router (no lock and no label lookup on the hot path), in
the event loop's thread, so they are consistent with each other.

The endpoint is a small HTTP server on the event loop, on a socket bound before start-up
(a taken port fails the start, as the main port does). It answers ``GET /metrics`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from baat import __version__
from baat.server.counters import COUNTS, PASS_BUCKETS

if TYPE_CHECKING:
    from baat.server.state import ServerState
    from baat.server.transport.ws import Hub

log = logging.getLogger("baat.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST = 8192


class BaatCollector(Collector):
    """Reads the counters and the router's state when Prometheus scrapes."""

    def __init__(self, hub: Hub, state: Callable[[], ServerState | None]) -> None:
        self.hub = hub
        self.state = state

    def collect(self) -> Iterator[Metric]:
        c = COUNTS
        hub = self.hub
        ws = GaugeMetricFamily(
            "baat_websocket_connections", "Open WebSocket connections", labels=["state"]
        )
        ws.add_metric(["authenticated"], hub.guard.authenticated)
        ws.add_metric(["unauthenticated"], len(hub.pending_auth))
        yield ws
        yield GaugeMetricFamily(
            "baat_open_connections", "Open TCP connections, HTTP and WebSocket", hub.guard.open
        )
        frames = CounterMetricFamily(
            "baat_frames", "Frames received, by result and error code", labels=["result", "code"]
        )
        frames.add_metric(["accepted", ""], c.frames)
        for code, n in sorted(c.frames_refused.items()):
            frames.add_metric(["refused", code], n)
        yield frames
        yield _by(
            "baat_sends_refused", "Sends refused as a whole, by error code", "code", c.sends_refused
        )
        yield _by(
            "baat_send_results",
            "Per-recipient results of completed sends",
            "status",
            c.send_results,
        )
        yield _by(
            "baat_http_refusals", "HTTP requests refused, by error code", "code", c.http_refusals
        )
        yield CounterMetricFamily(
            "baat_storage_errors",
            "Requests answered storage_unavailable outside the writer",
            value=c.storage_errors,
        )
        blobs = CounterMetricFamily(
            "baat_blob_bytes", "Attachment bytes received and served", labels=["direction"]
        )
        blobs.add_metric(["received"], c.blob_bytes_received)
        blobs.add_metric(["served"], c.blob_bytes_served)
        yield blobs
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*map(str, PASS_BUCKETS), "+Inf"), c.pass_buckets, strict=True):
            running += n
            buckets.append((bound, running))
        yield HistogramMetricFamily(
            "baat_writer_pass_seconds",
            "Duration of the writer's group-commit transactions",
            buckets=buckets,
            sum_value=c.pass_sum,
        )
        state = self.state()
        info = GaugeMetricFamily(
            "baat_build_info", "This node", labels=["version", "region", "node"]
        )
        if state is not None:
            info.add_metric([__version__, state.config.region, state.config.node_id], 1)
        yield info
        if state is None:
            return
        router = state.router
        stats = router.stats
        yield CounterMetricFamily(
            "baat_envelopes_accepted", "Envelopes accepted for delivery", value=stats.accepted
        )
        yield CounterMetricFamily(
            "baat_envelopes_stored", "Envelopes committed to the database", value=stats.stored
        )
        delivered = CounterMetricFamily(
            "baat_envelopes_delivered", "Envelopes acknowledged by their device", labels=["path"]
        )
        delivered.add_metric(["direct"], stats.delivered_unstored)
        delivered.add_metric(["stored"], stats.deleted)
        yield delivered
        depth = router.queue_depth()
        yield GaugeMetricFamily(
            "baat_writer_queue_envelopes", "Accepted envelopes waiting for a commit", depth[0]
        )
        yield GaugeMetricFamily(
            "baat_inflight_envelopes", "Envelopes pushed and not yet acknowledged", depth[1]
        )
        yield GaugeMetricFamily(
            "baat_online_devices", "Devices connected to this node", len(router.online)
        )
        yield CounterMetricFamily(
            "baat_writer_errors", "Writer passes that failed (retried)", value=stats.write_errors
        )
        yield GaugeMetricFamily(
            "baat_database_up",
            "1 unless the writer's last pass failed",
            router.storage_error is None,
        )
        yield CounterMetricFamily(
            "baat_bus_errors", "Node-to-node bus operations that failed", value=stats.bus_errors
        )
        bus = router.bus
        yield GaugeMetricFamily(
            "baat_bus_up", "1 while the bus is connected", bool(bus and bus.healthy)
        )


def _by(name: str, text: str, label: str, table: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for key, n in sorted(table.items()):
        family.add_metric([key], n)
    return family


_registry: CollectorRegistry | None = None


def install(hub: Hub, state: Callable[[], ServerState | None]) -> CollectorRegistry:
    """The registry the endpoint serves (one per process)."""
    global _registry
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BaatCollector(hub, state))
    _registry = registry
    return registry


def render(registry: CollectorRegistry | None = None) -> bytes:
    """The exposition text of ``registry`` (default: the installed one)."""
    registry = registry or _registry
    if registry is None:
        return b""
    return generate_latest(registry)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        writer.close()
        return
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
        body, status = render(), b"200 OK"
        kind = CONTENT_TYPE.encode()
    else:
        body, status, kind = b"not found: GET /metrics\n", b"404 Not Found", b"text/plain"
    writer.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind
        + b"\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


async def serve(sock: socket.socket) -> asyncio.Server:
    """Answer ``GET /metrics`` on the bound ``sock`` until the loop ends."""
    return await asyncio.start_server(_answer, sock=sock, limit=MAX_REQUEST)
