"""Load generator for ``bench/route.py``: raw WebSocket clients on one uvloop event loop.

Started by ``bench/route.py`` as ``python bench/route_load.py CONFIG_JSON``; prints one line
``RESULT {json}`` on stdout. Both ends of every pair live in this process, so send and
receipt times come from one clock.

The clients speak RFC 6455 directly over ``asyncio.Protocol`` (no per-message task, no
locks) and mask with an all-zero key, which keeps the XOR out of the load generator's
CPU budget while staying a valid frame for any server (the server still unmasks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import resource
import secrets
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from baat.contract import registration_message
from baat.proto import (
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    Challenge,
    Deliver,
    Error,
    OutgoingEnvelope,
    QueueDrained,
    Ready,
    SealedEnvelope,
    SealedSend,
    Send,
    SendResult,
    auth_message,
    decode_server,
    encode,
)

try:
    from baat.crypto import identity_dh_signature_message
except ImportError:  # trees before the domain-separated DH signature signed the raw key

    def identity_dh_signature_message(identity_dh_key: bytes) -> bytes:
        return identity_dh_key


CONTENT_BYTES = 256
ZERO_MASK = b"\x00\x00\x00\x00"
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.2
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc readers (also used by route.py) -------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status, e.g. ``VmRSS`` or ``VmHWM``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next reading is this case's peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    steal = ticks[7] if len(ticks) > 7 else 0
    # guest time is already counted in user time
    return (sum(ticks[:8]) - idle - steal) / CLK_TCK


def pids_named(*names: str) -> list[int]:
    """Processes whose command name (``/proc/PID/comm``) is one of ``names``.

    By name, not by command line: the bench's own processes carry ``postgresql://`` URLs
    in theirs.
    """
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
            if f.read().strip() in names:
                found.append(int(entry))
    return found


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process that still exists."""
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            out[pid] = proc_cpu_seconds(pid)
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings; a process born meanwhile counts from zero (one that
    ended meanwhile is lost: PostgreSQL's pooled backends and Redis live on)."""
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


def own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- a minimal WebSocket client --------------------------------------------------------------


class ConnectionLost(Exception):
    pass


class WsClient(asyncio.Protocol):
    """One client WebSocket. Messages go to ``on_message`` (an inbox until replaced)."""

    def __init__(self, host: str, port: int, path: str, deflate: bool = False) -> None:
        # With ``deflate`` the client offers permessage-deflate exactly as the websockets
        # library (and so baat.client.transport) does by default; it never compresses what
        # it sends (RFC 7692 lets each message choose) but inflates what it receives.
        offer = (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            if deflate
            else ""
        )
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: "
            f"{base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"{offer}\r\n"
        ).encode()
        self._inflate: Any = None
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.on_message: Callable[[bytes], None] = self.inbox.put_nowait
        self.closed = False
        self._buf = b""

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionLost(str(exc or "closed during upgrade")))
        self.inbox.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self.upgraded.done():
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionLost(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            if b"permessage-deflate" in data[:end].lower():
                self._inflate = zlib.decompressobj(-15)
            self.upgraded.set_result(None)
            data = data[end + 4 :]
        n = len(data)
        pos = 0
        while pos + 2 <= n:
            b0 = data[pos]
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if pos + 4 > n:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 2:  # binary; servers here never fragment
                if b0 & 0x40:  # RSV1: compressed with permessage-deflate
                    self.on_message(self._inflate.decompress(data[pos + head : end] + TAIL))
                else:
                    self.on_message(data[pos + head : end])
            elif opcode == 9:  # ping: answer at once, the server's keepalive waits for it
                self._write_frame(0x8A, data[pos + head : end])
            elif opcode == 8:  # close
                assert self.transport is not None
                self.transport.close()
                return
            pos = end
        if pos < n:
            self._buf = data[pos:]

    # sending ------------------------------------------------------------------------------

    def _write_frame(self, first: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((first, 0x80 | n))
        elif n < 65536:
            head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
        assert self.transport is not None
        self.transport.write(head + ZERO_MASK + payload)

    def send(self, payload: bytes) -> None:
        if not self.closed:
            self._write_frame(0x82, payload)

    async def recv(self, timeout: float) -> bytes:
        data = await asyncio.wait_for(self.inbox.get(), timeout)
        if data is None:
            raise ConnectionLost("connection closed")
        return data

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


async def ws_connect(
    host: str, port: int, path: str, timeout: float, deflate: bool = False
) -> WsClient:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: WsClient(host, port, path, deflate), host, port), timeout
    )
    await asyncio.wait_for(client.upgraded, timeout)
    return client


