"""Points 5 and 6: the notice is generated from the code, published, versioned and diffed."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from baat.privacy.diff import EXPANSION, NEUTRAL, REDUCTION, diff, reconsent_problems
from baat.privacy.policy import (
    POLICY_VERSION,
    Policy,
    document_sha256,
    load_document,
    published_versions,
)
from baat.privacy.render import FORMATS, jsonld, render

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DOC = Policy.current().document()


def test_the_code_matches_the_latest_published_policy() -> None:
    versions = published_versions(POLICIES)
    assert versions, "no published policy: run `baat policy publish` and commit policies/v1.json"
    latest = max(versions)
    published = load_document(versions[latest])
    if published != DOC:
        changes = diff(published, DOC)
        nxt = latest + 1
        pytest.fail(
            f"The privacy policy generated from the code differs from policies/v{latest}.json:\n"
            f"{changes.to_text()}\n"
            f"To publish it: set POLICY_VERSION = {nxt} in src/baat/privacy/policy.py; for "
            f"every optional purpose marked [re-consent] above set consent_since={nxt}; run "
            f"`baat policy publish`; review `baat policy diff policies/v{latest}.json "
            f"policies/v{nxt}.json`; commit policies/v{nxt}.json with the code change."
        )
    assert latest == POLICY_VERSION


def test_published_versions_are_intact_and_consecutive() -> None:
    versions = published_versions(POLICIES)
    assert list(versions) == list(range(1, len(versions) + 1))
    docs = [load_document(p) for p in versions.values()]  # checks each file's sha256
    for old, new in itertools.pairwise(docs):
        assert reconsent_problems(diff(old, new), new) == []


def test_the_document_carries_its_version_and_hash() -> None:
    assert DOC["version"] == POLICY_VERSION
    assert DOC["sha256"] == document_sha256(DOC) and len(DOC["sha256"]) == 64
    changed = copy.deepcopy(DOC)
    changed["data"][0]["title"] += "!"
    assert document_sha256(changed) != DOC["sha256"]


@pytest.mark.parametrize("jurisdiction", [None, "IN", "EU", "GB", "US", "ZZ"])
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_notice_names_everything(fmt: str, jurisdiction: str | None) -> None:
    text = render(DOC, fmt, jurisdiction)
    for e in DOC["data"]:
        assert e["id"] in text and e["retention"]["duration"] in text
    for p in DOC["purposes"]:
        assert p["title"] in text and f"({p['id']}," in text
        laws = ["gdpr", "dpdp"] if jurisdiction is None else []
        if jurisdiction:
            laws = [next(j for j in DOC["jurisdictions"] if j["code"] == jurisdiction)["cites"]]
        for law in laws:
            assert p["legal_basis"][law]["cite"] in text
    for r in DOC["recipients"]:
        assert r["country"] in text
    for right in DOC["rights"]:
        assert right["cites"] in text
    for needle in ("withdraw", DOC["controller"]["email"], DOC["controller"]["grievance_officer"]):
        assert needle in text
    assert DOC["sha256"] in text


def test_the_notice_is_the_same_everywhere_but_the_wording() -> None:
    def skeleton(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("#")]

    renders = {j["code"]: render(DOC, "md", j["code"]) for j in DOC["jurisdictions"]}
    first = skeleton(renders["IN"])
    assert all(skeleton(t) == first for t in renders.values())


def test_html_escapes_and_json_formats_parse() -> None:
    doc = copy.deepcopy(DOC)
    doc["data"][0]["description"] = "<script>alert(1)</script>"
    assert "<script>" not in render(doc, "html")
    assert json.loads(render(DOC, "json")) == DOC
    graph = json.loads(render(DOC, "jsonld"))
    assert graph["@type"] == "dpv:PrivacyNotice" and graph["baat:sha256"] == DOC["sha256"]
    processes = [n for n in graph["@graph"] if n["@type"] == "dpv:Process"]
    assert len(processes) == sum(len(e["purposes"]) for e in DOC["data"])
    assert all(n["dpv:hasLegalBasis"] for n in processes)
    assert jsonld(DOC) == graph
    with pytest.raises(ValueError):
        render(DOC, "pdf")
    assert set(FORMATS) == {"md", "html", "json", "jsonld"}


# -- diff ----------------------------------------------------------------------------------


def _entry(doc: dict[str, Any], entry_id: str) -> dict[str, Any]:
    return next(e for e in doc["data"] if e["id"] == entry_id)


def _purpose(doc: dict[str, Any], purpose_id: str) -> dict[str, Any]:
    return next(p for p in doc["purposes"] if p["id"] == purpose_id)


def _next() -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc["version"] += 1
    return doc


def test_identical_versions_have_no_changes() -> None:
    d = diff(DOC, _next())
    assert d.changes == () and not d.expands


@pytest.mark.parametrize(
    ("edit", "path", "purposes"),
    [
        (lambda d: _entry(d, "account.last_seen_day")["retention"].update(duration="P2Y"),
         "data[account.last_seen_day].retention", {"understand", "support", "share_affiliate"}),
        (lambda d: _entry(d, "envelope.content").update(server_visible=True),
         "data[envelope.content].server_visible", set()),
        (lambda d: _entry(d, "account.username").update(legal_process=True),
         "data[account.username].legal_process", {"support", "market", "share_affiliate"}),
        (lambda d: _entry(d, "account.jurisdiction")["purposes"].append("understand"),
         "data[account.jurisdiction].purposes", {"understand"}),
        (lambda d: _entry(d, "account.username")["category"].update(fides="user.contact.email"),
         "data[account.username].category", {"support", "market", "share_affiliate"}),
        (lambda d: next(r for r in d["recipients"] if r["id"] == "affiliate").update(country="US"),
         "recipients[affiliate].country", {"share_affiliate"}),
        (lambda d: _purpose(d, "market")["legal_basis"]["gdpr"].update(cite="Art. 6(1)(f)"),
         "purposes[market].legal_basis.gdpr", {"market"}),
        (lambda d: d["purposes"].append(dict(_purpose(d, "market"), id="profile_ads")),
         "purposes[profile_ads]", {"profile_ads"}),
        (lambda d: d["regions"].append({"id": "sg", "country": "SG", "location": "Singapore"}),
         "regions[sg]", set()),
        (lambda d: _entry(d, "account.username")["recipients"].append("authorities"),
         "data[account.username].recipients", {"support", "market", "share_affiliate"}),
        (lambda d: _entry(d, "account.created_day").update(in_export=False),
         "data[account.created_day].in_export", {"customize", "support", "share_affiliate"}),
        (lambda d: d["data"].append(dict(_entry(d, "account.region"), id="account.phone")),
         "data[account.phone]", {"support", "share_affiliate"}),
    ],
)  # fmt: skip
def test_expansions_are_classified(edit: Any, path: str, purposes: set[str]) -> None:
    new = _next()
    edit(new)
    d = diff(DOC, new)
    assert d.expands, d.to_text()
    hits = [c for c in d.expansions if c.path == path]
    assert hits, d.to_text()
    assert {p for c in hits for p in c.purposes} == purposes
    if purposes:
        assert reconsent_problems(d, new)
        for pid in purposes:
            _purpose(new, pid)["consent_since"] = new["version"]
        assert reconsent_problems(diff(DOC, new), new) == []


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda d: _entry(d, "envelope.content")["retention"].update(duration="P7D"), REDUCTION),
        (lambda d: d["data"].remove(_entry(d, "account.region")), REDUCTION),
        (lambda d: _entry(d, "account.username")["recipients"].remove("affiliate"), REDUCTION),
        (lambda d: _entry(d, "account.id").update(title="Identifier"), NEUTRAL),
        (lambda d: d["controller"].update(email="hello@baat.example"), NEUTRAL),
    ],
)
def test_reductions_and_neutral_changes_do_not_expand(edit: Any, kind: str) -> None:
    new = _next()
    edit(new)
    d = diff(DOC, new)
    assert not d.expands, d.to_text()
    assert {c.kind for c in d.changes} == {kind}
    assert EXPANSION not in d.to_text().split()


def test_diff_reports_every_change() -> None:
    new = _next()
    _entry(new, "account.id")["title"] = "Identifier"
    _entry(new, "envelope.content")["retention"]["duration"] = "P60D"
    d = diff(DOC, new)
    assert sorted((c.kind, c.path) for c in d.changes) == [
        (EXPANSION, "data[envelope.content].retention"),
        (NEUTRAL, "data[account.id].title"),
    ]
    as_json = d.to_json()
    assert as_json["expands"]
    assert (as_json["old_version"], as_json["new_version"]) == (DOC["version"], new["version"])
