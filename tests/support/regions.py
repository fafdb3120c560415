"""Keys for linked regions, made with the real ``baat admin region-key``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from baat.server.regions.signing import RegionSigner, load_private_key


def make_region_key(key_file: Path) -> str:
    """Create ``key_file`` with ``baat admin region-key``; returns the public key."""
    out = subprocess.run(
        [sys.executable, "-m", "baat", "admin", "region-key", str(key_file), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return str(json.loads(out.stdout)["public_key"])


def signer(key_file: Path) -> RegionSigner:
    return RegionSigner(load_private_key(key_file.read_text()))


def region_args(region: str, key_file: Path, peers: dict[str, tuple[str, str]]) -> list[str]:
    """``baat serve`` arguments for ``region`` linked to ``peers`` (region: (url, key))."""
    args = ["--region", region, "--region-key-file", str(key_file)]
    for peer, (url, public) in peers.items():
        args += ["--peer", f"{peer}={url}", "--peer-key", f"{peer}={public}"]
    return args