# -- Baat accounts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    account_id: str
    device_id: int
    key: Ed25519PrivateKey


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def registration_body(username: str, key: Ed25519PrivateKey) -> dict[str, str]:
    """The JSON body of ``POST /v1/accounts`` with its proof of possession."""
    ik = _raw(key)
    dh = _raw(X25519PrivateKey.generate())
    return {
        "username": username,
        "identity_key": _b64(ik),
        "identity_dh_key": _b64(dh),
        "identity_dh_sig": _b64(key.sign(identity_dh_signature_message(dh))),
        "proof": _b64(key.sign(registration_message(username, ik, dh))),
    }


async def register_http(base_url: str, n: int, concurrency: int) -> list[Device]:
    """Register ``n`` accounts over HTTP, ``concurrency`` requests at a time."""
    import httpx

    devices: list[Device] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as http:

        async def worker(count: int) -> None:
            for _ in range(count):
                key = Ed25519PrivateKey.generate()
                body = registration_body("b" + secrets.token_hex(10), key)
                r = await http.post("/v1/accounts", json=body)
                if r.status_code != 201:
                    raise RuntimeError(f"registration failed: HTTP {r.status_code} {r.text}")
                reply = r.json()
                devices.append(Device(reply["account_id"], reply["device_id"], key))

        share = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(worker(c) for c in share if c))
    return devices


async def register_direct(db_url: str, n: int, region: str) -> list[Device]:
    """Create accounts with the server's own registration rule, straight into its database.

    Used only when ``baat serve`` has no ``--registrations-per-minute`` flag: the HTTP
    route would allow 60 a minute.
    """
    from baat.server.accounts import register
    from baat.server.storage.sql import SqlStore

    store = await SqlStore.open(db_url)
    devices: list[Device] = []
    try:
        for _ in range(n):
            key = Ed25519PrivateKey.generate()
            reg = await register(
                store, registration_body("b" + secrets.token_hex(10), key), "local"
            )
            devices.append(Device(reg.account_id, reg.device_id, key))
    finally:
        await store.close()
    return devices


async def register_all(cfg: dict[str, Any], n: int) -> list[Device]:
    if cfg["registration"] == "http":
        return await register_http(
            f"http://{cfg['host']}:{cfg['port']}", n, cfg.get("register_concurrency", 16)
        )
    return await register_direct(cfg["db_url"], n, cfg["region"])


async def baat_connect(
    host: str, port: int, dev: Device, timeout: float, deflate: bool = False
) -> WsClient:
    """Open, authenticate and wait for QueueDrained (the device is then online)."""
    client = await ws_connect(host, port, "/v1/ws", timeout, deflate)
    try:
        challenge = decode_server(await client.recv(timeout))
        if not isinstance(challenge, Challenge):
            raise ConnectionLost(f"expected Challenge, got {challenge!r}")
        sig = dev.key.sign(auth_message(challenge.nonce, dev.account_id, dev.device_id))
        client.send(encode(Authenticate(PROTOCOL_VERSION, dev.account_id, dev.device_id, sig)))
        while True:
            frame = decode_server(await client.recv(timeout))
            if isinstance(frame, Error):
                raise ConnectionLost(f"{frame.code}: {frame.message}")
            if isinstance(frame, QueueDrained):
                return client
            if not isinstance(frame, Ready):
                raise ConnectionLost(f"unexpected {type(frame).__name__} during handshake")
    except BaseException:
        client.close()
        raise


