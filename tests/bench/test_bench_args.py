"""The benches that reuse ``bench/route.py``'s helpers give them every argument they read:
``bench/peers.py`` once stopped at its first Baat case when ``--sealed`` was added there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(autouse=True)
def _bench_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize("name", ["fanout", "peers"])
def test_a_baat_server_command_can_be_built_from_the_bench_arguments(
    name: str, tmp_path: Path
) -> None:
    module = __import__(name)
    run = sys.modules["_route_run"]
    ctx = run.Context(module.parse_args([]), tmp_path)
    cmd = run._node_cmd(ctx, tmp_path / "data", 8000)
    assert cmd[1:4] == ["-m", "baat", "serve"] and "--region" in cmd


def test_the_routing_verdict_is_the_ratio_to_the_relay_and_the_p99() -> None:
    report = __import__("_route_report")
    rows = [
        {"target": "baat", "users": 50, "window": 1, "rate": 17_000.0, "p99_ms": 2.5},
        {"target": "relay", "users": 50, "window": 1, "rate": 20_000.0, "p99_ms": 1.0},
    ]
    line = report.verdicts(rows, [])[0]
    assert "0.85x (>= 0.9x) -> NOT met" in line and "p99 2.50 ms (< 2 ms) -> NOT met" in line
    rows[0].update(rate=19_000.0, p99_ms=1.5)
    line = report.verdicts(rows, [])[0]
    assert "0.95x (>= 0.9x) -> met" in line and "-> NOT met" not in line


def test_the_idle_bench_lifts_every_limit_its_registrations_meet(tmp_path: Path) -> None:
    """``bench/idle.py`` registers 19,000 accounts from one address: the per-address
    registration limit (10 a minute by default) stopped it at the eleventh."""
    idle = __import__("idle")
    cmd = idle.server_command(tmp_path, 8000)
    serve_help = subprocess.run(
        [sys.executable, "-m", "baat", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--registrations-per-minute", "--registrations-per-address"):
        assert flag in serve_help and flag in cmd
        assert int(cmd[cmd.index(flag) + 1]) >= 19_000
