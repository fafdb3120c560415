"""The operator's own notice (baat.privacy.operator): the example file is the built-in
notice, a real ``baat serve --operator`` serves a notice naming the operator and each
region's own location, ``baat policy show``/``diff`` render and classify it as any other
notice, a file that does not fit the inventory is refused, and ``--region`` is required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from baat.privacy import operator
from baat.privacy.diff import diff
from baat.privacy.policy import Policy
from support.server import ROOT, ServerProcess, free_port

EXAMPLE = ROOT / "deploy" / "operator.example.toml"

COMMUNITY = """
[controller]
name = "Kaveri Community Network Trust"
address = "Mysuru, Karnataka, India"
email = "privacy@kaveri.example.org"
grievance_officer = "Asha Rao, grievance@kaveri.example.org"
eu_representative = "none: we offer no service in the EU"
website = "https://kaveri.example.org"

[recipients.affiliate]
name = "Kaveri Research Cooperative (an affiliate of the Trust)"
country = "IN"

[recipients.baat-support]
name = "Kaveri volunteers' help desk"
country = "IN"

[regions.eu]
location = "Helsinki, Finland"
country = "FI"
"""


def baat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baat", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("BAAT_")},
    )


def test_the_example_file_is_the_built_in_notice() -> None:
    assert EXAMPLE.read_text() == operator.example(Policy())
    assert operator.load(EXAMPLE, Policy()).document() == Policy().document()


@pytest.mark.e2e
def test_a_server_serves_the_operators_notice(tmp_path: Path) -> None:
    config = tmp_path / "operator.toml"
    config.write_text(COMMUNITY)
    node = ServerProcess(tmp_path / "srv", None, "--operator", str(config), "--region", "eu")
    node.start()
    try:
        doc = httpx.get(node.url + "/v1/policy", timeout=10).json()
        assert httpx.get(node.url + "/healthz", timeout=10).json()["region"] == "eu"
    finally:
        node.stop()
    assert doc["controller"]["name"] == "Kaveri Community Network Trust"
    assert doc["controller"]["grievance_officer"] == "Asha Rao, grievance@kaveri.example.org"
    regions = {r["id"]: r for r in doc["regions"]}
    assert regions["eu"] == {"id": "eu", "country": "FI", "location": "Helsinki, Finland"}
    assert regions["in"]["location"] == "Mumbai, India"  # not given: the built-in value
    recipients = {r["id"]: r for r in doc["recipients"]}
    assert recipients["affiliate"]["name"].startswith("Kaveri Research Cooperative")
    assert recipients["baat"]["name"] == "Kaveri Community Network Trust"
    share = next(p for p in doc["purposes"] if p["id"] == "share_affiliate")
    assert "Kaveri Research Cooperative" in share["description"]
    text = str(doc)
    assert "Baat Communications" not in text and "Saathi" not in text


def test_policy_show_renders_and_diff_classifies_the_operators_notice(tmp_path: Path) -> None:
    config = tmp_path / "operator.toml"
    config.write_text(COMMUNITY)
    shown = baat("policy", "show", "--operator", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "Kaveri Community Network Trust" in shown.stdout
    assert "grievance@kaveri.example.org" in shown.stdout and "Helsinki, Finland" in shown.stdout
    published = max((ROOT / "policies").glob("v*.json"), key=lambda p: int(p.stem[1:]))
    # From the built-in notice to the operator's: a new controller and recipients' names
    # are blocking, and the affiliate's purpose needs consent again.
    out = baat("policy", "diff", str(published), "current", "--operator", str(config), "--json")
    assert out.returncode == 1, out.stderr
    changes = diff(Policy().document(), operator.load(config, Policy()).document())
    assert changes.expands and "share_affiliate" in changes.expanded_purposes()
    assert any(c.path.startswith("controller") for c in changes.blocking)
    assert any(c.path == "regions[eu]" or c.path.startswith("regions") for c in changes.blocking)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[controller]\nname = "X"\n', "missing: address"),
        (COMMUNITY + '\n[recipients.authorities]\nname = "Nobody"\n', "'authorities' is not one"),
        (COMMUNITY + '\n[regions.mars]\nlocation = "Olympus Mons"\n', "region 'mars' is not"),
        (COMMUNITY.replace('country = "FI"', 'country = "Finland"'), "ISO 3166-1 alpha-2"),
        (COMMUNITY + "\n[purposes.share_affiliate]\noptional = false\n", "unknown section"),
        (COMMUNITY.replace('email = "privacy@kaveri.example.org"', 'email = ""'), "non-empty"),
    ],
)
def test_a_file_that_does_not_fit_the_notice_is_refused(
    tmp_path: Path, body: str, says: str
) -> None:
    config = tmp_path / "operator.toml"
    config.write_text(body)
    with pytest.raises(operator.OperatorConfigError, match=says):
        operator.load(config, Policy())
    out = baat("serve", "--region", "in", "--operator", str(config), "--port", str(free_port()),
               "--data", str(tmp_path / "d"))  # fmt: skip
    assert out.returncode == 2 and says.split("'")[0] in out.stderr, out.stderr


def test_serve_requires_a_region(tmp_path: Path) -> None:
    out = baat("serve", "--data", str(tmp_path / "d"), "--port", str(free_port()))
    assert out.returncode == 2 and "Missing option '--region'" in out.stderr
    assert not (tmp_path / "d").exists()
