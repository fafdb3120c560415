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
  server CPU second; acknowledgements included);
* **last member decrypted**: wall time from the start of ``send_text`` until the last
  member's client stored the message (signature check, decryption, SQLite commit). The
  members share one Python process, so this is bounded by their combined CPU: it is an
  upper bound for real devices, each of which does 1/N of it;
* a burst of ``--burst`` messages gives the end-to-end envelopes per second.

Usage: ``python bench/group.py [--members N] [--burst M]`` (defaults 256, 10; ~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
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
    cmd += ["--registrations-per-minute", "100000", "--envelopes-per-second", "1000000"]
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


async def _run(root: Path, url: str, pid: int, members: int, burst: int) -> dict[str, float]:
    sender = await Client.register(root / "sender", PASS, url, "sender")
    await sender.connect()
    clients = []
    for i in range(members):
        c = await Client.register(root / f"m{i}", PASS, url, f"member{i:04d}")
        await c.connect()
        clients.append(c)
    arrived: dict[str, list[float]] = {}
    complete: dict[str, asyncio.Event] = {}

    def listener(m: StoredMessage) -> None:
        text = str(m.body.get("text"))
        arrived.setdefault(text, []).append(time.perf_counter())
        if len(arrived[text]) == members:
            complete.setdefault(text, asyncio.Event()).set()

    for c in clients:
        c.message_listeners.append(listener)

    handed: list[float] = []
    original = sender.send_envelopes

    async def send(message_id: str, envelopes: list[OutgoingEnvelope]) -> SendResult:
        handed.append(time.process_time())
        return await original(message_id, envelopes)

    sender.send_envelopes = send  # type: ignore[method-assign]

    async def wait_for(text: str, count: int) -> None:
        assert count == members
        await asyncio.wait_for(complete.setdefault(text, asyncio.Event()).wait(), 300)

    await sender.groups.create("bench", [c.info.username for c in clients])
    await sender.groups.send_text("bench", "warm-up")
    await wait_for("warm-up", members)

    handed.clear()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    server0 = _server_cpu(pid)
    await sender.groups.send_text("bench", "measured")
    await wait_for("measured", members)
    server_cpu = _server_cpu(pid) - server0
    last = max(arrived["measured"]) - wall0
    sender_cpu = handed[0] - cpu0

    start = time.perf_counter()
    for i in range(burst):
        await sender.groups.send_text("bench", f"burst {i}")
    for i in range(burst):
        await wait_for(f"burst {i}", members)
    burst_wall = time.perf_counter() - start

    for c in [sender, *clients]:
        await c.close()
    return {
        "sender_cpu_ms": sender_cpu * 1000,
        "server_cpu_ms": server_cpu * 1000,
        "server_env_per_cpu_s": members / server_cpu if server_cpu else float("inf"),
        "last_ms": last * 1000,
        "first_ms": (min(arrived["measured"]) - wall0) * 1000,
        "burst_env_per_s": burst * members / burst_wall,
        "burst_wall_s": burst_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=256)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    # Cheap profile keys: 257 profiles in one process (see the docstring).
    store_module.KDF = {"name": "argon2id", "time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, url = _start(root / "server")
        try:
            figures = asyncio.run(_run(root, url, proc.pid, args.members, args.burst))
        finally:
            proc.terminate()
            proc.wait(30)
    n = args.members
    table = Table(title=f"One message to a {n}-member group (1 device each), real server")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "sender CPU, send_text to Send on the socket", f"{figures['sender_cpu_ms']:.1f} ms"
    )
    table.add_row("server CPU for the fan-out (incl. acks)", f"{figures['server_cpu_ms']:.1f} ms")
    table.add_row("server envelopes per CPU second", f"{figures['server_env_per_cpu_s']:,.0f}")
    table.add_row("first member stored it", f"{figures['first_ms']:.1f} ms")
    table.add_row(
        f"last of {n} members stored it (all in one process)", f"{figures['last_ms']:.1f} ms"
    )
    table.add_row(
        f"burst of {args.burst} messages, end to end",
        f"{figures['burst_env_per_s']:,.0f} envelopes/s ({figures['burst_wall_s']:.2f} s)",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
