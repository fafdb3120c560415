"""``baat group promote`` and ``baat typing`` through real ``baat`` processes and a real
server (docs/GROUPS.md §4.4 and §5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import PASS, baat, lines
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def start(profile: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "baat", *args],
        env={**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def register_all(root: Path, url: str, *names: str) -> dict[str, Path]:
    """Several accounts at once (separate profiles, so the processes never share a store)."""
    profiles = {name: root / name for name in names}
    procs = [start(p, "register", name, "--server", url) for name, p in profiles.items()]
    for proc in procs:
        code, out, err = finish(proc)
        assert code == 0, f"{out}\n{err}"
    return profiles


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_promote_an_admin_who_then_adds_a_member(tmp_path: Path, server: ServerProcess) -> None:
    p = register_all(tmp_path, server.url, "alice", "bob", "carol", "dave")
    made = lines(baat(p["alice"], "group", "create", "team", "--members", "bob,carol", "--json"))
    assert made[0]["admins"] == ["alice"]
    # Carol is a member but no admin: a clear refusal that names who can do it.
    refused(
        baat(p["carol"], "group", "promote", "team", "carol", check=False),
        "only an admin of 'team'",
        "alice",
    )
    promoted = lines(baat(p["alice"], "group", "promote", "team", "bob", "--json"))[0]
    assert promoted["admins"] == ["alice", "bob"] and promoted["version"] == 2
    refused(baat(p["alice"], "group", "promote", "team", "dave", check=False), "'dave' is not a")
    refused(baat(p["alice"], "group", "promote", "nope", "bob", check=False), "no group 'nope'")
    refused(baat(p["alice"], "group", "promote", "team", "bob", check=False), "already an admin")
    # Bob, promoted on Alice's device, is an admin on his own once he has the event: he adds
    # Dave, whom every device accepts from him.
    added = lines(baat(p["bob"], "group", "add", "team", "dave", "--json"))[0]
    assert added["members"] == ["alice", "bob", "carol", "dave"]
    assert added["admins"] == ["alice", "bob"]
    joined = lines(baat(p["dave"], "sync", "--json"))
    assert any(m["text"] == "bob added you to 'team'" for m in joined)
    info = json.loads(baat(p["dave"], "group", "info", "team", "--json").stdout)
    assert info["admins"] == ["alice", "bob"] and info["member"]
    # Alice never looked Dave up: the name Bob gave is enough to reach his devices.
    baat(p["alice"], "send", "--group", "team", "welcome dave")
    assert "welcome dave" in [m["text"] for m in lines(baat(p["dave"], "sync", "--json"))]
    shown = baat(p["alice"], "group", "info", "team").stdout
    assert "admins: alice, bob" in shown and "members: alice, bob, carol, dave" in shown


def test_typing_from_one_cli_seen_by_another(tmp_path: Path, server: ServerProcess) -> None:
    p = register_all(tmp_path, server.url, "alice", "bob")
    baat(p["alice"], "group", "create", "team", "--members", "bob")
    listening = start(p["bob"], "sync", "--wait", "60", "--json")
    events: list[dict[str, object]] = []
    try:
        time.sleep(2.5)  # connected by now; were it not, the server keeps what comes first
        said = baat(p["alice"], "typing", "bob").stdout
        assert "Told bob you are typing." in said
        to_group = lines(baat(p["alice"], "typing", "team", "--json"))[0]
        assert to_group == {"chat": "team", "group": "team", "typing": "started", "sent": True}
        baat(p["alice"], "typing", "team", "--stop")
        # Printed as they arrive: read them while Bob's sync still waits.
        assert listening.stdout is not None
        while len(events) < 3:
            line = listening.stdout.readline()
            assert line, "bob's sync ended early"
            if (event := json.loads(line)).get("event") == "typing":
                events.append(event)
        assert listening.poll() is None
    finally:
        listening.send_signal(signal.SIGINT)  # ends the wait; the profile is closed cleanly
        finish(listening)
    assert events == [
        {"event": "typing", "chat": "alice", "sender": "alice", "kind": "started"},
        {"event": "typing", "chat": "team", "group": "team", "sender": "alice", "kind": "started"},
        {"event": "typing", "chat": "team", "group": "team", "sender": "alice", "kind": "stopped"},
    ]
    # The human form.
    baat(p["bob"], "typing", "alice")
    assert "bob is typing…" in baat(p["alice"], "sync").stdout
    # Typing indicators off on Bob's side: he is not shown Alice typing any more.
    baat(p["bob"], "settings", "typing", "off")
    baat(p["alice"], "typing", "bob")
    assert [e for e in lines(baat(p["bob"], "sync", "--json")) if e.get("event")] == []
    # Off on Alice's side: nothing is sent.
    baat(p["alice"], "settings", "typing", "off")
    off = lines(baat(p["alice"], "typing", "bob", "--json"))[0]
    assert off["sent"] is False and off["reason"] == "off"
    # A chat that does not exist is an error whatever the switch says.
    refused(baat(p["bob"], "typing", "nope", "--group", check=False), "no group 'nope'")
