"""One message to a large group through a real ``baat serve``: sender CPU, server work per
envelope, and the time until the last member has decrypted and stored it.

How it measures (docs/GROUPS.md §4):

* one ``baat serve`` process (SQLite, temp directory); one sender and N members (default
  256, one device each), all full SDK ``Client`` objects with their own encrypted store, in
  this one process (each with its own WebSocket). Profiles use a cheap Argon2id setting
  (1 MiB, t=1) so that opening 257 profiles takes seconds; nothing measured depends on it;
* set-up (not measured): the sender creates the group and sends a first message, so that
  every pairwise session and every sender key distribution is in place;
* **sender CPU**: ``time.process_time()`` from ``groups.send_text`` until the one ``Send``
  frame is handed to the socket: storing the message, reading 256 device lists, one
  ``encrypt_group``, 256 envelopes. The members are idle meanwhile, so the process CPU is
  the sender's;
* **server**: CPU seconds of the server process (``/proc/PID/stat``) from that moment until
  every member has stored the message, and 256 envelopes divided by them (envelopes per
  server CPU second; acknowledgements included). The kernel counts CPU in 10 ms ticks, so
  the figure over the burst below (M x N envelopes) is the precise one;
* **written to the database**: the statuses of the sender's ``SendResult``s. ``stored``
  means the member's acknowledgement came after the server's 5 ms grace, so the envelope was
  committed to SQLite and deleted again on the acknowledgement; ``delivered`` means it was
  acknowledged from memory and never touched the disk;
* **last member decrypted**: wall time from the start of ``send_text`` until the last
  member's client stored the message (signature check, decryption, SQLite commit). The
  members share one Python process (or ``--members-procs K`` processes), so this is bounded
  by their combined CPU and fsyncs: an upper bound for real devices, each of which does 1/N
  of it;
* a burst of ``--burst`` messages gives the end-to-end envelopes per second, the server CPU
  per envelope and the same stored/delivered split.

``--members-procs K`` spreads the members over K worker processes (this script with
``--worker``), so that their acknowledgements are not all queued behind one event loop;
arrival times use ``time.monotonic()``, one clock for every process of the machine.

Usage: ``python bench/group.py [--members N] [--burst M] [--members-procs K]`` (defaults
256, 10, 0 = members in this process; ~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

import baat.client.store as store_module
from baat.client.sdk import Client
from baat.client.store import StoredMessage
from baat.proto import OutgoingEnvelope, SendResult

PASS = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "baat", "serve", "--data", str(data), "--port", str(port)]
    cmd += ["--region", "in"]
    cmd += ["--registrations-per-minute", "100000", "--envelopes-per-second", "1000000"]
    # Every member registers from this one address and sends to each other at full speed.
    cmd += ["--registrations-per-address", "100000", "--recipient-envelopes-per-second", "1e9"]
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


async def _register_members(root: Path, url: str, first: int, count: int) -> list[Client]:
    clients = []
    for i in range(first, first + count):
        c = await Client.register(root / f"m{i}", PASS, url, f"member{i:04d}")
        await c.connect()
        clients.append(c)
    return clients


async def _worker(root: Path, url: str, first: int, count: int) -> None:
    """Members ``first .. first+count-1`` in this process: one JSON line on stdout when they
    are connected, then one per message once all of them have stored it."""
    clients = await _register_members(root, url, first, count)
    arrived: dict[str, list[float]] = {}

    def listener(m: StoredMessage) -> None:
        text = str(m.body.get("text"))
        arrived.setdefault(text, []).append(time.monotonic())
        if len(arrived[text]) == count:
            print(json.dumps({"text": text, "times": arrived.pop(text)}), flush=True)

    for c in clients:
        c.message_listeners.append(listener)
    print(json.dumps({"ready": count}), flush=True)
    # The parent closes our stdin when it is done.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for c in clients:
        await c.close()


class _Members:
    """Arrival times of every member, whether in this process or in worker processes."""

    def __init__(self, members: int) -> None:
        self.members = members
        self.arrived: dict[str, list[float]] = {}
        self.complete: dict[str, asyncio.Event] = {}
        self.clients: list[Client] = []
        self.workers: list[asyncio.subprocess.Process] = []
        self.readers: list[asyncio.Task[None]] = []

    def add(self, text: str, times: list[float]) -> None:
        self.arrived.setdefault(text, []).extend(times)
        if len(self.arrived[text]) == self.members:
            self.complete.setdefault(text, asyncio.Event()).set()

    async def start(self, root: Path, url: str, procs: int) -> None:
        if procs <= 0:
            self.clients = await _register_members(root, url, 0, self.members)

            def listener(m: StoredMessage) -> None:
                self.add(str(m.body.get("text")), [time.monotonic()])

            for c in self.clients:
                c.message_listeners.append(listener)
            return
        per, extra = divmod(self.members, procs)
        first = 0
        for k in range(procs):
            count = per + (1 if k < extra else 0)
            if count == 0:
                continue
            cmd = [sys.executable, __file__, "--worker", url, str(root), str(first), str(count)]
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            self.workers.append(proc)
            first += count
        ready = [asyncio.Event() for _ in self.workers]
        for proc, event in zip(self.workers, ready, strict=True):
            self.readers.append(asyncio.create_task(self._read(proc, event)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 600)

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if not line.startswith(b"{"):
                continue  # not one of ours
            msg = json.loads(line)
            if "ready" in msg:
                ready.set()
            else:
                self.add(msg["text"], msg["times"])

    async def wait_for(self, text: str) -> None:
        await asyncio.wait_for(self.complete.setdefault(text, asyncio.Event()).wait(), 300)

    def usernames(self) -> list[str]:
        return [f"member{i:04d}" for i in range(self.members)]

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        for proc in self.workers:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.workers:
            await asyncio.wait_for(proc.wait(), 60)
        for task in self.readers:
            task.cancel()


async def _run(
    root: Path, url: str, pid: int, members: int, burst: int, procs: int
) -> dict[str, float]:
    sender = await Client.register(root / "sender", PASS, url, "sender")
    await sender.connect()
    group = _Members(members)
    await group.start(root, url, procs)

    handed: list[float] = []
    statuses: Counter[str] = Counter()
    original = sender.send_envelopes

    async def send(message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
        handed.append(time.process_time())
        result = await original(message_id, envelopes)
        statuses.update(r.status for r in result.results)
        return result

    sender.send_envelopes = send  # type: ignore[method-assign]

    await sender.groups.create("bench", group.usernames())
    await sender.groups.send_text("bench", "warm-up")
    await group.wait_for("warm-up")

    handed.clear()
    statuses.clear()
    wall0, cpu0 = time.monotonic(), time.process_time()
    server0 = _server_cpu(pid)
    await sender.groups.send_text("bench", "measured")
    await group.wait_for("measured")
    server_cpu = _server_cpu(pid) - server0
    last = max(group.arrived["measured"]) - wall0
    sender_cpu = handed[0] - cpu0
    measured_statuses = Counter(statuses)

    statuses.clear()
    start = time.monotonic()
    server0 = _server_cpu(pid)
    for i in range(burst):
        await sender.groups.send_text("bench", f"burst {i}")
    for i in range(burst):
        await group.wait_for(f"burst {i}")
    burst_wall = time.monotonic() - start
    burst_server = _server_cpu(pid) - server0

    await sender.close()
    await group.close()
    return {
        "sender_cpu_ms": sender_cpu * 1000,
        "server_cpu_ms": server_cpu * 1000,
        "server_env_per_cpu_s": members / server_cpu if server_cpu else float("inf"),
        "stored": measured_statuses["stored"],
        "delivered": measured_statuses["delivered"],
        "last_ms": last * 1000,
        "first_ms": (min(group.arrived["measured"]) - wall0) * 1000,
        "burst_env_per_s": burst * members / burst_wall,
        "burst_wall_s": burst_wall,
        "burst_server_us_per_env": burst_server * 1e6 / (burst * members) if burst else 0.0,
        "burst_stored": statuses["stored"],
        "burst_delivered": statuses["delivered"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=256)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument(
        "--members-procs",
        type=int,
        default=0,
        help="spread the members over K processes (0: all in this process)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("URL", "ROOT", "FIRST", "COUNT"))
    args = parser.parse_args()
    # Cheap profile keys: 257 profiles in one process (see the docstring).
    store_module.KDF = {"name": "argon2id", "time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    if args.worker:
        url, root, first, count = args.worker
        asyncio.run(_worker(Path(root), url, int(first), int(count)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, url = _start(root / "server")
        try:
            figures = asyncio.run(
                _run(root, url, proc.pid, args.members, args.burst, args.members_procs)
            )
        finally:
            proc.terminate()
            proc.wait(30)
    n = args.members
    where = f"{args.members_procs} processes" if args.members_procs > 0 else "one process"
    table = Table(
        title=f"One message to a {n}-member group (1 device each, members in {where}), real server"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "sender CPU, send_text to Send on the socket", f"{figures['sender_cpu_ms']:.1f} ms"
    )
    table.add_row("server CPU for the fan-out (incl. acks)", f"{figures['server_cpu_ms']:.1f} ms")
    table.add_row("server envelopes per CPU second", f"{figures['server_env_per_cpu_s']:,.0f}")
    table.add_row(
        "envelopes written to the database / acknowledged from memory",
        f"{figures['stored']} / {figures['delivered']}",
    )
    table.add_row("first member stored it", f"{figures['first_ms']:.1f} ms")
    table.add_row(
        f"last of {n} members stored it (members in {where})", f"{figures['last_ms']:.1f} ms"
    )
    table.add_row(
        f"burst of {args.burst} messages, end to end",
        f"{figures['burst_env_per_s']:,.0f} envelopes/s ({figures['burst_wall_s']:.2f} s)",
    )
    table.add_row("burst: server CPU per envelope", f"{figures['burst_server_us_per_env']:,.0f} µs")
    table.add_row(
        "burst: written to the database / acknowledged from memory",
        f"{figures['burst_stored']} / {figures['burst_delivered']}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
