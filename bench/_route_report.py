"""Tables and verdicts of ``bench/route.py``: rows, ratios, Markdown, and each target of
issue 18 checked against the figures of the run that printed it.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
from typing import Any

from rich.table import Table

from _route_run import ROOT, console

TARGET_RELAY_RATIO = 0.9  # 50 users, window 1: at least 0.9x the relay
TARGET_P99_MS = 2.0  # 50 users, window 1: p99 under 2 ms
TARGET_IDLE_KIB = 10.0
TARGET_USERS = 50
TARGET_WINDOW = 1
TARGET_NODES_SPEEDUP = 1.6
TARGET_NODES_USERS = 500
TARGET_SEALED_RATIO = 0.9
TARGET_FAIR_USERS = 500


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
    found = {
        r["target"]: r
        for r in routing
        if (r["users"], r["window"]) == (TARGET_USERS, TARGET_WINDOW) and "failed" not in r
    }
    case, relay = found.get("baat"), found.get("relay")
    name = f"Target {TARGET_USERS} users, window {TARGET_WINDOW}"
    if case is None:
        out.append(f"{name}: >= {TARGET_RELAY_RATIO}x the relay, p99 < 2 ms: not measured")
    else:
        ok_p99 = case["p99_ms"] < TARGET_P99_MS
        line = f"{name}: "
        if relay is not None:
            ratio = case["rate"] / relay["rate"]
            line += (
                f"{case['rate']:,.0f} vs the relay's {relay['rate']:,.0f} envelopes/s = "
                f"{ratio:.2f}x (>= {TARGET_RELAY_RATIO}x) -> "
                f"{'met' if ratio >= TARGET_RELAY_RATIO else 'NOT met'}; "
            )
        line += (
            f"p99 {case['p99_ms']:.2f} ms (< {TARGET_P99_MS:.0f} ms) -> "
            f"{'met' if ok_p99 else 'NOT met'}"
        )
        out.append(line)
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
