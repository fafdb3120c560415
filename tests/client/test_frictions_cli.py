"""Small frictions, through the real ``baat`` command and a real ``baat serve``: two-letter
usernames, ``consent verify`` with the profile's server keys, and the operator commands
finding the database ``baat serve`` uses by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import PASS, baat
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def test_two_letter_name_and_consent_verify_with_profile_keys(
    tmp_path: Path, server: ServerProcess
) -> None:
    me = tmp_path / "me"
    registered = json.loads(baat(me, "register", "me", "--server", server.url, "--json").stdout)
    assert registered["username"] == "me"
    one = baat(tmp_path / "x", "register", "x", "--server", server.url, check=False)
    assert one.returncode == 1 and "2-32 characters" in one.stderr

    granted = json.loads(baat(me, "consent", "grant", "understand", "--json").stdout)
    # No --server and no --keys: the keys of the server the profile is registered with.
    checked = json.loads(baat(me, "consent", "verify", granted["receipt"], "--json").stdout)
    assert checked["record"]["purpose"]["id"] == "understand"
    nowhere = baat(tmp_path / "none", "consent", "verify", granted["receipt"], check=False)
    assert nowhere.returncode == 2 and "--server" in nowhere.stderr


def test_operator_commands_default_to_the_serve_database(tmp_path: Path) -> None:
    # 'baat serve' with no --data or --db keeps its database under ./var/server.
    server = ServerProcess(tmp_path / "var" / "server").start()
    try:
        me = tmp_path / "me"
        baat(me, "register", "jo", "--server", server.url)
        baat(me, "consent", "grant", "understand")
        env = {k: v for k, v in os.environ.items() if k != "BAAT_DB"}
        env["BAAT_PASSPHRASE"] = PASS

        def operator(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "baat", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=90,
            )

        ledger = operator("admin", "verify-ledger", "--json")
        assert ledger.returncode == 0, ledger.stderr
        assert json.loads(ledger.stdout)["ok"] is True
        assert json.loads(ledger.stdout)["events"] >= 1
        produced = operator("transparency", "legal-process", "jo", "--json")
        assert produced.returncode == 0, produced.stderr
        assert "account.created_day" in json.loads(produced.stdout)["produced"]
    finally:
        server.stop()
