"""Baat next to ejabberd, Prosody and the relay, with the same load generator, in one run.

    .venv/bin/python bench/peers.py                       # 2, 50, 500 users x windows 1, 8
    .venv/bin/python bench/peers.py --users 50 --windows 1 --seconds 5 --idle 0

1. Installs Debian's ``ejabberd`` and ``prosody`` with apt-get if either is missing (the
   packages' own services are not used).
2. Starts each with the configuration kept in ``bench/peers/`` (loopback only, no TLS, no
   traffic shaping, offline storage on), as the packages' users, on a free port, with its
   data in a temporary directory; accounts are registered in-band before each case.
3. Drives Baat, ejabberd, Prosody and the relay with ``bench/route_load.py``: the same
   pairs, windows and 256-byte bodies, both ends in one process and one clock. For XMPP a
   send's slot frees on the receiver's XEP-0184 receipt (``bench/_xmpp.py`` says why).
   Baat and the relay get a fresh server per case, as in ``bench/route.py``; ejabberd and
   Prosody one server per system for the run (fresh accounts per case).
4. Prints one table with every system per case and Baat's ratios to each, then the idle
   memory per authenticated connection (server RSS growth over ``--idle`` connections).
5. Stops every process it started, on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _route_run import helper_defaults
from route import (
    BENCH,
    BenchError,
    Context,
    Server,
    console,
    free_port,
    idle_case,
    machine,
    markdown,
    raise_nofile,
    registration_mode,
    routing_case,
    run_load,
    show,
    tail,
    wait_quiet,
)
from route_load import proc_status_kib

PEERS = BENCH / "peers"
SYSTEMS = ("baat", "ejabberd", "prosody", "relay")
DOMAIN = "localhost"


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=_int_list, default=[2, 50, 500])
    p.add_argument("--windows", type=_int_list, default=[1, 8])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--idle", type=int, default=2000, help="idle connections (0 skips)")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--quiet-wait", type=float, default=30.0)
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--no-install", action="store_true", help="fail instead of apt-get")
    args = p.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    return helper_defaults(args)


# -- installing and running the XMPP servers ---------------------------------------------------


def ensure_installed(no_install: bool) -> None:
    missing = [
        pkg
        for pkg, exe in (("ejabberd", "ejabberdctl"), ("prosody", "prosody"))
        if not shutil.which(exe)
    ]
    if not missing:
        return
    if no_install:
        raise BenchError(f"not installed: {', '.join(missing)}")
    console.print(f"  installing {', '.join(missing)} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (by parent pid), nearest first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"exited early (code {proc.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise BenchError(f"did not listen on {port}:\n{tail(log)}")


def _owned_dir(parent: Path, name: str, user: str) -> Path:
    path = parent / name
    path.mkdir(parents=True)
    parent.chmod(0o755)
    shutil.chown(path, user, user)
    return path


@contextlib.contextmanager
def xmpp_server(ctx: Context, kind: str) -> Iterator[Server]:
    """ejabberd or Prosody on a free loopback port, as its package's user."""
    port = free_port()
    work = _owned_dir(ctx.tmp, f"{kind}-{secrets.token_hex(3)}", kind)
    log = work / "console.log"
    if kind == "ejabberd":
        conf = work / "conf"
        conf.mkdir()
        text = (PEERS / "ejabberd.yml").read_text().replace("@PORT@", str(port))
        (conf / "ejabberd.yml").write_text(text)
        if Path("/etc/ejabberd/inetrc").exists():
            shutil.copy("/etc/ejabberd/inetrc", conf / "inetrc")
        for sub in ("spool", "logs"):
            _owned_dir(work, sub, kind)
        shutil.chown(conf, kind, kind)
        node = f"bench{secrets.token_hex(3)}@localhost"
        cmd = [*_as_user("ejabberd"), "ejabberdctl", "--node", node]
        cmd += ["--config-dir", str(conf), "--spool", str(work / "spool")]
        cmd += ["--logs", str(work / "logs"), "foreground"]
        engine = "beam.smp"
    else:
        text = (PEERS / "prosody.cfg.lua").read_text()
        text = text.replace("@PORT@", str(port)).replace("@DIR@", str(work))
        (work / "prosody.cfg.lua").write_text(text)
        _owned_dir(work, "data", kind)
        cmd = [*_as_user("prosody"), "prosody", "-F"]
        cmd += ["--config", str(work / "prosody.cfg.lua")]
        engine = "lua"
    epmd_before = _pids_of("epmd")
    proc = ctx.children.start(cmd, log)
    try:
        _wait_port(port, proc, log)
        found = [p for p in descendants(proc.pid) if _comm(p).startswith(engine)]
        if not found:
            raise BenchError(f"{kind}: no {engine} process under {proc.pid}")
        yield Server(kind, found[0], port, "", log, [found[0]], [port])
    finally:
        below = descendants(proc.pid)
        ctx.children.stop(proc)
        for pid in below:  # whatever runuser did not take with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # An epmd that the Erlang VM started for itself (none was running before).
        for pid in _pids_of("epmd") - epmd_before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _as_user(user: str) -> list[str]:
    """Run as ``user`` with the open-file limit raised to the hard one: runuser's PAM
    session resets it to 1,024, which the idle sweep would exceed."""
    return ["runuser", "-u", user, "--", "sh", "-c", 'ulimit -n "$(ulimit -Hn)"; exec "$@"', "sh"]


