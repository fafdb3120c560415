"""How policy v8 (sealed sender, issue 16) classifies against v7.

The sealed-sender part narrows what the server learns: a new security measure, and no
expansion touches the envelope entries. What it adds is named here and nothing else: the
delivery access hash and the encrypted profile on the server, the profile keys on the
device. Those are new stored data, so the version as a whole was published after review
(``baat policy publish --accept``), and no optional purpose needs consent again.
"""

from __future__ import annotations

import json
from pathlib import Path

from baat.privacy.diff import EXPANSION, REDUCTION, diff, reconsent_problems
from baat.privacy.policy import Policy

ROOT = Path(__file__).resolve().parents[2]


def _published(version: int) -> dict[str, object]:
    path = ROOT / "policies" / f"v{version}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _v7() -> dict[str, object]:
    return _published(7)


def test_sealed_sender_classifies_as_a_reduction_with_named_additions() -> None:
    # v8 as published: later versions add other things (business chats, operator actions).
    new = _published(8)
    d = diff(_v7(), new)
    sealed = [c for c in d.changes if c.kind == REDUCTION and "Sealed sender" in str(c.new)]
    assert len(sealed) == 1 and sealed[0].path == "security"
    # Nothing about envelopes widens: no new column, recipient, retention or visibility.
    assert not [c for c in d.changes if c.kind == EXPANSION and "envelope" in c.path]
    added = {(c.path, c.new) for c in d.expansions}
    assert added == {
        ("data[account.delivery_access]", "account.delivery_access"),
        ("data[account.encrypted_profile]", "account.encrypted_profile"),
        ("data[client.profile_keys]", "client.profile_keys"),
        ("data[account.id].columns", "delivery_access.account_id"),
        ("data[account.id].columns", "profiles.account_id"),
    }
    # Wording only: the envelope sender's description and the legal-process statement.
    assert {c.path for c in d.blocking if c.kind != EXPANSION} == {
        "data[envelope.sender].description",
        "legal_process.statement",
    }
    assert reconsent_problems(d, new) == []
    # The encrypted profile is ciphertext: the server cannot read it, nor produce it.
    profile = next(e for e in new["data"] if e["id"] == "account.encrypted_profile")
    assert profile["server_visible"] is False and profile["legal_process"] is False
    assert new["legal_process"]["fields"] == _v7()["legal_process"]["fields"]  # type: ignore[index]


def test_later_versions_keep_sealed_sender() -> None:
    current = Policy.current().document()
    assert current["version"] > 8
    assert [m for m in current["security"] if m.startswith("Sealed sender")] == [
        m
        for m in _published(8)["security"]  # type: ignore[attr-defined]
        if m.startswith("Sealed sender")
    ]
