"""The group fan-out workload of ``bench/route_load.py`` (mode ``group``; ``bench/fanout.py``).

``senders`` devices each send one ``Send`` carrying an envelope for every one of ``members``
devices (256-byte opaque contents, as the routing cases), with ``window`` sends
outstanding; a slot frees when the ``SendResult`` arrives. Each member acknowledges every
``Deliver``, at once or after ``ack_ms`` milliseconds (what a real member spends checking,
decrypting and storing the message before it acknowledges). Counted: envelopes delivered
per second, latency from send to each member's receipt, the server's CPU per envelope, and
the ``SendResult`` statuses per envelope (``stored``: written to the database and deleted
again; ``delivered``: acknowledged from memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from baat.proto import (
    Ack,
    Deliver,
    Error,
    OutgoingEnvelope,
    Send,
    SendResult,
    decode_server,
    encode,
)
from route_load import (
    CONTENT,
    Device,
    Stats,
    WsClient,
    _clock,
    baat_connect,
    bounded,
    machine_busy_seconds,
    own_cpu_seconds,
    percentile,
    proc_cpu_seconds,
    proc_status_kib,
    register_all,
    reset_peak_rss,
)


class GroupSender:
    def __init__(self, st: Stats, client: WsClient, members: list[Device], name: int) -> None:
        self.st = st
        self.client = client
        self.name = name
        self.envelopes = [OutgoingEnvelope(m.account_id, m.device_id, CONTENT) for m in members]
        client.on_message = self.on_message

    def send_one(self) -> None:
        st = self.st
        st.seq += 1
        mid = f"{self.name}-{st.seq}"
        st.sent_at[mid] = _clock()
        st.outstanding += 1
        self.client.send(encode(Send(mid, self.envelopes)))

    def on_message(self, data: bytes) -> None:
        st = self.st
        frame = decode_server(data)
        if isinstance(frame, SendResult):
            st.sent_at.pop(frame.message_id, None)
            if st.measuring:
                for r in frame.results:
                    st.statuses[r.status] += 1
        elif isinstance(frame, Error):
            st.errors[frame.code] += 1
        else:
            return
        st.settled()
        if st.running:
            self.send_one()


class Member:
    def __init__(self, st: Stats, client: WsClient, ack_s: float) -> None:
        self.st = st
        self.client = client
        self.ack_s = ack_s
        self.delivered = 0
        self.loop = asyncio.get_running_loop()
        client.on_message = self.on_message

    def _ack(self, guid: bytes) -> None:
        self.client.send(encode(Ack([guid])))

    def on_message(self, data: bytes) -> None:
        frame = decode_server(data)
        if not isinstance(frame, Deliver):
            return
        now = _clock()
        if self.ack_s > 0:
            self.loop.call_later(self.ack_s, self._ack, frame.guid)
        else:
            self._ack(frame.guid)
        st = self.st
        sent = st.sent_at.get(frame.message_id)
        if st.measuring and sent is not None:
            st.delivered += 1
            self.delivered += 1
            st.latencies.append(now - sent)


async def run_group(cfg: dict[str, Any]) -> dict[str, Any]:
    pid: int = cfg["server_pid"]
    host, port, timeout = cfg["host"], cfg["port"], cfg["timeout"]
    n_members, n_senders = cfg["members"], cfg["senders"]
    st = Stats()
    t_setup = _clock()
    devs = await register_all(cfg, n_members + n_senders)
    conc = cfg.get("connect_concurrency", 64)
    clients = await bounded(len(devs), conc, lambda i: baat_connect(host, port, devs[i], timeout))
    members = [Member(st, c, cfg["ack_ms"] / 1000) for c in clients[:n_members]]
    senders = [GroupSender(st, c, devs[:n_members], i) for i, c in enumerate(clients[n_members:])]
    setup_s = _clock() - t_setup
    gc.collect()
    gc.freeze()
    for s in senders:
        for _ in range(cfg["window"]):
            s.send_one()
    await asyncio.sleep(cfg["warmup"])
    reset_peak_rss(pid)
    cpu0, own0, all0 = proc_cpu_seconds(pid), own_cpu_seconds(), machine_busy_seconds()
    st.latencies.clear()
    st.measuring = True
    t0 = _clock()
    await asyncio.sleep(cfg["seconds"])
    st.measuring = False
    t1 = _clock()
    cpu1, own1, all1 = proc_cpu_seconds(pid), own_cpu_seconds(), machine_busy_seconds()
    rss_peak = proc_status_kib(pid, "VmHWM")
    st.running = False
    if st.outstanding <= 0:
        st.drained.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(st.drained.wait(), 10)
    for c in clients:
        c.close()
    lat = sorted(st.latencies)
    elapsed = t1 - t0
    per_member = sorted(m.delivered for m in members)
    server_cpu = cpu1 - cpu0
    return {
        "target": "baat",
        "mode": "group",
        "members": n_members,
        "senders": n_senders,
        "users": n_members + n_senders,
        "window": cfg["window"],
        "ack_ms": cfg["ack_ms"],
        "seconds": elapsed,
        "delivered": st.delivered,
        "rate": st.delivered / elapsed,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        "pair_min": per_member[0] if per_member else 0,
        "pair_median": per_member[len(per_member) // 2] if per_member else 0,
        "pair_max": per_member[-1] if per_member else 0,
        "statuses": dict(st.statuses),
        "errors": dict(st.errors),
        "server_cpu_s": server_cpu,
        "load_cpu_s": own1 - own0,
        "other_cpu_s": max(0.0, (all1 - all0) - server_cpu - (own1 - own0)),
        "server_rss_peak_kib": rss_peak,
        "setup_s": setup_s,
    }
