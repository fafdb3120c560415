"""``baat sealed`` through the real command and a real server: the fallback shown to the
user, rotation, and the "from anyone" switch (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import baat, lines
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def _status(profile: Path) -> dict[str, object]:
    return dict(json.loads(baat(profile, "sealed", "status", "--json").stdout))


def test_status_shows_sealed_sends_and_the_fallback(tmp_path: Path, server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for profile, name in ((alice, "alice"), (bob, "bob")):
        baat(profile, "register", "--json", "--server", server.url, name)
    # No profile key of Bob's yet: the first message falls back to an authenticated send.
    baat(alice, "send", "bob", "one")
    first = _status(alice)
    assert first["sealed"] == 0 and first["fallback"] == 1
    assert first["last_fallback"]["reason"] == "no profile key"  # type: ignore[index]
    assert [m["text"] for m in lines(baat(bob, "sync", "--json"))] == ["one"]
    baat(bob, "send", "alice", "two")  # carries Bob's profile key; sealed to Alice
    assert int(_status(bob)["sealed"]) >= 1  # with Bob's delivery receipt for "one"
    baat(alice, "sync")
    before = _status(alice)
    baat(alice, "send", "bob", "three")
    now = _status(alice)
    assert now["sealed"] == int(before["sealed"]) + 1 and now["fallback"] == before["fallback"]
    human = baat(alice, "sealed", "status").stdout
    assert f"envelopes sent sealed: {now['sealed']}" in human and "last fallback" in human
    # Bob rotates: Alice's old key is refused and her send falls back, and says so.
    baat(bob, "sealed", "rotate")
    baat(alice, "send", "bob", "four")
    after = _status(alice)
    assert after["fallback"] == int(now["fallback"]) + 1
    assert after["last_fallback"]["reason"] == "sealed_access_denied"  # type: ignore[index]
    texts = [m["text"] for m in lines(baat(bob, "sync", "--json"))]
    assert texts == ["three", "four"]
    # "From anyone" is off until Bob turns it on.
    assert _status(bob)["sealed_from_anyone"] is False
    baat(bob, "sealed", "anyone", "on")
    assert _status(bob)["sealed_from_anyone"] is True
    baat(bob, "sealed", "profile", "Bob B.")
