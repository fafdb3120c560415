"""Process control for ``bench/route.py`` (and ``bench/fanout.py``, ``bench/peers.py``): the
servers of a case, the load generator, waiting for a quiet machine, one routing or idle case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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

from route_load import machine_busy_seconds

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
UNLIMITED = "1000000000"

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=180)


def helper_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in what this module's helpers read from ``route.py``'s arguments, for a bench with
    arguments of its own (``bench/fanout.py``, ``bench/peers.py``): one SQLite node, clients
    without deflate, unsealed sends."""
    defaults = {
        "db": None,
        "bus": None,
        "cross": False,
        "deflate": False,
        "sealed": False,
        "register_concurrency": 16,
    }
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


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
