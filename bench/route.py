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
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _route_report import (
    IDLE_CAPTION,
    IDLE_HEADERS,
    NODES_CAPTION,
    NODES_HEADERS,
    ROUTING_CAPTION,
    ROUTING_HEADERS,
    idle_rows,
    machine,
    markdown,
    nodes_rows,
    nodes_verdicts,
    routing_rows,
    show,
    verdicts,
)
from _route_run import (
    BENCH,
    ROOT,
    UNLIMITED,
    BenchError,
    Context,
    Server,
    console,
    free_port,
    idle_case,
    median_run,
    routing_case,
    run_load,
    server,
    tail,
    wait_quiet,
)
from route_load import raise_nofile

__all__ = [
    "BENCH",
    "ROOT",
    "UNLIMITED",
    "BenchError",
    "Context",
    "Server",
    "console",
    "free_port",
    "idle_case",
    "machine",
    "markdown",
    "raise_nofile",
    "registration_mode",
    "routing_case",
    "run_load",
    "server",
    "show",
    "tail",
    "wait_quiet",
]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_BUS = "redis://127.0.0.1:6379/0"
NODES_CASES = [(500, 1), (500, 2), (50, 1)]
FD_RESERVE = 256


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
