"""Routing benchmark: Baat's router against a minimal WebSocket relay, on this machine.

For each (users, window) case it starts a fresh ``baat serve`` (temp data dir, SQLite unless
``--db``) and then a fresh relay (``bench/_relay.py``), each with a fresh load generator
process (``bench/route_load.py``): users/2 sender -> receiver pairs, 256-byte opaque
envelopes, ``window`` sends outstanding per sender (a slot frees on the SendResult; the
receiver acks each Deliver at once). It reports delivered envelopes/s, latency p50/p99
(send to receipt, one clock), server CPU seconds and peak RSS, and Baat/relay ratios.

The idle mode opens N authenticated idle connections and reports the server's RSS growth
per connection.

    .venv/bin/python bench/route.py                      # everything, ~5 minutes
    .venv/bin/python bench/route.py --users 50 --windows 1 --seconds 5 --only routing
    .venv/bin/python bench/route.py --only idle --idle 1000,5000
    .venv/bin/python bench/route.py --nodes 2 --seconds 8         # 1 node vs 2, PostgreSQL
    .venv/bin/python bench/route.py --nodes 2 --cross             # every envelope via Redis
    .venv/bin/python bench/route.py --sealed --only routing       # sealed sends beside Baat's

With ``--sealed`` every single-node case also runs with sealed sends (``SealedSend`` from a
connection that never authenticates, the receiver's access key checked, a sealed 256-byte
envelope): the table adds a "sealed" row and the sealed/Baat ratio (target >= 0.9x). Both
servers then run with ``--auth-timeout 3600`` so that the anonymous senders stay connected.

With ``--nodes N`` (N > 1) every routing case runs twice on PostgreSQL (``--db``, by
default ``postgresql://postgres@127.0.0.1:5432/test``): once on one node, once on N
``baat serve`` processes sharing one fresh database and the Redis bus (``--bus``, by default
``redis://127.0.0.1:6379/0``), with node ids unique to the run. Pair i has both ends on node
i % N (a load balancer with affinity); ``--cross`` puts its receiver on the next node. The
table adds CPU per node, PostgreSQL's and Redis's CPU, and the N-node/1-node ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from route_load import machine_busy_seconds, raise_nofile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
UNLIMITED = "1000000000"
TARGET_RATE = 20_000.0
TARGET_P99_MS = 10.0
TARGET_IDLE_KIB = 10.0
TARGET_USERS = 50
TARGET_WINDOW = 1
TARGET_NODES_SPEEDUP = 1.6
TARGET_NODES_USERS = 500
TARGET_SEALED_RATIO = 0.9
TARGET_FAIR_USERS = 500
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_BUS = "redis://127.0.0.1:6379/0"
NODES_CASES = [(500, 1), (500, 2), (50, 1)]
FD_RESERVE = 256

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=180)


class BenchError(Exception):
    pass


# -- child processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench itself dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Children:
    """Every process the bench starts, stopped by pid at the end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self, cmd: list[str], log: Path, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        out = log.open("ab")
        self._logs.append(out)
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own process group: a Ctrl-C reaches only the bench, which stops it cleanly.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc, timeout=10.0)
        for f in self._logs:
            f.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    kind: str
    pid: int
    port: int
    db_url: str
    log: Path
    # Every node (the first is ``pid``/``port``).
    pids: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    children: Children = field(default_factory=Children)
    registration: str = "http"
    region: str | None = None
    runs: int = 0
    # More `baat serve` flags for every server of the run (bench/fanout.py sets --fanout-hold).
    serve_extra: list[str] = field(default_factory=list)
    # Node ids are unique to the run, so Redis channels never meet another run's.
    node_prefix: str = field(default_factory=lambda: "bench-" + secrets.token_hex(4))


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, http: bool) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited early (code {proc.returncode}):\n{tail(log)}")
        try:
            if http:
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"server did not become ready:\n{tail(log)}")


def _declared_region(log: str) -> str | None:
    marker = "is not declared; use one of: "
    if marker not in log:
        return None
    return log.split(marker, 1)[1].split(",", 1)[0].split()[0].strip() or None


def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _node_cmd(ctx: Context, data: Path, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "baat", "serve", "--data", str(data), "--port", str(port)]
    cmd += ["--envelopes-per-second", UNLIMITED, "--frames-per-second", UNLIMITED]
    # Every simulated user connects from 127.0.0.1: no per-address cap for the bench.
    cmd += ["--max-connections-per-address", "0"]
    # The load is many envelopes a second from one account to one device: lift that quota.
    cmd += ["--recipient-envelopes-per-second", UNLIMITED]
    if ctx.registration == "http":
        cmd += ["--registrations-per-minute", UNLIMITED, "--registrations-per-address", UNLIMITED]
    cmd += ["--region", ctx.region or "in"]
    if ctx.args.sealed:
        # Anonymous (sealed) senders never authenticate: keep them for the whole case.
        cmd += ["--auth-timeout", "3600"]
    return cmd + ctx.serve_extra


