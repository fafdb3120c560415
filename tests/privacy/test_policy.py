"""Points 5 and 6: the notice is generated from the code, published and versioned (the diff
has its own table of mutations in ``test_policy_diff.py``)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest

from baat.privacy.diff import diff, reconsent_problems
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


def test_published_versions_are_intact_and_increasing() -> None:
    # Version numbers are assigned to changes made side by side: gaps are allowed.
    versions = published_versions(POLICIES)
    assert list(versions) == sorted(versions) and min(versions) == 1
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
    notice = graph["@graph"][0]
    assert notice["@type"] == "dpv:PrivacyNotice" and notice["baat:sha256"] == DOC["sha256"]
    processes = [n for n in graph["@graph"] if n["@id"].startswith("urn:baat:process:")]
    assert len(processes) == sum(len(e["purposes"]) for e in DOC["data"])
    assert all(n["dpv:hasLegalBasis"] for n in processes)
    assert jsonld(DOC) == graph
    with pytest.raises(ValueError):
        render(DOC, "pdf")
    assert set(FORMATS) == {"md", "html", "json", "jsonld", "ropa", "ropa-csv"}
