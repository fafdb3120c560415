"""Run the real ``baat`` command in a subprocess against a profile directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PASS = "correct horse battery staple"


def baat(
    profile: Path, *args: str, check: bool = True, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``baat ARGS`` with ``profile`` and its passphrase in the environment."""
    env = {**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    proc = subprocess.run(
        [sys.executable, "-m", "baat", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"baat {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """The JSON objects a ``--json`` command printed, one per line."""
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def listen(profile: Path, seconds: float) -> subprocess.Popen[str]:
    """``baat sync --wait SECONDS --json`` running in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "baat", "sync", "--wait", str(seconds), "--json"],
        env={**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)},
        stdout=subprocess.PIPE,
        text=True,
    )