def _pids_of(name: str) -> set[int]:
    return {int(e) for e in os.listdir("/proc") if e.isdigit() and _comm(int(e)) == name}


def xmpp_case(ctx: Context, srv: Server, users: int, window: int) -> dict[str, Any]:
    a = ctx.args
    if a.quiet_wait > 0:
        wait_quiet(a.quiet_wait)
    cfg = {
        "mode": "route",
        "pairs": users // 2,
        "window": window,
        "seconds": a.seconds,
        "warmup": a.warmup,
        "xmpp_domain": DOMAIN,
        "run_id": f"r{secrets.token_hex(3)}",
        "connect_concurrency": 32,
    }
    try:
        return run_load(ctx, srv, cfg, timeout=a.seconds + a.warmup + 600)
    except BenchError as exc:
        return {"target": srv.kind, "users": users, "window": window, "failed": str(exc)}


def xmpp_idle(ctx: Context, srv: Server, n: int) -> dict[str, Any]:
    cfg = {
        "mode": "idle",
        "steps": [n],
        "settle": 3.0,
        "connect_concurrency": 64,
        "xmpp_domain": DOMAIN,
        "run_id": f"i{secrets.token_hex(3)}",
    }
    try:
        return run_load(ctx, srv, cfg, timeout=1800)
    except BenchError as exc:
        return {"target": srv.kind, "failed": str(exc), "rows": []}


# -- the table ---------------------------------------------------------------------------------

HEADERS = [
    "users",
    "window",
    "system",
    "envelopes/s",
    "p50 ms",
    "p99 ms",
    "server CPU µs/env",
    "pairs min/median",
    "notes",
]
IDLE_HEADERS = ["system", "connections", "server RSS MiB", "KiB per connection", "notes"]


def _us(r: dict[str, Any]) -> float:
    return float(r["server_cpu_s"]) / max(1, int(r["delivered"])) * 1e6


def rows_for(
    results: dict[tuple[int, int, str], dict[str, Any]], users: int, window: int
) -> list[list[str]]:
    rows: list[list[str]] = []
    baat = results.get((users, window, "baat"))
    for kind in SYSTEMS:
        r = results.get((users, window, kind))
        if r is None:
            continue
        if "failed" in r:
            rows.append(
                [str(users), str(window), kind, "failed", "", "", "", "", tail_line(r["failed"])]
            )
            continue
        notes = []
        if kind in ("ejabberd", "prosody"):
            notes.append("slot frees on the XEP-0184 receipt")
        if r.get("errors"):
            notes.append("errors " + ", ".join(f"{k}={v}" for k, v in r["errors"].items()))
        rows.append(
            [
                str(users),
                str(window),
                kind,
                f"{r['rate']:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{_us(r):.1f}",
                f"{r['pair_min']:,} / {r['pair_median']:,}",
                "; ".join(notes),
            ]
        )
    if baat and "failed" not in baat:
        for kind in SYSTEMS[1:]:
            r = results.get((users, window, kind))
            if not r or "failed" in r or not r.get("rate"):
                continue
            rows.append(
                [
                    str(users),
                    str(window),
                    f"Baat/{kind}",
                    f"{baat['rate'] / r['rate']:.2f}",
                    f"{baat['p50_ms'] / r['p50_ms']:.2f}",
                    f"{baat['p99_ms'] / r['p99_ms']:.2f}",
                    f"{_us(baat) / _us(r):.2f}",
                    "",
                    "",
                ]
            )
    return rows


