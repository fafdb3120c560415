"""How the strict diff classifies the operator's tables (migrations 16 and 17): the
suspensions, the actions log and the server settings are new fields, and the account id's
two new copies are expansions, so publishing them needed a deliberate ``--accept``."""

from __future__ import annotations

from dataclasses import replace

from baat.privacy.diff import diff
from baat.privacy.policy import Policy

OURS = ("server.account_suspension", "operator.action", "system.server_setting")
OUR_ID_COLUMNS = ("account_suspensions.account_id", "operator_actions.account_id")


def without_operator_tables(policy: Policy) -> Policy:
    entries = tuple(
        replace(e, columns=tuple(c for c in e.columns if c not in OUR_ID_COLUMNS))
        if e.id == "account.id"
        else e
        for e in policy.entries
        if e.id not in OURS
    )
    return policy.evolve(entries=entries)


def test_the_operator_tables_are_expansions_that_block_until_accepted() -> None:
    current = Policy.current()
    before = without_operator_tables(current)
    changes = diff(before.document(), current.document())
    paths = sorted(c.path for c in changes.expansions)
    assert paths == sorted([f"data[{e}]" for e in OURS] + ["data[account.id].columns"] * 2), (
        changes.to_text()
    )
    assert changes.expands and not changes.reductions
    # None of them touches an optional purpose: no earlier consent stops counting.
    assert changes.expanded_purposes() == set()
    # Removing them again is a reduction.
    assert not diff(current.document(), before.document()).expands


def test_the_operator_entries_name_no_one_beyond_the_suspended_account() -> None:
    current = Policy.current()
    by_id = {e.id: e for e in current.entries}
    assert by_id["operator.action"].subjects == ()
    assert by_id["system.server_setting"].subjects == ()
    assert by_id["server.account_suspension"].purposes == ("security",)
    assert set(OUR_ID_COLUMNS) <= set(by_id["account.id"].columns)
