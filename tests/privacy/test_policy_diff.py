"""The strict policy diff, as a table of mutations of the current notice and their verdict.

Every row edits a copy of the code's policy document and states what ``diff`` must say:
``pass`` (every change a proven reduction, ``policy diff`` exits 0) or ``block`` with the
path reported and the optional purposes whose consent must be asked again. The first eight
blocking rows are the edits that an earlier, lenient diff let through as "neutral".
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from baat.cli.privacy import policy
from baat.privacy.diff import CHANGED, EXPANSION, REDUCTION, diff, reconsent_problems
from baat.privacy.policy import Policy, document_sha256, dump_document, load_document

DOC = Policy.current().document()
Edit = Callable[[dict[str, Any]], Any]


def _entry(doc: dict[str, Any], entry_id: str) -> dict[str, Any]:
    return next(e for e in doc["data"] if e["id"] == entry_id)


def _purpose(doc: dict[str, Any], purpose_id: str) -> dict[str, Any]:
    return next(p for p in doc["purposes"] if p["id"] == purpose_id)


def _recipient(doc: dict[str, Any], recipient_id: str) -> dict[str, Any]:
    return next(r for r in doc["recipients"] if r["id"] == recipient_id)


def _right(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in doc["rights"] if r["right"] == name)


def _next() -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc["version"] += 1
    return doc


USERNAME_USES = {"support", "market", "share_affiliate"}

BLOCKED: list[tuple[str, Edit, str, set[str]]] = [
    # (name, edit, a path that must be reported as blocking, optional purposes to re-ask)
    ("new column under an existing entry",
     lambda d: _entry(d, "account.username")["columns"].append("accounts.phone_number"),
     "data[account.username].columns", USERNAME_USES),
    ("purpose wording rewritten",
     lambda d: _purpose(d, "improve").update(description="We build advertising profiles."),
     "purposes[improve].description", {"improve"}),
    ("affiliate renamed",
     lambda d: _recipient(d, "affiliate").update(name="Meta Platforms"),
     "recipients[affiliate].name", {"share_affiliate"}),
    ("deletion text changed",
     lambda d: _entry(d, "account.username")["retention"].update(deletion="kept in backups"),
     "data[account.username].retention.deletion", set()),
    ("client field moved to the server",
     lambda d: _entry(d, "client.contacts").update(side="server"),
     "data[client.contacts].side", set()),
    ("legal-process statement changed",
     lambda d: d["legal_process"].update(statement="We hand over what is asked for."),
     "legal_process.statement", set()),
    ("grievance officer removed",
     lambda d: d["controller"].update(grievance_officer=""),
     "controller.grievance_officer", set()),
    ("default-off wording changed",
     lambda d: d["consent"].update(default="on for new accounts"),
     "consent.default", set()),
    # Further expansions and changes.
    ("controller e-mail changed",
     lambda d: d["controller"].update(email="hello@baat.example"),
     "controller.email", set()),
    ("purpose title changed",
     lambda d: _purpose(d, "market").update(title="Partner offers"),
     "purposes[market].title", {"market"}),
    ("recipient's company changed",
     lambda d: _recipient(d, "affiliate").update(country="US"),
     "recipients[affiliate].country", {"share_affiliate"}),
    ("retention longer",
     lambda d: _entry(d, "account.last_seen_day")["retention"].update(duration="P2Y"),
     "data[account.last_seen_day].retention", {"understand", "support", "share_affiliate"}),
    ("retention trigger changed",
     lambda d: _entry(d, "account.username")["retention"].update(trigger="the end of time"),
     "data[account.username].retention.trigger", USERNAME_USES),
    ("envelope content visible to the server",
     lambda d: _entry(d, "envelope.content").update(server_visible=True),
     "data[envelope.content].server_visible", set()),
    ("username producible under legal process",
     lambda d: _entry(d, "account.username").update(legal_process=True),
     "data[account.username].legal_process", USERNAME_USES),
    ("purpose added to a field",
     lambda d: _entry(d, "account.jurisdiction")["purposes"].append("understand"),
     "data[account.jurisdiction].purposes", {"understand"}),
    ("category changed",
     lambda d: _entry(d, "account.username")["category"].update(fides="user.contact.email"),
     "data[account.username].category", USERNAME_USES),
    ("legal basis changed",
     lambda d: _purpose(d, "market")["legal_basis"]["gdpr"].update(cite="Art. 6(1)(f)"),
     "purposes[market].legal_basis.gdpr", {"market"}),
    ("new purpose",
     lambda d: d["purposes"].append(dict(_purpose(d, "market"), id="profile_ads")),
     "purposes[profile_ads]", {"profile_ads"}),
    ("new storage region",
     lambda d: d["regions"].append({"id": "sg", "country": "SG", "location": "Singapore"}),
     "regions[sg]", set()),
    ("recipient added to a field",
     lambda d: _entry(d, "account.username")["recipients"].append("authorities"),
     "data[account.username].recipients", USERNAME_USES),
    ("dropped from the export",
     lambda d: _entry(d, "account.created_day").update(in_export=False),
     "data[account.created_day].in_export", {"customize", "support", "share_affiliate"}),
    ("new field",
     lambda d: d["data"].append(dict(_entry(d, "account.region"), id="account.phone")),
     "data[account.phone]", {"support", "share_affiliate"}),
    ("optional purpose made essential",
     lambda d: _purpose(d, "market").update(optional=False),
     "purposes[market]", set()),
    ("consent_since moved back",
     lambda d: _purpose(d, "market").update(consent_since=0),
     "purposes[market].consent_since", {"market"}),
    ("security measure removed",
     lambda d: d["security"].pop(),
     "security", set()),
    ("right removed",
     lambda d: d["rights"].remove(_right(d, "nominate")),
     "rights", set()),
    ("right reworded",
     lambda d: _right(d, "erasure").update(how="write to us"),
     "rights[erasure].how", set()),
    ("field title changed",
     lambda d: _entry(d, "account.id").update(title="Identifier"),
     "data[account.id].title", set()),
    ("key column copied into a new table",
     lambda d: _entry(d, "account.id")["columns"].append("audit.account_id"),
     "data[account.id].columns", set()),
    ("jurisdiction moves region",
     lambda d: d["jurisdictions"][0].update(storage_region="us"),
     f"jurisdictions[{DOC['jurisdictions'][0]['code']}].storage_region", set()),
    ("authority changed",
     lambda d: d["jurisdictions"][0].update(authority="nobody"),
     f"jurisdictions[{DOC['jurisdictions'][0]['code']}].authority", set()),
    ("new member of the document format",
     lambda d: d.update(cookies="we set some"),
     "cookies", set()),
    ("new member of a field",
     lambda d: _entry(d, "account.id").update(shared_publicly=True),
     "data[account.id].shared_publicly", set()),
    ("producible field added",
     lambda d: d["legal_process"]["fields"].append("account.username"),
     "legal_process.fields", set()),
]  # fmt: skip

PASSED: list[tuple[str, Edit]] = [
    ("field removed", lambda d: d["data"].remove(_entry(d, "account.region"))),
    ("retention shorter",
     lambda d: _entry(d, "envelope.content")["retention"].update(duration="P7D")),
    ("recipient removed from a field",
     lambda d: _entry(d, "account.username")["recipients"].remove("affiliate")),
    ("purpose removed from a field",
     lambda d: _entry(d, "account.username")["purposes"].remove("market")),
    ("optional purpose removed", lambda d: d["purposes"].remove(_purpose(d, "market"))),
    ("essential purpose made optional", lambda d: _purpose(d, "legal").update(optional=True)),
    ("recipient removed",
     lambda d: d["recipients"].remove(_recipient(d, "affiliate"))),
    ("recipient removed from a purpose",
     lambda d: _purpose(d, "support")["recipients"].clear()),
    ("right added",
     lambda d: d["rights"].append({"right": "portability", "cites": "x", "how": "y"})),
    ("security measure added", lambda d: d["security"].append("Everything is encrypted.")),
    ("no longer visible to the server",
     lambda d: _entry(d, "account.username").update(server_visible=False)),
    ("no longer producible",
     lambda d: _entry(d, "account.created_day").update(legal_process=False)),
    ("stored column removed",
     lambda d: _entry(d, "account.username").update(columns=[])),
    ("consent_since moved forward", lambda d: _purpose(d, "market").update(consent_since=99)),
    ("storage region removed", lambda d: d["regions"].pop()),
    ("producible field removed", lambda d: d["legal_process"]["fields"].pop()),
]  # fmt: skip


def test_identical_versions_have_no_changes() -> None:
    d = diff(DOC, _next())
    assert d.changes == () and not d.expands


@pytest.mark.parametrize(("name", "edit", "path", "purposes"), BLOCKED, ids=[b[0] for b in BLOCKED])
def test_every_change_not_proven_to_narrow_blocks(
    name: str, edit: Edit, path: str, purposes: set[str]
) -> None:
    new = _next()
    edit(new)
    d = diff(DOC, new)
    assert d.expands, f"{name} passed:\n{d.to_text()}"
    hits = [c for c in d.blocking if c.path == path]
    assert hits, f"{name}: {path} not reported:\n{d.to_text()}"
    assert {p for c in hits for p in c.purposes} == purposes
    assert d.expanded_purposes() >= purposes
    if purposes:
        # The changed meaning must be agreed to again before the purpose's job runs.
        assert {p.split("'")[1] for p in reconsent_problems(d, new)} == d.expanded_purposes()
        for pid in d.expanded_purposes():
            _purpose(new, pid)["consent_since"] = new["version"]
        assert reconsent_problems(diff(DOC, new), new) == []


@pytest.mark.parametrize(("name", "edit"), PASSED, ids=[p[0] for p in PASSED])
def test_proven_narrowing_passes(name: str, edit: Edit) -> None:
    new = _next()
    edit(new)
    d = diff(DOC, new)
    assert d.changes, f"{name}: nothing reported"
    assert not d.expands, f"{name} blocked:\n{d.to_text()}"
    assert {c.kind for c in d.changes} == {REDUCTION}
    assert reconsent_problems(d, new) == []


def test_text_and_json_list_every_change() -> None:
    new = _next()
    _entry(new, "account.id")["title"] = "Identifier"
    _entry(new, "envelope.content")["retention"]["duration"] = "P60D"
    _entry(new, "envelope.content")["retention"]["duration"] = "P60D"
    _entry(new, "account.region")["in_export"] = True
    d = diff(DOC, new)
    kinds = sorted((c.kind, c.path) for c in d.changes)
    assert (CHANGED, "data[account.id].title") in kinds
    assert (EXPANSION, "data[envelope.content].retention") in kinds
    text = d.to_text()
    assert all(path in text for _, path in kinds)
    as_json = d.to_json()
    assert as_json["expands"] and len(as_json["changes"]) == len(d.changes)
    assert (as_json["old_version"], as_json["new_version"]) == (DOC["version"], new["version"])


# -- the publishing tool --------------------------------------------------------------------


def _invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(policy, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_policy_diff_exits_1_for_a_new_column(tmp_path: Path) -> None:
    new = _next()
    _entry(new, "account.username")["columns"].append("accounts.phone_number")
    (tmp_path / "old.json").write_text(dump_document(DOC))
    (tmp_path / "new.json").write_text(dump_document(_rehash(new)))
    out = _invoke("diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), code=1)
    assert "new stored column accounts.phone_number" in out and "re-consent" in out
    narrower = _next()
    _entry(narrower, "envelope.content")["retention"]["duration"] = "P7D"
    (tmp_path / "narrow.json").write_text(dump_document(_rehash(narrower)))
    _invoke("diff", str(tmp_path / "old.json"), str(tmp_path / "narrow.json"))


def _rehash(doc: dict[str, Any]) -> dict[str, Any]:
    doc["sha256"] = document_sha256(doc)
    return doc


def test_publish_reports_a_new_column_as_an_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "policies"
    _invoke("publish", "--dir", str(directory))
    current = Policy.current()
    n = current.version
    entries = tuple(
        replace(e, columns=(*e.columns, "accounts.phone_number"))
        if e.id == "account.username"
        else e
        for e in current.entries
    )
    changed = current.evolve(entries=entries, version=n + 1)
    monkeypatch.setattr(Policy, "current", classmethod(lambda cls: changed))
    out = _invoke("publish", "--dir", str(directory), code=1)
    assert "expansion" in out and "accounts.phone_number" in out
    assert all(f"'{p}'" in out for p in USERNAME_USES), out
    assert not (directory / f"v{n + 1}.json").exists()

    purposes = tuple(
        replace(p, consent_since=n + 1) if p.id in USERNAME_USES else p for p in changed.purposes
    )
    reconsented = changed.evolve(purposes=purposes)
    monkeypatch.setattr(Policy, "current", classmethod(lambda cls: reconsented))
    out = _invoke("publish", "--dir", str(directory), code=1)
    assert "--accept" in out and "new stored column accounts.phone_number" in out
    assert not (directory / f"v{n + 1}.json").exists()
    out = _invoke("publish", "--dir", str(directory), "--accept")
    assert "new stored column accounts.phone_number" in out
    assert load_document(directory / f"v{n + 1}.json") == reconsented.document()
