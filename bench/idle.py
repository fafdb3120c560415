"""Idle memory per authenticated connection, for the SDK's own transport and the bench's
raw client, side by side in one run (issue 18, item 3; docs/PERFORMANCE.md).

For each client kind it starts a fresh ``baat serve`` (SQLite in a temporary directory, no
per-address cap: every connection comes from 127.0.0.1), registers N devices over HTTP,
then opens authenticated connections in steps and reads the server's RSS after each step
has settled. The figure is (RSS - RSS before the first connection) / connections: it
includes the router's per-device records, the session, the codec and the kernel-side
buffers charged to the process, as an operator would see it.

- ``sdk``: ``baat.client.transport.Transport.connect``, what real clients do (the
  ``websockets`` library, which offers no permessage-deflate);
- ``raw``: ``bench/route_load.py``'s client (the same one ``bench/route.py --only idle``
  uses).

    .venv/bin/python bench/idle.py --steps 1000,5000,19000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baat.client.transport import Transport
from route_load import (
    baat_connect,
    bounded,
    proc_status_kib,
    raise_nofile,
    register_http,
)

FD_RESERVE = 400
SETTLE_S = 3.0


def server_command(tmp: Path, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "baat", "serve", "--data", str(tmp / "data"), "--region", "in"]
    cmd += ["--port", str(port), "--max-connections-per-address", "0"]
    # Every account registers from 127.0.0.1: lift the server-wide and per-address limits.
    cmd += ["--registrations-per-minute", "1000000", "--registrations-per-address", "1000000"]
    return cmd


def start_server(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = server_command(tmp, port)
    log = (tmp / "server.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(kind: str, steps: list[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baat-idle-") as name:
        tmp = Path(name)
        port = free_port()
        proc = start_server(tmp, port)
        url = f"http://127.0.0.1:{port}"
        try:
            devices = await register_http(url, steps[-1], 16)
            await asyncio.sleep(SETTLE_S)
            base = proc_status_kib(proc.pid, "VmRSS")
            held: list[Any] = []
            rows = []
            failure = ""
            for target in steps:
                start = len(held)

                async def one(i: int, start: int = start) -> Any:
                    dev = devices[start + i]
                    for attempt in range(3):  # a loaded machine may time a handshake out
                        try:
                            if kind == "raw":
                                return await baat_connect("127.0.0.1", port, dev, 60)
                            return await Transport.connect(
                                url, dev.account_id, dev.device_id, dev.key.sign, timeout=60
                            )
                        except Exception:
                            if attempt == 2:
                                raise
                            await asyncio.sleep(1)
                    raise AssertionError("unreachable")

                t = time.monotonic()
                try:
                    held.extend(await bounded(target - start, 16, one))
                except Exception as exc:  # report how far it got instead of nothing
                    failure = f"{type(exc).__name__} after {len(held)} connections: {exc}"
                    break
                took = time.monotonic() - t
                gc.collect()
                await asyncio.sleep(SETTLE_S)
                rss = proc_status_kib(proc.pid, "VmRSS")
                rows.append(
                    {
                        "connections": len(held),
                        "rss_kib": rss,
                        "per_conn_kib": round((rss - base) / len(held), 2),
                        "connect_s": round(took, 1),
                    }
                )
                print(f"  {kind}: {rows[-1]}", flush=True)
            for c in held:
                if kind == "raw":
                    c.close()
                else:
                    await c.close()
            return {"kind": kind, "base_rss_kib": base, "rows": rows, "failure": failure}
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1000,5000,19000")
    parser.add_argument("--kinds", default="sdk,raw")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fd_limit = raise_nofile()
    cap = fd_limit - FD_RESERVE
    steps = sorted({min(int(s), cap) for s in args.steps.split(",") if int(s) > 0})
    results = []
    for kind in args.kinds.split(","):
        print(f"{kind}: up to {steps[-1]:,} idle authenticated connections", flush=True)
        results.append(asyncio.run(measure(kind, steps)))
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'client':>6} {'connections':>12} {'server RSS MiB':>15} {'KiB/connection':>15}")
        for r in results:
            for row in r["rows"]:
                print(
                    f"{r['kind']:>6} {row['connections']:>12,} {row['rss_kib'] / 1024:>15.1f}"
                    f" {row['per_conn_kib']:>15.2f}"
                )
            if r["failure"]:
                print(f"{r['kind']:>6} stopped: {r['failure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