async def relay_connect(host: str, port: int, path: str, timeout: float) -> WsClient:
    client = await ws_connect(host, port, path, timeout)
    if await client.recv(timeout) != b"ok":
        client.close()
        raise ConnectionLost("relay did not greet")
    return client


async def bounded(
    n: int, concurrency: int, make: Callable[[int], Any], deadline_s: float = 600.0
) -> list[Any]:
    """Run ``make(i)`` for i in range(n), ``concurrency`` at a time, results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return list(await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), deadline_s))


# -- the routing workload ----------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.running = True
        self.measuring = False
        self.seq = 0
        self.sent_at: dict[Any, float] = {}
        self.latencies: list[float] = []
        self.delivered = 0
        self.outstanding = 0
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.drained = asyncio.Event()

    def settled(self) -> None:
        """One send is final: refill its slot, or note that the last one came back."""
        self.outstanding -= 1
        if not self.running and self.outstanding <= 0:
            self.drained.set()


CONTENT = os.urandom(CONTENT_BYTES)
_clock = time.perf_counter


class BaatPair:
    """A sender and its receiver on Baat: Send -> Deliver -> Ack -> SendResult."""

    def __init__(self, st: Stats, sender: WsClient, receiver: WsClient, to: Device) -> None:
        self.st = st
        self.sender = sender
        self.receiver = receiver
        self.to_account = to.account_id
        self.to_device = to.device_id
        self.delivered = 0
        sender.on_message = self.on_sender
        receiver.on_message = self.on_receiver

    def send_one(self) -> None:
        st = self.st
        st.seq += 1
        mid = str(st.seq)
        st.sent_at[mid] = _clock()
        st.outstanding += 1
        env = OutgoingEnvelope(self.to_account, self.to_device, CONTENT)
        self.sender.send(encode(Send(mid, [env])))

    def on_sender(self, data: bytes) -> None:
        st = self.st
        frame = decode_server(data)
        if isinstance(frame, SendResult):
            if st.measuring:
                st.statuses[frame.results[0].status] += 1
        elif isinstance(frame, Error):
            st.errors[frame.code] += 1
        else:
            return
        st.settled()
        if st.running:
            self.send_one()

    def on_receiver(self, data: bytes) -> None:
        frame = decode_server(data)
        if isinstance(frame, Deliver):
            now = _clock()
            self.receiver.send(encode(Ack([frame.guid])))
            st = self.st
            sent = st.sent_at.pop(frame.message_id, None)
            if st.measuring and sent is not None:
                st.delivered += 1
                self.delivered += 1
                st.latencies.append(now - sent)


class SealedPair(BaatPair):
    """The same exchange as a sealed send (docs/PROTOCOL.md, "Sealed sender"): the sender's
    connection never authenticates, each ``SealedSend`` carries the receiver's access key
    and a sealed envelope (``SEALED``: 256 bytes sealed with a sender certificate, as a
    client makes it; made once, since the server never opens it)."""

    def __init__(
        self, st: Stats, sender: WsClient, receiver: WsClient, to: Device, key: bytes
    ) -> None:
        super().__init__(st, sender, receiver, to)
        self.key = key

    def send_one(self) -> None:
        st = self.st
        st.seq += 1
        mid = str(st.seq)
        st.sent_at[mid] = _clock()
        st.outstanding += 1
        env = SealedEnvelope(self.to_device, SEALED)
        self.sender.send(encode(SealedSend(mid, self.to_account, self.key, [env])))


def _sealed_content() -> bytes:
    from baat.crypto import IdentityKeyPair
    from baat.crypto.sealed import issue_sender_certificate, issue_server_certificate, seal

    me, them = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    root, server = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = int(time.time() * 1000)
    scert = issue_server_certificate(root, 1, _raw(server), now + 10**9)
    cert = issue_sender_certificate(
        server, scert, "in-" + "a" * 29, 1, me.identity_key, me.identity_dh_key, now + 10**8
    )
    return seal(them.identity_dh_key, me.dh_pair, cert, CONTENT)


SEALED = _sealed_content()


async def anonymous_connect(host: str, port: int, timeout: float) -> WsClient:
    """A connection that reads the Challenge and never authenticates."""
    client = await ws_connect(host, port, "/v1/ws", timeout)
    challenge = decode_server(await client.recv(timeout))
    if not isinstance(challenge, Challenge):
        client.close()
        raise ConnectionLost(f"expected Challenge, got {challenge!r}")
    return client


async def grant_access(db_url: str, receivers: list[Device]) -> list[bytes]:
    """Each receiver's delivery access (the hash of a fresh access key), written as its
    first device would with ``PUT /v1/profile/access``; returns the keys."""
    from baat.crypto.sealed import access_key, access_verifier, new_profile_key
    from baat.server.storage.schema import delivery_access
    from baat.server.storage.sql import SqlStore

    keys = [access_key(new_profile_key()) for _ in receivers]
    store = await SqlStore.open(db_url, migrate=False)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(
                delivery_access.insert(),
                [
                    {"account_id": d.account_id, "verifier": access_verifier(k), "anyone": 0}
                    for d, k in zip(receivers, keys, strict=True)
                ],
            )
    finally:
        await store.close()
    return keys


class RelayPair:
    """The same exchange through the relay: payload out, payload in, ack, ack."""

    def __init__(self, st: Stats, sender: WsClient, receiver: WsClient) -> None:
        self.st = st
        self.sender = sender
        self.receiver = receiver
        self.delivered = 0
        sender.on_message = self.on_sender
        receiver.on_message = self.on_receiver

    def send_one(self) -> None:
        st = self.st
        st.seq += 1
        st.sent_at[st.seq] = _clock()
        st.outstanding += 1
        self.sender.send(st.seq.to_bytes(8, "big") + CONTENT)

    def on_sender(self, data: bytes) -> None:
        st = self.st
        if st.measuring:
            st.statuses["acked"] += 1
        st.settled()
        if st.running:
            self.send_one()

    def on_receiver(self, data: bytes) -> None:
        now = _clock()
        head = data[:8]
        self.receiver.send(head)
        st = self.st
        sent = st.sent_at.pop(int.from_bytes(head, "big"), None)
        if st.measuring and sent is not None:
            st.delivered += 1
            self.delivered += 1
            st.latencies.append(now - sent)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def client_port(cfg: dict[str, Any], client: int) -> int:
    """The node a client connects to. Clients 2i and 2i+1 are the sender and receiver of
    pair i: both on node i % N (a load balancer with affinity), or with ``cross`` the
    receiver on the next node, so every envelope crosses the bus."""
    ports: list[int] = cfg.get("ports") or [cfg["port"]]
    pair, receiver = divmod(client, 2)
    shift = 1 if receiver and cfg.get("cross") else 0
    return ports[(pair + shift) % len(ports)]


XMPP_TARGETS = ("ejabberd", "prosody")


async def xmpp_clients(cfg: dict[str, Any], n: int, conc: int) -> tuple[list[Any], list[str]]:
    """Register ``n`` fresh accounts in-band, then log each in (bench/_xmpp.py)."""
    from _xmpp import login, register

    host, port, timeout, domain = cfg["host"], cfg["port"], cfg["timeout"], cfg["xmpp_domain"]
    users = [f"{cfg['run_id']}u{i}" for i in range(n)]
    await bounded(n, conc, lambda i: register(host, port, domain, users[i], "pw", timeout))
    clients = await bounded(n, conc, lambda i: login(host, port, domain, users[i], "pw", timeout))
    return clients, [f"{u}@{domain}" for u in users]


async def connect_pairs(cfg: dict[str, Any], st: Stats) -> list[Any]:
    host, port, timeout = cfg["host"], cfg["port"], cfg["timeout"]
    n_pairs = cfg["pairs"]
    deflate = bool(cfg.get("deflate"))
    conc = cfg.get("connect_concurrency", 64)
    if cfg["target"] == "baat" and cfg.get("sealed"):
        devs = await register_all(cfg, 2 * n_pairs)
        keys = await grant_access(cfg["db_url"], devs[1::2])
        receivers = await bounded(
            n_pairs,
            conc,
            lambda i: baat_connect(host, client_port(cfg, 2 * i + 1), devs[2 * i + 1], timeout),
        )
        senders = await bounded(
            n_pairs, conc, lambda i: anonymous_connect(host, client_port(cfg, 2 * i), timeout)
        )
        return [
            SealedPair(st, senders[i], receivers[i], devs[2 * i + 1], keys[i])
            for i in range(n_pairs)
        ]
    if cfg["target"] in XMPP_TARGETS:
        from _xmpp import XmppPair

        clients, jids = await xmpp_clients(cfg, 2 * n_pairs, conc)
        return [
            XmppPair(st, clients[2 * i], clients[2 * i + 1], jids[2 * i + 1])
            for i in range(n_pairs)
        ]
    if cfg["target"] == "baat":
        devs = await register_all(cfg, 2 * n_pairs)
        clients = await bounded(
            2 * n_pairs,
            conc,
            lambda i: baat_connect(host, client_port(cfg, i), devs[i], timeout, deflate),
        )
        return [
            BaatPair(st, clients[2 * i], clients[2 * i + 1], devs[2 * i + 1])
            for i in range(n_pairs)
        ]
    receivers = await bounded(n_pairs, conc, lambda i: relay_connect(host, port, f"/r/{i}", 30))
    senders = await bounded(n_pairs, conc, lambda i: relay_connect(host, port, f"/s/{i}", 30))
    return [RelayPair(st, senders[i], receivers[i]) for i in range(n_pairs)]


async def run_routing(cfg: dict[str, Any]) -> dict[str, Any]:
    pids: list[int] = cfg.get("server_pids") or [cfg["server_pid"]]
    st = Stats()
    t_setup = _clock()
    pairs = await connect_pairs(cfg, st)
    setup_s = _clock() - t_setup
    gc.collect()
    gc.freeze()
    for pair in pairs:
        for _ in range(cfg["window"]):
            pair.send_one()
    await asyncio.sleep(cfg["warmup"])
    peak_reset = all([reset_peak_rss(pid) for pid in pids])
    pg, redis = pids_named("postgres"), pids_named("redis-server")
    node0, pg0, redis0 = cpu_by_pid(pids), cpu_by_pid(pg), cpu_by_pid(redis)
    own0, all0 = own_cpu_seconds(), machine_busy_seconds()
    st.latencies.clear()
    st.measuring = True
    t0 = _clock()
    await asyncio.sleep(cfg["seconds"])
    st.measuring = False
    t1 = _clock()
    node1, own1, all1 = cpu_by_pid(pids), own_cpu_seconds(), machine_busy_seconds()
    pg1, redis1 = cpu_by_pid(pids_named("postgres")), cpu_by_pid(redis)
    node_cpu = [node1[pid] - node0[pid] for pid in pids]
    pg_cpu, redis_cpu = cpu_delta(pg0, pg1), cpu_delta(redis0, redis1)
    rss_peaks = [proc_status_kib(pid, "VmHWM") for pid in pids]
    rss_now = sum(proc_status_kib(pid, "VmRSS") for pid in pids)
    st.running = False
    if st.outstanding <= 0:
        st.drained.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(st.drained.wait(), 10)
    for pair in pairs:
        pair.sender.close()
        pair.receiver.close()
    lat = sorted(st.latencies)
    elapsed = t1 - t0
    per_pair = sorted(p.delivered for p in pairs)
    return {
        "target": cfg["target"],
        "users": 2 * cfg["pairs"],
        "window": cfg["window"],
        "seconds": elapsed,
        "delivered": st.delivered,
        "rate": st.delivered / elapsed,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "p999_ms": percentile(lat, 0.999) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        # Fairness: envelopes delivered per pair in the measured interval.
        "pair_min": per_pair[0] if per_pair else 0,
        "pair_median": per_pair[len(per_pair) // 2] if per_pair else 0,
        "pair_max": per_pair[-1] if per_pair else 0,
        # Pairs under a quarter of the median pair's count (issue 18's "starved").
        "pairs_starved": sum(1 for n in per_pair if n < 0.25 * per_pair[len(per_pair) // 2]),
        "statuses": dict(st.statuses),
        "errors": dict(st.errors),
        "unsettled": st.outstanding,
        "nodes": len(pids),
        "cross": bool(cfg.get("cross")) and len(pids) > 1,
        "server_cpu_s": sum(node_cpu),
        "node_cpu_s": node_cpu,
        "load_cpu_s": own1 - own0,
        # PostgreSQL (every backend and helper of the cluster) and Redis, whoever uses them.
        "pg_cpu_s": pg_cpu,
        "redis_cpu_s": redis_cpu,
        # Everything else the machine did meanwhile (other processes, interrupts).
        "other_cpu_s": max(0.0, (all1 - all0) - sum(node_cpu) - (own1 - own0) - pg_cpu - redis_cpu),
        "server_rss_peak_kib": sum(rss_peaks),
        "node_rss_peak_kib": rss_peaks,
        "server_rss_kib": rss_now,
        "peak_is_case_only": peak_reset,
        "setup_s": setup_s,
    }


# -- the idle-connections workload ---------------------------------------------------------------


async def run_idle(cfg: dict[str, Any]) -> dict[str, Any]:
    pid: int = cfg["server_pid"]
    host, port, timeout = cfg["host"], cfg["port"], cfg["timeout"]
    steps: list[int] = sorted(cfg["steps"])
    conc = cfg.get("connect_concurrency", 128)
    baat = cfg["target"] == "baat"
    xmpp = cfg["target"] in XMPP_TARGETS
    deflate = bool(cfg.get("deflate"))
    t = _clock()
    devs = await register_all(cfg, steps[-1]) if baat else []
    if xmpp:
        from _xmpp import login, register

        domain = cfg["xmpp_domain"]
        users = [f"{cfg['run_id']}i{i}" for i in range(steps[-1])]
        await bounded(
            len(users), conc, lambda i: register(host, port, domain, users[i], "pw", timeout)
        )
    register_s = _clock() - t
    await asyncio.sleep(cfg["settle"])
    base = proc_status_kib(pid, "VmRSS")
    clients: list[Any] = []
    rows: list[dict[str, Any]] = []
    failure = ""
    for target in steps:
        start = len(clients)
        t = _clock()
        cpu0 = proc_cpu_seconds(pid)

        async def make(i: int, start: int = start) -> Any:
            if baat:
                return await baat_connect(host, port, devs[start + i], timeout, deflate)
            if xmpp:
                return await login(host, port, domain, users[start + i], "pw", timeout)
            return await relay_connect(host, port, f"/r/{start + i}", timeout)

        try:
            clients.extend(await bounded(target - start, conc, make))
        except (OSError, ConnectionLost, TimeoutError, RuntimeError) as exc:
            failure = f"{type(exc).__name__} while opening connection {start}..{target}: {exc}"
            break
        connect_s = _clock() - t
        cpu = proc_cpu_seconds(pid) - cpu0
        await asyncio.sleep(cfg["settle"])
        alive = sum(1 for c in clients if not c.closed)
        rss = proc_status_kib(pid, "VmRSS")
        rows.append(
            {
                "connections": alive,
                "rss_kib": rss,
                "per_conn_kib": (rss - base) / max(1, alive),
                "connect_s": connect_s,
                "connect_cpu_s": cpu,
                "connects_per_s": (target - start) / connect_s,
            }
        )
    for c in clients:
        c.close()
    return {
        "target": cfg["target"],
        "base_rss_kib": base,
        "register_s": register_s,
        "registered": len(devs) or (steps[-1] if xmpp else 0),
        "rows": rows,
        "failure": failure,
    }


async def _main(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg["mode"] == "route":
        return await run_routing(cfg)
    if cfg["mode"] == "group":
        from _group_load import run_group

        return await run_group(cfg)
    return await run_idle(cfg)


def main() -> None:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    raise_nofile()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(_main(cfg))
    else:
        result = uvloop.run(_main(cfg))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
