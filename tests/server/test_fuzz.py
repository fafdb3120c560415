"""A short run of the fuzzing campaign (issue 14, item 9): ``bench/fuzz.py`` against a real
``baat serve``, 20,000 answered frames; the long campaign's figures are in docs/SECURITY.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.server import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_twenty_thousand_fuzzed_frames() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--frames", "20000", "--json"],
        capture_output=True,
        text=True,
        timeout=850,
        cwd=ROOT,
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["frames"] >= 20_000
    assert figures["tracebacks"] == 0, run.stdout
    assert figures["restarts"] == 0
    assert figures["lost"] == 0 and figures["good_sent"] > 0
    assert figures["good_errors"] == []
    # Bad input was answered with typed errors, and the HTTP garbage with 4xx answers.
    assert figures["errors"].get("malformed_frame", 0) > 0
    assert sum(n for status, n in figures["http_status"].items() if status.startswith("4")) > 0
    assert run.returncode == 0