@contextlib.contextmanager
def baat_server(ctx: Context, nodes: int = 1) -> Iterator[Server]:
    """One ``baat serve``, or ``nodes`` of them on one database and the Redis bus."""
    data = Path(tempfile.mkdtemp(prefix="baat-", dir=ctx.tmp))
    scratch_db: str | None = None
    extra: list[str] = []
    if ctx.args.db:
        # A fresh database per case on the named server, dropped afterwards (as the tests do).
        scratch_db = "baat_bench_" + secrets.token_hex(6)
        _pg_admin(ctx.args.db, f"CREATE DATABASE {scratch_db}")
        db_url = ctx.args.db.rsplit("/", 1)[0] + "/" + scratch_db
        extra += ["--db", db_url]
    else:
        db_url = f"sqlite:///{data / 'baat.sqlite3'}"
    if nodes > 1:
        extra += ["--bus", ctx.args.bus]
    ctx.runs += 1
    ports = [free_port() for _ in range(nodes)]
    cmds: list[list[str]] = []
    for i, port in enumerate(ports):
        node_data = data / f"node-{i}" if nodes > 1 else data
        cmd = _node_cmd(ctx, node_data, port) + extra
        if nodes > 1:
            cmd += ["--node-id", f"{ctx.node_prefix}-{ctx.runs}-{i}"]
        cmds.append(cmd)
    logs = [data / (f"server-{i}.log" if nodes > 1 else "server.log") for i in range(nodes)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # All nodes start together: they migrate the empty database under an advisory lock.
        procs = [ctx.children.start(cmd, log) for cmd, log in zip(cmds, logs, strict=True)]
        try:
            for proc, port, log in zip(procs, ports, logs, strict=True):
                _wait_ready(proc, port, log, http=True)
        except BenchError as exc:
            region = _declared_region(str(exc))
            if ctx.region or region is None or nodes > 1:
                raise
            # The server's default region is not declared by the privacy policy: use the
            # first declared one and say so.
            console.print(f"[yellow]the default region is not declared; using --region {region}[/]")
            ctx.region = region
            ctx.children.stop(procs[0])
            procs = [ctx.children.start([*cmds[0], "--region", region], logs[0])]
            _wait_ready(procs[0], ports[0], logs[0], http=True)
        pids = [p.pid for p in procs]
        yield Server("baat", pids[0], ports[0], db_url, logs[0], pids, ports)
    finally:
        for proc, log in zip(procs, logs, strict=False):
            code = ctx.children.stop(proc)
            if code not in (0, -signal.SIGTERM):
                console.print(f"[yellow]baat server exited with code {code}[/]\n{tail(log, 10)}")
        if scratch_db:
            with contextlib.suppress(Exception):
                _pg_admin(ctx.args.db, f"DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)")
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def relay_server(ctx: Context) -> Iterator[Server]:
    port = free_port()
    log = ctx.tmp / f"relay-{port}.log"
    proc = ctx.children.start([sys.executable, str(BENCH / "_relay.py"), "--port", str(port)], log)
    try:
        _wait_ready(proc, port, log, http=False)
        yield Server("relay", proc.pid, port, "", log, [proc.pid], [port])
    finally:
        ctx.children.stop(proc)


@contextlib.contextmanager
def server(ctx: Context, kind: str, nodes: int = 1) -> Iterator[Server]:
    cm = baat_server(ctx, nodes) if kind in ("baat", "sealed") else relay_server(ctx)
    with cm as s:
        yield s


def run_load(ctx: Context, srv: Server, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    ctx.runs += 1
    cfg = {
        **cfg,
        "target": srv.kind,
        "host": "127.0.0.1",
        "port": srv.port,
        "server_pid": srv.pid,
        "ports": srv.ports,
        "server_pids": srv.pids,
        "cross": ctx.args.cross and len(srv.ports) > 1,
        "db_url": srv.db_url,
        "registration": ctx.registration,
        "region": ctx.region or "local",
        "register_concurrency": ctx.args.register_concurrency,
        "timeout": 60.0,
        "deflate": ctx.args.deflate,
    }
    log = ctx.tmp / f"load-{ctx.runs}.log"
    proc = ctx.children.start(
        [sys.executable, str(BENCH / "route_load.py"), json.dumps(cfg)], log, stdout_pipe=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load generator timed out after {timeout:.0f} s:\n{tail(log)}") from exc
    finally:
        ctx.children.stop(proc)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise BenchError(f"load generator failed (code {proc.returncode}):\n{tail(log)}")


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other work on the machine uses < ``threshold`` cores.

    Returns the cores busy in the last one-second sample.
    """
    deadline = time.monotonic() + max_wait
    waited = False
    while True:
        b0 = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - b0
        if busy < threshold or time.monotonic() >= deadline:
            if waited or busy >= threshold:
                state = "quiet" if busy < threshold else "still busy"
                console.print(f"  [dim]machine {state}: {busy:.2f} cores in use by others[/]")
            return busy
        if not waited:
            console.print(
                f"  [dim]machine busy ({busy:.2f} cores used by other processes); waiting up "
                f"to {max_wait:.0f} s[/]"
            )
            waited = True


# -- the cases --------------------------------------------------------------------------------


def routing_case(
    ctx: Context, kind: str, users: int, window: int, nodes: int = 1
) -> dict[str, Any]:
    a = ctx.args
    cfg = {
        "mode": "route",
        "pairs": users // 2,
        "window": window,
        "seconds": a.seconds,
        "warmup": a.warmup,
        "sealed": kind == "sealed",
    }
    busy_before = wait_quiet(a.quiet_wait) if a.quiet_wait > 0 else float("nan")
    try:
        with server(ctx, kind, nodes) as srv:
            result = run_load(ctx, srv, cfg, timeout=a.seconds + a.warmup + 600)
            result["busy_before"] = busy_before
            result["target"] = kind
            return result
    except BenchError as exc:
        return {
            "target": kind,
            "users": users,
            "window": window,
            "nodes": nodes,
            "failed": str(exc),
        }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (all figures of a row come from one run)."""
    ok = sorted((r for r in runs if "failed" not in r), key=lambda r: float(r["rate"]))
    if not ok:
        return runs[-1]
    chosen = dict(ok[(len(ok) - 1) // 2])
    chosen["runs"] = len(ok)
    chosen["rates"] = [r["rate"] for r in ok]
    return chosen


def idle_case(ctx: Context, kind: str, steps: list[int]) -> dict[str, Any]:
    cfg = {"mode": "idle", "steps": steps, "settle": 3.0, "connect_concurrency": 128}
    try:
        with server(ctx, kind) as srv:
            return run_load(ctx, srv, cfg, timeout=3600)
    except BenchError as exc:
        return {"target": kind, "failed": str(exc), "rows": []}


# -- reporting --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, KeyError, ValueError):
        mem = f"{mem_total_kib() / 1024 / 1024:.1f} GiB"
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
            check=True,
        ).stdout.strip()
    return {
        "commit": commit,
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def mem_total_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise KeyError("MemTotal")


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def _f(x: float | None, fmt: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, fmt)


def _per_env_us(r: dict[str, Any] | None) -> float | None:
    if not r or "failed" in r or not r.get("delivered"):
        return None
    return float(r["server_cpu_s"]) / float(r["delivered"]) * 1e6


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}"


def _cpu(seconds: float, elapsed: float) -> str:
    return f"{seconds:.2f} ({seconds / elapsed:.0%})"


def _others(r: dict[str, Any]) -> float:
    """Everything but the server and the load generator (PostgreSQL and Redis included)."""
    return float(r["other_cpu_s"]) + float(r.get("pg_cpu_s", 0.0) + r.get("redis_cpu_s", 0.0))


ROUTING_HEADERS = [
    "users",
    "window",
    "system",
    "envelopes/s",
    "p50 ms",
    "p99 ms",
    "server CPU s",
    "server CPU µs/env",
    "load CPU s",
    "other CPU s",
    "server peak RSS MiB",
    "notes",
]


def routing_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    by_case: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_case.setdefault((r["users"], r["window"]), {})[r["target"]] = r
    for (users, window), pair in by_case.items():
        for kind in ("baat", "sealed", "relay"):
            found = pair.get(kind)
            if found is None:
                continue
            r = found
            if "failed" in r:
                first = _last_line(r["failed"])
                rows.append([str(users), str(window), kind, "failed", *[""] * 7, first])
                continue
            notes = []
            if r.get("runs", 1) > 1:
                spread = ", ".join(f"{x:,.0f}" for x in r["rates"])
                notes.append(f"median of {r['runs']}: {spread}")
            # Starved (issue 18): the pair with the fewest envelopes got under 25 % of the
            # median pair's.
            if users >= TARGET_FAIR_USERS or r.get("pair_min", 0) < 0.25 * r["pair_median"]:
                starved = r.get("pair_min", 0) < 0.25 * r["pair_median"]
                notes.append(
                    f"{'STARVED: ' if starved else ''}envelopes per pair min "
                    f"{r['pair_min']:,} / median {r['pair_median']:,} / max "
                    f"{r['pair_max']:,}; max latency {r['max_ms']:,.0f} ms"
                )
            stored = r["statuses"].get("stored", 0)
            if stored:
                notes.append(f"{stored} stored")
            if r["errors"]:
                notes.append("errors " + ", ".join(f"{k}={v}" for k, v in r["errors"].items()))
            rows.append(
                [
                    str(users),
                    str(window),
                    {"baat": "Baat", "sealed": "Baat, sealed"}.get(kind, "relay"),
                    _f(r["rate"]),
                    _f(r["p50_ms"], ".2f"),
                    _f(r["p99_ms"], ".2f"),
                    f"{r['server_cpu_s']:.2f} ({r['server_cpu_s'] / r['seconds']:.0%})",
                    _f(_per_env_us(r), ".1f"),
                    f"{r['load_cpu_s']:.2f} ({r['load_cpu_s'] / r['seconds']:.0%})",
                    _cpu(_others(r), r["seconds"]),
                    _f(r["server_rss_peak_kib"] / 1024, ".1f"),
                    "; ".join(notes),
                ]
            )
        b, sealed, y = pair.get("baat"), pair.get("sealed"), pair.get("relay")
        rows += _ratio_row(users, window, "sealed/Baat", sealed, b)
        rows += _ratio_row(users, window, "Baat/relay", b, y)
    return rows


def _ratio_row(
    users: int, window: int, label: str, a: dict[str, Any] | None, b: dict[str, Any] | None
) -> list[list[str]]:
    """The row of ``a``'s figures over ``b``'s, when both cases ran."""
    if not a or not b or "failed" in a or "failed" in b:
        return []
    return [
        [
            str(users),
            str(window),
            label,
            _ratio(a["rate"], b["rate"]),
            _ratio(a["p50_ms"], b["p50_ms"]),
            _ratio(a["p99_ms"], b["p99_ms"]),
            "",
            _ratio(_per_env_us(a), _per_env_us(b)),
            "",
            "",
            _ratio(a["server_rss_peak_kib"], b["server_rss_peak_kib"]),
            "",
        ]
    ]


NODES_HEADERS = [
    "users",
    "window",
    "system",
    "envelopes/s",
    "p50 ms",
    "p99 ms",
    "CPU s per node",
    "PostgreSQL CPU s",
    "Redis CPU s",
    "load CPU s",
    "other CPU s",
    "machine busy",
    "server-side CPU µs/env",
    "notes",
]


def _nodes_name(r: dict[str, Any]) -> str:
    n = int(r.get("nodes", 1))
    name = f"Baat, {n} node{'s' if n > 1 else ''}"
    return name + (", cross" if r.get("cross") else "")


def _server_side_us(r: dict[str, Any]) -> float | None:
    """CPU of the nodes, PostgreSQL and Redis per delivered envelope."""
    if "failed" in r or not r.get("delivered"):
        return None
    total = r["server_cpu_s"] + r["pg_cpu_s"] + r["redis_cpu_s"]
    return float(total) / float(r["delivered"]) * 1e6


def nodes_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    by_case: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in results:
        by_case.setdefault((r["users"], r["window"]), []).append(r)
    cores = os.cpu_count() or 1
    for (users, window), runs in by_case.items():
        for r in runs:
            name = _nodes_name(r)
            if "failed" in r:
                rows.append([str(users), str(window), name, "failed", *[""] * 9])
                rows[-1][-1] = _last_line(r["failed"])
                continue
            el = r["seconds"]
            notes = []
            if r.get("runs", 1) > 1:
                notes.append(
                    f"median of {r['runs']}: " + ", ".join(f"{x:,.0f}" for x in r["rates"])
                )
            stored = r["statuses"].get("stored", 0)
            if stored:
                notes.append(f"{stored:,} stored")
            if r["errors"]:
                notes.append("errors " + ", ".join(f"{k}={v}" for k, v in r["errors"].items()))
            busy = r["server_cpu_s"] + r["pg_cpu_s"] + r["redis_cpu_s"] + r["load_cpu_s"]
            busy += r["other_cpu_s"]
            rows.append(
                [
                    str(users),
                    str(window),
                    name,
                    _f(r["rate"]),
                    _f(r["p50_ms"], ".2f"),
                    _f(r["p99_ms"], ".2f"),
                    " + ".join(f"{c:.2f}" for c in r["node_cpu_s"])
                    + f" ({r['server_cpu_s'] / el:.0%})",
                    _cpu(r["pg_cpu_s"], el),
                    _cpu(r["redis_cpu_s"], el),
                    _cpu(r["load_cpu_s"], el),
                    _cpu(r["other_cpu_s"], el),
                    f"{busy / el / cores:.0%} of {cores}",
                    _f(_server_side_us(r), ".0f"),
                    "; ".join(notes),
                ]
            )
        one = next((r for r in runs if r.get("nodes", 1) == 1 and "failed" not in r), None)
        for r in runs:
            if one is None or r is one or "failed" in r:
                continue
            rows.append(
                [
                    str(users),
                    str(window),
                    f"{_nodes_name(r)} / 1 node",
                    _ratio(r["rate"], one["rate"]),
                    _ratio(r["p50_ms"], one["p50_ms"]),
                    _ratio(r["p99_ms"], one["p99_ms"]),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    _ratio(_server_side_us(r), _server_side_us(one)),
                    "",
                ]
            )
    return rows


NODES_CAPTION = (
    "CPU s: seconds used during the measured interval (share of one core). PostgreSQL: every "
    "process of the cluster; Redis: redis-server (both shared with anything else using "
    "them). other: the rest of the machine and the kernel. machine busy: all of it over all "
    "cores. server-side CPU: nodes + PostgreSQL + Redis per delivered envelope. stored: "
    "SendResults that said 'stored'."
)


def nodes_verdicts(results: list[dict[str, Any]], nodes: int) -> list[str]:
    out: list[str] = []
    for r in results:
        if r["users"] != TARGET_NODES_USERS or r.get("nodes", 1) != nodes or "failed" in r:
            continue
        one = next(
            (
                x
                for x in results
                if (x["users"], x["window"]) == (r["users"], r["window"])
                and x.get("nodes", 1) == 1
                and "failed" not in x
            ),
            None,
        )
        if one is None:
            continue
        speedup = r["rate"] / one["rate"]
        ok = speedup >= TARGET_NODES_SPEEDUP
        out.append(
            f"Target {nodes} nodes >= {TARGET_NODES_SPEEDUP:.1f}x one node at "
            f"{TARGET_NODES_USERS} users, window {r['window']}"
            f"{' (cross)' if r.get('cross') else ''}: measured {r['rate']:,.0f} / "
            f"{one['rate']:,.0f} = {speedup:.2f}x -> {'met' if ok else 'NOT met'}"
        )
    if not out:
        out.append(
            f"Target {nodes} nodes >= {TARGET_NODES_SPEEDUP:.1f}x one node at "
            f"{TARGET_NODES_USERS} users: not measured in this run"
        )
    return out


IDLE_HEADERS = [
    "system",
    "idle connections",
    "server RSS MiB",
    "growth/conn KiB",
    "marginal KiB",
    "connects/s",
    "server CPU ms/connect",
    "notes",
]


def idle_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for res in results:
        name = "Baat" if res["target"] == "baat" else "relay"
        if res.get("failed"):
            rows.append([name, "failed", *[""] * 5, _last_line(res["failed"])])
            continue
        base = res["base_rss_kib"]
        note = ""
        if res["registered"]:
            rate = res["registered"] / max(res["register_s"], 1e-9)
            note = f"after registering {res['registered']:,} accounts ({rate:,.0f}/s)"
        rows.append([name, "0 (baseline)", _f(base / 1024, ".1f"), "", "", "", "", note])
        prev_conns, prev_rss = 0, base
        for row in res["rows"]:
            made = row["connects_per_s"] * row["connect_s"]
            step = row["connections"] - prev_conns
            marginal = (row["rss_kib"] - prev_rss) / step if step > 0 else None
            rows.append(
                [
                    name,
                    f"{row['connections']:,}",
                    _f(row["rss_kib"] / 1024, ".1f"),
                    _f(row["per_conn_kib"], ".1f"),
                    _f(marginal, ".1f"),
                    _f(row["connects_per_s"]),
                    _f(row["connect_cpu_s"] * 1000 / max(1.0, made), ".2f"),
                    "",
                ]
            )
            prev_conns, prev_rss = row["connections"], row["rss_kib"]
        if res.get("failure"):
            rows.append([name, "stopped", *[""] * 5, res["failure"]])
    return rows


ROUTING_CAPTION = (
    "CPU s: seconds used during the measured interval (share of one core); other: every "
    "other process and the kernel meanwhile. stored: SendResults that said 'stored' "
    "(the ack came after the 5 ms grace, so the envelope was written to the database)."
)
IDLE_CAPTION = (
    "growth/conn: (VmRSS - baseline) / connections; marginal: between consecutive counts. "
    "Kernel socket buffers are not part of RSS."
)


def show(title: str, headers: list[str], rows: list[list[str]], caption: str = "") -> None:
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h in ("system", "notes") else "right")
    for row in rows:
        table.add_row(*row, end_section=row[2] == "Baat/relay" or row[2].endswith("/ 1 node"))
    console.print(table)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fairness_verdicts(routing: list[dict[str, Any]]) -> list[str]:
    """Issue 18's targets at 500 users: no starved pair, p99 <= 1.5x and throughput >= 0.8x
    the relay's in the same run."""
    out: list[str] = []
    found = {(r["target"], r["window"]): r for r in routing if r["users"] == TARGET_FAIR_USERS}
    for window in sorted({w for _, w in found}):
        baat, relay = found.get(("baat", window)), found.get(("relay", window))
        if not baat or "failed" in baat:
            continue
        fair = baat["pair_min"] >= 0.25 * baat["pair_median"]
        line = (
            f"Target {TARGET_FAIR_USERS} users, window {window}: no starved pair (fewest >= 25 % "
            f"of median): {baat['pair_min']:,} / {baat['pair_median']:,} -> "
            f"{'met' if fair else 'NOT met'}"
        )
        if relay and "failed" not in relay:
            p99 = baat["p99_ms"] / relay["p99_ms"]
            rate = baat["rate"] / relay["rate"]
            line += (
                f"; p99 {p99:.2f}x the relay's (<= 1.5x) -> {'met' if p99 <= 1.5 else 'NOT met'}"
                f"; throughput {rate:.2f}x (>= 0.8x) -> {'met' if rate >= 0.8 else 'NOT met'}"
            )
        out.append(line)
    return out


def verdicts(routing: list[dict[str, Any]], idle: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    case = next(
        (
            r
            for r in routing
            if r["target"] == "baat"
            and r["users"] == TARGET_USERS
            and r["window"] == TARGET_WINDOW
            and "failed" not in r
        ),
        None,
    )
    if case is None:
        out.append(
            f"Target {TARGET_USERS} users, window {TARGET_WINDOW}: >= {TARGET_RATE:,.0f} "
            f"envelopes/s with p99 < {TARGET_P99_MS:.0f} ms: not measured in this run"
        )
    else:
        ok_rate = case["rate"] >= TARGET_RATE
        ok_p99 = case["p99_ms"] < TARGET_P99_MS
        out.append(
            f"Target {TARGET_USERS} users, window {TARGET_WINDOW}: >= {TARGET_RATE:,.0f} "
            f"envelopes/s: measured {case['rate']:,.0f} -> {'met' if ok_rate else 'NOT met'}; "
            f"p99 < {TARGET_P99_MS:.0f} ms: measured {case['p99_ms']:.2f} ms -> "
            f"{'met' if ok_p99 else 'NOT met'}"
        )
    for r in routing:
        if r["target"] != "sealed" or "failed" in r:
            continue
        base = next(
            (
                b
                for b in routing
                if b["target"] == "baat"
                and (b["users"], b["window"]) == (r["users"], r["window"])
                and "failed" not in b
            ),
            None,
        )
        if base is not None:
            ratio = r["rate"] / base["rate"]
            out.append(
                f"Target sealed >= {TARGET_SEALED_RATIO}x unsealed ({r['users']} users, window "
                f"{r['window']}): {r['rate']:,.0f} vs {base['rate']:,.0f} envelopes/s = "
                f"{ratio:.2f}x -> {'met' if ratio >= TARGET_SEALED_RATIO else 'NOT met'}"
            )
    out += fairness_verdicts(routing)
    baat_idle = next((r for r in idle if r["target"] == "baat" and r["rows"]), None)
    if baat_idle is None:
        out.append(f"Target idle connection <= {TARGET_IDLE_KIB:.0f} KiB: not measured")
    else:
        last = baat_idle["rows"][-1]
        ok = last["per_conn_kib"] <= TARGET_IDLE_KIB
        out.append(
            f"Target idle connection <= {TARGET_IDLE_KIB:.0f} KiB: measured "
            f"{last['per_conn_kib']:.1f} KiB at {last['connections']:,} connections -> "
            f"{'met' if ok else 'NOT met'}"
        )
    return out


# -- main ---------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from exc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Baat routing benchmark (throughput, latency, CPU, memory) with a relay "
        "ceiling.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--users",
        type=_int_list,
        default=None,
        help="users per case (even); default 2,50,500, or with --nodes the cases "
        + ", ".join(f"{u}x{w}" for u, w in NODES_CASES)
        + " (users x window)",
    )
    p.add_argument(
        "--windows", type=_int_list, default=None, help="sends outstanding/sender; default 1,8"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--db", default=None, help="PostgreSQL server URL (fresh database per case)")
    p.add_argument(
        "--idle",
        type=_int_list,
        default=[1000, 5000, 10000, 19000],
        help="idle-connection counts (0 skips; capped by the open-file limit)",
    )
    p.add_argument("--only", choices=("all", "routing", "idle"), default="all")
    p.add_argument(
        "--sealed", action="store_true", help="also run each case with sealed sends (issue 16)"
    )
    p.add_argument("--skip-relay", action="store_true", help="measure Baat only")
    p.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate, as the websockets library (baat.client) does "
        "by default; the relay declines it",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="server nodes; N > 1 measures each routing case on 1 node and on N nodes "
        "(PostgreSQL and the Redis bus; no relay, no idle sweep)",
    )
    p.add_argument("--bus", default=DEFAULT_BUS, help="Redis URL for --nodes > 1")
    p.add_argument(
        "--cross",
        action="store_true",
        help="with --nodes: each receiver on the node after its sender's (every envelope "
        "crosses the bus) instead of both on one node",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per routing case; the table shows the run with the median throughput",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each routing case, wait up to this long for other processes to go idle",
    )
    p.add_argument("--region", default=None, help="--region for baat serve (default: in)")
    p.add_argument("--register-concurrency", type=int, default=16)
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    p.add_argument("--markdown", type=Path, default=None, help="also write Markdown tables here")
    args = p.parse_args(argv)
    if args.nodes < 1:
        p.error("--nodes must be >= 1")
    if args.nodes > 1:
        if args.only == "idle":
            p.error("--nodes > 1 measures routing only")
        if args.db is None:
            args.db = DEFAULT_PG
            args.db_defaulted = True
    if args.users is None and args.windows is None and args.nodes > 1:
        args.cases = list(NODES_CASES)
    else:
        users = args.users or [2, 50, 500]
        windows = args.windows or [1, 8]
        args.cases = [(u, w) for u in users for w in windows]
    if any(u < 2 or u % 2 for u, _ in args.cases):
        p.error("--users: each count must be an even number >= 2 (senders and receivers pair)")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if any(w < 1 for _, w in args.cases):
        p.error("--windows: each window must be >= 1")
    if args.db and not args.db.startswith(("postgresql://", "postgres://")):
        p.error("--db: only postgresql://USER@HOST:PORT/DB is supported (SQLite is the default)")
    return args


def registration_mode() -> str:
    """``http`` when ``baat serve`` can lift its registration limit, else ``direct``."""
    out = subprocess.run(
        [sys.executable, "-m", "baat", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return "http" if "--registrations-per-minute" in out.stdout else "direct"


def idle_steps(requested: list[int], fd_limit: int) -> tuple[list[int], str]:
    cap = fd_limit - FD_RESERVE
    steps = sorted({n for n in requested if 0 < n <= cap})
    note = ""
    if any(n > cap for n in requested):
        note = f"counts above {cap:,} dropped: open-file limit {fd_limit:,} per process"
        if not steps or steps[-1] < cap:
            steps.append(cap)
    return steps, note


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Also when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd_limit = raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="baat-bench-route-"))
    ctx = Context(args, tmp, region=args.region)
    routing: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    started = time.monotonic()
    code = 0
    kinds = ["baat"] if args.skip_relay else ["baat", "relay"]
    info = machine()
    try:
        ctx.registration = registration_mode()
        console.print(
            f"[bold]Baat routing benchmark[/] at {info['commit']}: {info['cpus']} CPUs "
            f"({info['cpu_model']}), "
            f"{info['memory']}, Python {info['python']}, Linux {info['kernel']}, "
            f"open files {fd_limit:,}, storage {'PostgreSQL' if args.db else 'SQLite'}, "
            f"registration {'over HTTP' if ctx.registration == 'http' else 'direct to the DB'}"
        )
        if ctx.registration == "direct":
            console.print(
                "[yellow]baat serve has no --registrations-per-minute: accounts are created "
                "with the server's registration rule directly in its database[/]"
            )
        if getattr(args, "db_defaulted", False):
            console.print(f"[yellow]--nodes {args.nodes} needs PostgreSQL: using --db {args.db}[/]")
        if args.nodes > 1:
            console.print(
                f"  {args.nodes} nodes on --bus {args.bus}, node ids {ctx.node_prefix}-*, "
                f"{'receiver on the next node (--cross)' if args.cross else 'pair i on node i % N'}"
            )
        if args.only in ("all", "routing"):
            # With --nodes N: the same case on one node, then on N nodes.
            plan = [("baat", 1)] if args.nodes == 1 else [("baat", 1), ("baat", args.nodes)]
            if args.nodes == 1 and args.sealed:
                plan.append(("sealed", 1))
            if args.nodes == 1 and not args.skip_relay:
                plan.append(("relay", 1))
            for users, window in args.cases:
                for kind, nodes in plan:
                    runs = []
                    label = kind if args.nodes == 1 else f"{nodes} node{'s' if nodes > 1 else ''}"
                    for _ in range(args.repeat):
                        r = routing_case(ctx, kind, users, window, nodes)
                        runs.append(r)
                        if "failed" in r:
                            console.print(
                                f"  {label:7} users={users} window={window}: FAILED\n{r['failed']}"
                            )
                            continue
                        extra = ""
                        if args.nodes > 1:
                            extra = (
                                f"  (per node {' + '.join(f'{c:.2f}' for c in r['node_cpu_s'])}"
                                f", PostgreSQL {r['pg_cpu_s']:.2f} s, Redis "
                                f"{r['redis_cpu_s']:.2f} s)"
                            )
                        console.print(
                            f"  {label:7} users={users:<4} window={window}: "
                            f"{r['rate']:>9,.0f} env/s  p50 {r['p50_ms']:.2f} ms  "
                            f"p99 {r['p99_ms']:.2f} ms  server CPU "
                            f"{r['server_cpu_s']:.2f} s{extra}  load {r['load_cpu_s']:.2f} s"
                            f"  others {r['other_cpu_s']:.2f} s"
                        )
                    routing.append(median_run(runs))
        steps, note = idle_steps(args.idle, fd_limit)
        if args.only in ("all", "idle") and steps and args.nodes == 1:
            if note:
                console.print(f"[yellow]idle: {note}[/]")
            for kind in kinds:
                console.print(f"  {kind}: opening up to {steps[-1]:,} idle connections ...")
                idle.append(idle_case(ctx, kind, steps))
    except KeyboardInterrupt:
        console.print("[red]interrupted: stopping the processes started by the bench[/]")
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctx.children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if code:
        return code

    md: list[str] = [
        f"Measured at `{info['commit']}` with `python bench/route.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`: {info['cpus']} CPUs "
        f"({info['cpu_model']}), {info['memory']}, Python {info['python']}, Linux "
        f"{info['kernel']}, storage {'PostgreSQL' if args.db else 'SQLite'}.",
        "",
    ]
    if routing and args.nodes > 1:
        rows = nodes_rows(routing)
        title = (
            f"Routing on 1 and {args.nodes} nodes (PostgreSQL, Redis bus"
            f"{', receivers on the next node' if args.cross else ''}): 256-byte envelopes, "
            f"{args.seconds:g} s per case after {args.warmup:g} s warm-up"
        )
        show(title, NODES_HEADERS, rows, NODES_CAPTION)
        md += [f"**{title}**", "", markdown(NODES_HEADERS, rows), "", NODES_CAPTION, ""]
    elif routing:
        rows = routing_rows(routing)
        title = (
            f"Routing: 256-byte envelopes, {args.seconds:g} s per case after "
            f"{args.warmup:g} s warm-up"
        )
        show(title, ROUTING_HEADERS, rows, ROUTING_CAPTION)
        md += [f"**{title}**", "", markdown(ROUTING_HEADERS, rows), "", ROUTING_CAPTION, ""]
    if idle:
        rows = idle_rows(idle)
        title = "Idle authenticated connections: server RSS growth (VmRSS - baseline) / n"
        show(title, IDLE_HEADERS, rows, IDLE_CAPTION)
        md += [f"**{title}**", "", markdown(IDLE_HEADERS, rows), "", IDLE_CAPTION, ""]
    lines = nodes_verdicts(routing, args.nodes) if args.nodes > 1 else verdicts(routing, idle)
    for line in lines:
        console.print(line)
    console.print(f"total {time.monotonic() - started:.0f} s")
    md += [f"- {line}" for line in lines]
    if args.markdown:
        args.markdown.write_text("\n".join(md) + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "args": vars(args) | {"json": None, "markdown": None},
                    "routing": routing,
                    "idle": idle,
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
