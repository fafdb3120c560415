"""The device, group and message commands through the real ``baat`` CLI and server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from baat.cli import groups
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
PASS = "correct horse battery staple"


def env(profile: Path) -> dict[str, str]:
    return {**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}


def baat(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "baat", *args],
        capture_output=True,
        text=True,
        env=env(profile),
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"baat {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def local(profile: Path, command: object, *args: str) -> dict[str, object]:
    """Commands of ``baat.cli.groups`` that the root command may not list yet."""
    result = CliRunner().invoke(command, [*args, "--json"], env=env(profile))  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])


def test_link_group_and_message_commands(tmp_path: Path, server: ServerProcess) -> None:
    alice, laptop, bob = tmp_path / "alice", tmp_path / "laptop", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    # The primary shows a code and waits; the new device joins; both show the same SAS.
    shower = subprocess.Popen(
        [sys.executable, "-m", "baat", "device", "link", "--json", "--yes", "--wait", "30"],
        env=env(alice),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert shower.stdout is not None
        offer = json.loads(shower.stdout.readline())
        assert bytes.fromhex(str(offer["qr_hex"]))[0] == 1
        joined = lines(baat(laptop, "register", "--link", str(offer["code"]), "--json"))[0]
        out, err = shower.communicate(timeout=30)
    finally:
        if shower.poll() is None:
            shower.kill()
    assert shower.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["sas"] == joined["sas"]
    assert joined["device_id"] == 2 and joined["username"] == "alice"
    devices = json.loads(baat(alice, "device", "list", "--json").stdout)
    assert [(d["device_id"], d["listed"]) for d in devices] == [(1, True), (2, True)]
    # A group, a message to it, seen on both of Alice's devices with the group's name.
    made = lines(baat(alice, "group", "create", "team", "--members", "bob", "--json"))[0]
    assert made["members"] == ["alice", "bob"] and made["admins"] == ["alice"]
    got = lines(baat(bob, "sync", "--json"))
    assert got[0]["group"] == "team" and got[0].get("notice")
    sent = lines(baat(bob, "send", "--group", "team", "hi team", "--json"))[0]
    got = lines(baat(laptop, "sync", "--json"))
    said = [m for m in got if m["text"] == "hi team"]
    assert said and said[0]["group"] == "team" and said[0]["sender"] == "bob"
    # Reactions and edits from the command line reach the other side.
    local(alice, groups.react, str(sent["id"]), "🎉")
    local(bob, groups.edit, str(sent["id"]), "hi team!")
    baat(bob, "sync")
    baat(alice, "sync")
    history = lines(baat(alice, "history", "--group", "team", "--json"))
    mine = next(m for m in history if m["id"] == sent["id"])
    assert mine["text"] == "hi team!" and mine["edited"] and mine["reactions"] == {"alice": "🎉"}
    info = json.loads(baat(alice, "group", "info", "team", "--json").stdout)
    assert info["members"] == ["alice", "bob"]
    # The laptop is removed: it can no longer sync.
    baat(alice, "device", "remove", "2")
    gone = baat(laptop, "sync", check=False)
    assert gone.returncode == 1 and "removed" in gone.stderr
    assert local(alice, groups.settings, "read-receipts", "off") == {"read_receipts": False}
