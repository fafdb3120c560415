"""Group fan-out against one-to-one routing, server CPU per envelope, in one run.

    .venv/bin/python bench/fanout.py                      # ~2 minutes
    .venv/bin/python bench/fanout.py --members 256 --ack-ms 0,50 --holds 2,0

For each case a fresh ``baat serve`` (SQLite) and a fresh load generator
(``bench/route_load.py``; the group workload is ``bench/_group_load.py``): first the
one-to-one case (``--pairs-users`` users in pairs, window 1, as ``bench/route.py``), then
for every ``--holds`` value (the server's ``--fanout-hold``; 0 is the old rule, the 5 ms
ack grace for every envelope) and every ``--ack-ms`` value (how long each member takes to
acknowledge), ``--senders`` devices sending to a group of ``--members`` devices, one
``Send`` with an envelope per member, window 1. The table gives the server's CPU per
delivered envelope and its ratio to the one-to-one case's (issue 18's target: at most
1.3x at 256 members), and how many envelopes were written to the database.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _route_run import helper_defaults
from route import (
    BenchError,
    Context,
    console,
    machine,
    markdown,
    raise_nofile,
    registration_mode,
    routing_case,
    run_load,
    server,
    show,
    wait_quiet,
)

TARGET_RATIO = 1.3
HEADERS = [
    "case",
    "hold s",
    "member ack ms",
    "envelopes/s",
    "p50 ms",
    "p99 ms",
    "server CPU s",
    "server CPU µs/env",
    "vs one-to-one",
    "stored",
    "other CPU s",
]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=256)
    p.add_argument("--senders", type=int, default=2)
    p.add_argument("--holds", type=_floats, default=[2.0, 0.0], help="--fanout-hold values")
    p.add_argument("--ack-ms", type=_floats, default=[0.0, 50.0], help="member ack delays")
    p.add_argument("--pairs-users", type=int, default=50, help="users of the one-to-one case")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--quiet-wait", type=float, default=30.0)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    return helper_defaults(args)


def group_case(ctx: Context, hold: float, ack_ms: float) -> dict[str, Any]:
    a = ctx.args
    cfg = {
        "mode": "group",
        "members": a.members,
        "senders": a.senders,
        "window": 1,
        "ack_ms": ack_ms,
        "seconds": a.seconds,
        "warmup": a.warmup,
    }
    if a.quiet_wait > 0:
        wait_quiet(a.quiet_wait)
    ctx.serve_extra = ["--fanout-hold", str(hold)]
    try:
        with server(ctx, "baat") as srv:
            result = run_load(ctx, srv, cfg, timeout=a.seconds + a.warmup + 600)
    except BenchError as exc:
        return {"failed": str(exc), "hold": hold, "ack_ms": ack_ms}
    finally:
        ctx.serve_extra = []
    result["hold"] = hold
    return result


def per_env_us(r: dict[str, Any]) -> float:
    return float(r["server_cpu_s"]) / max(1, int(r["delivered"])) * 1e6


def row(name: str, r: dict[str, Any], base_us: float | None) -> list[str]:
    if "failed" in r:
        return [name, str(r.get("hold", "")), str(r.get("ack_ms", "")), "failed"] + [""] * 7
    us = per_env_us(r)
    stored = r["statuses"].get("stored", 0)
    total = sum(r["statuses"].values())
    return [
        name,
        f"{r['hold']:g}" if "hold" in r else "",
        f"{r['ack_ms']:g}" if "ack_ms" in r else "0",
        f"{r['rate']:,.0f}",
        f"{r['p50_ms']:.2f}",
        f"{r['p99_ms']:.2f}",
        f"{r['server_cpu_s']:.2f} ({r['server_cpu_s'] / r['seconds']:.0%})",
        f"{us:.1f}",
        f"{us / base_us:.2f}x" if base_us else "1.00x",
        f"{stored:,} of {total:,}",
        f"{r['other_cpu_s']:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="baat-bench-fanout-"))
    ctx = Context(args, tmp)
    info = machine()
    started = time.monotonic()
    rows: list[list[str]] = []
    verdicts: list[str] = []
    try:
        ctx.registration = registration_mode()
        console.print(
            f"[bold]Fan-out benchmark[/] at {info['commit']}: {info['cpus']} CPUs, "
            f"{args.members} members, {args.senders} senders, window 1"
        )
        base = routing_case(ctx, "baat", args.pairs_users, 1)
        if "failed" in base:
            console.print(f"[red]one-to-one case failed[/]\n{base['failed']}")
            return 1
        base_us = per_env_us(base)
        console.print(f"  one-to-one, {args.pairs_users} users: {base_us:.1f} µs/env")
        rows.append(row(f"one-to-one, {args.pairs_users} users", base, None))
        for hold in args.holds:
            for ack_ms in args.ack_ms:
                r = group_case(ctx, hold, ack_ms)
                name = f"group of {args.members}"
                rows.append(row(name, r, base_us))
                if "failed" in r:
                    console.print(f"  {name} hold {hold:g}: FAILED\n{r['failed']}")
                    continue
                us = per_env_us(r)
                console.print(
                    f"  {name}, hold {hold:g} s, members ack after {ack_ms:g} ms: "
                    f"{r['rate']:,.0f} env/s, {us:.1f} µs/env ({us / base_us:.2f}x), "
                    f"stored {r['statuses'].get('stored', 0):,}"
                )
                if hold > 0:
                    ok = us / base_us <= TARGET_RATIO
                    verdicts.append(
                        f"Target group of {args.members} (members ack after {ack_ms:g} ms): "
                        f"server CPU per envelope <= {TARGET_RATIO}x one-to-one: measured "
                        f"{us / base_us:.2f}x -> {'met' if ok else 'NOT met'}"
                    )
    except KeyboardInterrupt:
        console.print("[red]interrupted: stopping the processes started by the bench[/]")
        return 130
    finally:
        ctx.children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    title = f"Group fan-out and one-to-one: server CPU per envelope, {args.seconds:g} s per case"
    show(title, HEADERS, rows)
    for line in verdicts:
        console.print(line)
    console.print(f"total {time.monotonic() - started:.0f} s")
    if args.markdown:
        args.markdown.write_text(
            f"**{title}**\n\n{markdown(HEADERS, rows)}\n\n" + "".join(f"- {v}\n" for v in verdicts)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
