"""Counts of what the server did, kept as plain integers for ``baat.server.metrics``.

The hot path (a frame, a send, a pass of the writer) pays one attribute increment or one
dict increment here, never a lock or a label lookup; ``prometheus_client`` reads these at
scrape time (metrics.py), so a server run without ``--metrics`` pays only the increments.
Counts are per process and never name an account, a device or a username: the keys are
error codes and result names, a closed set defined by ``baat.proto``.

One ``COUNTS`` per process: several servers in one process (tests) share it.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (seconds) of the writer pass latency buckets: a pass is one transaction,
# an fsync on SQLite (a few ms), a round trip on PostgreSQL.
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Counts:
    __slots__ = (
        "blob_bytes_received",
        "blob_bytes_served",
        "frames",
        "frames_refused",
        "http_refusals",
        "pass_buckets",
        "pass_count",
        "pass_sum",
        "send_results",
        "sends_refused",
        "storage_errors",
    )

    def __init__(self) -> None:
        self.frames = 0
        # error code -> frames refused by the protocol layer (malformed, too large, rate)
        self.frames_refused: dict[str, int] = {}
        # error code -> sends refused as a whole (rate limits, quotas, storage, stale)
        self.sends_refused: dict[str, int] = {}
        # per-recipient status of completed sends: delivered, stored, duplicate, ...
        self.send_results: dict[str, int] = {}
        # error code -> HTTP requests refused (registration limits, blob quota, ...)
        self.http_refusals: dict[str, int] = {}
        # requests answered "storage_unavailable" outside the writer
        self.storage_errors = 0
        self.blob_bytes_received = 0
        self.blob_bytes_served = 0
        self.pass_buckets = [0] * (len(PASS_BUCKETS) + 1)
        self.pass_count = 0
        self.pass_sum = 0.0

    def observe_pass(self, seconds: float) -> None:
        """One writer pass (one transaction) took ``seconds``."""
        self.pass_buckets[bisect_left(PASS_BUCKETS, seconds)] += 1
        self.pass_count += 1
        self.pass_sum += seconds


def bump(table: dict[str, int], key: str, n: int = 1) -> None:
    table[key] = table.get(key, 0) + n


COUNTS = Counts()
