"""Version 1 group records (tests/vectors/groups_v1.json): they load, re-encode identically
and replay to the stored state. Written once by running this module
(``.venv/bin/python tests/client/test_groups_state_vectors.py``); never regenerate it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from baat.client.groups import (
    AddMembers,
    CreateGroup,
    GroupEvent,
    GroupState,
    LeaveGroup,
    PromoteAdmins,
    RemoveMembers,
    RenameGroup,
    decode_event,
    encode_event,
    replay,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
FIXTURE = VECTORS / "groups_v1.json"
GID = bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0")


def _events() -> list[tuple[GroupEvent, str]]:
    return [
        (CreateGroup(group_id=GID, version=0, name="Book club", members=("bob", "carol")), "ann"),
        (AddMembers(group_id=GID, version=1, members=("dan",)), "ann"),
        (PromoteAdmins(group_id=GID, version=2, members=("bob",)), "ann"),
        (RenameGroup(group_id=GID, version=3, name="Book club (2025)"), "bob"),
        (RemoveMembers(group_id=GID, version=4, members=("carol",)), "bob"),
        (LeaveGroup(group_id=GID, version=5), "ann"),
    ]


def _make() -> dict[str, Any]:
    state, refused = replay(None, _events())
    assert state is not None and not refused
    return {
        "comment": "Version 1 group records; see tests/client/test_groups_state_vectors.py",
        "events": [{"actor": a, "event": encode_event(e).hex()} for e, a in _events()],
        "state": state.to_bytes().hex(),
    }


def test_groups_v1() -> None:
    v = json.loads(FIXTURE.read_text())
    events = []
    for item in v["events"]:
        blob = bytes.fromhex(item["event"])
        event = decode_event(blob)
        assert encode_event(event) == blob
        events.append((event, item["actor"]))
    assert events == _events()
    stored = GroupState.from_bytes(bytes.fromhex(v["state"]))
    assert stored.to_bytes().hex() == v["state"]
    state, refused = replay(None, reversed(events))
    assert state == stored and not refused
    assert stored.members == ("bob", "dan") and stored.admins == ("bob",)
    assert (stored.name, stored.version, stored.creator) == ("Book club (2025)", 6, "ann")


def main() -> None:
    if FIXTURE.exists() and "--force" not in sys.argv:
        raise SystemExit(f"{FIXTURE} exists; version 1 fixtures must not change")
    FIXTURE.write_text(json.dumps(_make(), indent=1) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