def tail_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1][:80] if lines else ""


def idle_rows(idle: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for kind in SYSTEMS:
        r = idle.get(kind)
        if r is None:
            continue
        if "failed" in r or not r["rows"]:
            rows.append(
                [kind, "failed", "", "", tail_line(r.get("failed") or r.get("failure", ""))]
            )
            continue
        last = r["rows"][-1]
        rows.append(
            [
                kind,
                f"{last['connections']:,}",
                f"{last['rss_kib'] / 1024:.1f}",
                f"{last['per_conn_kib']:.1f}",
                f"baseline {r['base_rss_kib'] / 1024:.1f} MiB",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="baat-bench-peers-"))
    ctx = Context(args, tmp)
    info = machine()
    started = time.monotonic()
    results: dict[tuple[int, int, str], dict[str, Any]] = {}
    idle: dict[str, dict[str, Any]] = {}
    cases = [(u, w) for u in args.users for w in args.windows]
    try:
        if {"ejabberd", "prosody"} & set(args.systems):
            ensure_installed(args.no_install)
        ctx.registration = registration_mode()
        console.print(
            f"[bold]Peers benchmark[/] at {info['commit']}: {info['cpus']} CPUs "
            f"({info['cpu_model']}), systems {', '.join(args.systems)}"
        )
        for kind in args.systems:
            if kind in ("baat", "relay"):
                for users, window in cases:
                    r = routing_case(ctx, kind, users, window)
                    results[(users, window, kind)] = r
                    _say(kind, users, window, r)
                if args.idle:
                    idle[kind] = idle_case(ctx, kind, [args.idle])
                continue
            with xmpp_server(ctx, kind) as srv:
                for users, window in cases:
                    r = xmpp_case(ctx, srv, users, window)
                    results[(users, window, kind)] = r
                    _say(kind, users, window, r)
                if args.idle:
                    idle[kind] = xmpp_idle(ctx, srv, args.idle)
                    idle[kind]["engine_rss_kib"] = proc_status_kib(srv.pid, "VmRSS")
    except KeyboardInterrupt:
        console.print("[red]interrupted: stopping the processes started by the bench[/]")
        return 130
    except (BenchError, subprocess.CalledProcessError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctx.children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = [row for users, window in cases for row in rows_for(results, users, window)]
    title = f"Routing, 256-byte bodies, {args.seconds:g} s per case after {args.warmup:g} s warm-up"
    show(title, HEADERS, rows)
    given = argv if argv is not None else sys.argv[1:]
    md = [
        f"Measured at `{info['commit']}` with `python bench/peers.py {' '.join(given)}`.",
        "",
        f"**{title}**",
        "",
        markdown(HEADERS, rows),
        "",
    ]
    if idle:
        irows = idle_rows(idle)
        ititle = f"Idle authenticated connections ({args.idle:,}): server RSS growth per connection"
        show(ititle, IDLE_HEADERS, irows)
        md += [f"**{ititle}**", "", markdown(IDLE_HEADERS, irows), ""]
    console.print(f"total {time.monotonic() - started:.0f} s")
    if args.markdown:
        args.markdown.write_text("\n".join(md) + "\n")
    return 0


def _say(kind: str, users: int, window: int, r: dict[str, Any]) -> None:
    if "failed" in r:
        console.print(f"  {kind:8} users={users:<4} window={window}: FAILED\n{r['failed']}")
        return
    console.print(
        f"  {kind:8} users={users:<4} window={window}: {r['rate']:>9,.0f} env/s  "
        f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  {_us(r):.1f} µs/env  "
        f"pairs {r['pair_min']:,}/{r['pair_median']:,}  others {r['other_cpu_s']:.2f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
