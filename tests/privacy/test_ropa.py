"""The record of processing (GDPR Art. 30(1)) generated from the inventory, in Markdown and
CSV, through the CLI, for the code's policy and every published version."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from baat.cli.privacy import policy
from baat.privacy.policy import Policy, load_document, published_versions
from baat.privacy.ropa import CSV_COLUMNS, erasure

ROOT = Path(__file__).resolve().parents[2]
DOC = Policy.current().document()


def _show(*args: str) -> str:
    result = CliRunner().invoke(policy, ["show", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


def _uses(purpose_id: str) -> list[dict[str, Any]]:
    return [e for e in DOC["data"] if purpose_id in e["purposes"]]


def test_markdown_names_everything_article_30_asks_for() -> None:
    md = _show("--format", "ropa")
    c = DOC["controller"]
    for needle in (c["name"], c["email"], c["eu_representative"], c["grievance_officer"]):
        assert needle in md  # (a)
    for p in DOC["purposes"]:
        assert f"## {p['title']} (`{p['id']}`" in md and p["description"] in md  # (b)
        for b in p["legal_basis"].values():
            assert b["cite"] in md
        for e in _uses(p["id"]):
            assert f"`{e['id']}`" in md and erasure(e["retention"]) in md  # (c), (f)
    for s in DOC["subjects"]:
        assert s["label"] in md
    for r in DOC["recipients"]:
        assert r["name"] in md  # (d)
    affiliate = next(r for r in DOC["recipients"] if r["id"] == "affiliate")
    assert f"from eu, us to {affiliate['country']}" in md  # (e): a third-country transfer
    assert affiliate["transfer_basis"]["gdpr"]["cite"] in md
    for m in DOC["security"]:
        assert m in md  # (g)
    assert "P0D after" not in md and "PT0S after" not in md


def test_csv_has_one_row_per_purpose_and_field() -> None:
    text = _show("--format", "ropa-csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = [(p["id"], e["id"]) for p in DOC["purposes"] for e in _uses(p["id"])]
    assert [(r["purpose"], r["field"]) for r in rows] == expected
    entries = {e["id"]: e for e in DOC["data"]}
    for row in rows:
        e = entries[row["field"]]
        assert row["erasure"].startswith(erasure(e["retention"]))
        assert row["category"] == e["category"]["fides"]
        assert row["controller_contact"] == DOC["controller"]["email"]
    shared = [r for r in rows if r["purpose"] == "share_affiliate"]
    assert shared and all("Art. 46(2)(c)" in r["third_country_transfers"] for r in shared)
    local = [r for r in rows if r["purpose"] == "service"]
    assert all(r["optional"] == "no" for r in local)


@pytest.mark.parametrize("version", sorted(published_versions(ROOT / "policies")))
def test_every_published_version_has_its_record(version: int) -> None:
    path = published_versions(ROOT / "policies")[version]
    doc = load_document(path)
    md = _show("--format", "ropa", "--file", str(path))
    assert f"policy v{version}" in md and doc["sha256"] in md
    rows = list(csv.DictReader(io.StringIO(_show("--format", "ropa-csv", "--file", str(path)))))
    assert len(rows) == sum(len(e["purposes"]) for e in doc["data"])


def test_erasure_words_zero_periods_as_until() -> None:
    assert erasure({"duration": "P0D", "trigger": "you delete your account"}) == (
        "until you delete your account"
    )
    assert erasure({"duration": "P30D", "trigger": "the envelope is stored"}) == (
        "P30D after the envelope is stored"
    )
    assert json.loads(_show("--json"))["version"] == DOC["version"]
