"""Residency through real servers: for every jurisdiction, on a single-region and on a
two-region deployment, an account is stored only where the notice that server publishes
says, and the notice, the transparency report and the stored ``accounts.region`` agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baat.privacy.purposes import JURISDICTIONS, REGIONS
from baat.server.regions.ids import region_of
from support.devices import registration_body
from support.regions import make_region_key, region_args
from support.server import ServerProcess

pytestmark = pytest.mark.e2e

LOCATION = {r.id: r.location for r in REGIONS}


def _register(url: str, username: str, code: str) -> httpx.Response:
    body = {**registration_body(username), "jurisdiction": code}
    return httpx.post(url + "/v1/accounts", json=body, timeout=30)


def _stored(server: ServerProcess) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(server.data_dir / "baat.sqlite3")
    try:
        return list(con.execute("SELECT account_id, jurisdiction, region FROM accounts"))
    finally:
        con.close()


def _agree(server: ServerProcess, region: str) -> None:
    """Notice, report and every stored account of ``server`` say the same thing."""
    policy = httpx.get(server.url + "/v1/policy", timeout=30).json()
    notice = {j["code"]: j["storage_region"] for j in policy["jurisdictions"]}
    report = httpx.get(server.url + "/v1/transparency", timeout=30).json()
    reported = {j["code"]: j for j in report["country_differences"]["jurisdictions"]}
    accounts = _stored(server)
    for account_id, code, stored in accounts:
        assert stored == region == region_of(account_id), account_id
        assert notice[code] == stored, f"the notice says {code} is stored in {notice[code]}"
        assert reported[code]["storage_region"] == stored
        assert reported[code]["registration"] == f"stored here, in region {region}"
        page = httpx.get(server.url + f"/privacy?jurisdiction={code}", timeout=30).text
        assert f"Your data is stored in {LOCATION[stored]}" in page
    hosted = {h["region"]: h["accounts"] for h in report["hosting"]}
    assert hosted[region] == len(accounts) and sum(hosted.values()) == len(accounts)


def _outcomes(entry: ServerProcess, tag: str) -> dict[str, Any]:
    """Register one account per jurisdiction at ``entry``, following a redirect."""
    out: dict[str, Any] = {}
    for j in JURISDICTIONS:
        name = f"{tag}_{j.code.lower()}"
        r = _register(entry.url, name, j.code)
        if r.status_code == 421:
            err = r.json()["error"]
            assert err["code"] == "wrong_region" and err["region"] == j.region
            r = _register(err["server"], name, j.code)
            assert r.status_code == 201, r.text
            out[j.code] = ("redirected", r.json()["region"])
        elif r.status_code == 201:
            out[j.code] = ("stored", r.json()["region"])
        else:
            err = r.json()["error"]
            assert r.status_code == 403 and err["code"] == "region_not_served", r.text
            assert f"region {err['region']!r}" in err["message"]
            out[j.code] = ("refused", err["region"])
    return out


@pytest.fixture
def cleanup() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for s in started:
        if s.proc is not None:
            s.stop()


def test_single_region_stores_every_jurisdiction_it_declares(
    tmp_path: Path, cleanup: list[ServerProcess]
) -> None:
    india = ServerProcess(tmp_path / "in", None, "--region", "in").start()
    cleanup.append(india)
    outcomes = _outcomes(india, "one")
    assert outcomes == {j.code: ("stored", "in") for j in JURISDICTIONS}
    # The notice it serves declares that: every jurisdiction is stored in India.
    _agree(india, "in")


def test_single_region_refuses_what_it_does_not_serve(
    tmp_path: Path, cleanup: list[ServerProcess]
) -> None:
    india = ServerProcess(
        tmp_path / "in", None, "--region", "in", "--unserved-jurisdictions", "refuse"
    ).start()
    cleanup.append(india)
    outcomes = _outcomes(india, "strict")
    assert outcomes == {
        "IN": ("stored", "in"),
        "EU": ("refused", "eu"),
        "GB": ("refused", "eu"),
        "US": ("refused", "us"),
        "ZZ": ("refused", "eu"),
    }
    _agree(india, "in")
    # The notice keeps the published regions, and the report says these are refused.
    report = httpx.get(india.url + "/v1/transparency", timeout=30).json()
    said = {j["code"]: j["registration"] for j in report["country_differences"]["jurisdictions"]}
    assert said["EU"] == "refused: region eu is not served by this deployment"
    assert [c for _, c, _ in _stored(india)] == ["IN"]


def test_two_regions_send_each_jurisdiction_home(
    tmp_path: Path, cleanup: list[ServerProcess]
) -> None:
    india = ServerProcess(tmp_path / "in")
    europe = ServerProcess(tmp_path / "eu")
    keys = {r: tmp_path / f"{r}.key" for r in ("in", "eu")}
    public = {r: make_region_key(k) for r, k in keys.items()}
    india.extra = region_args("in", keys["in"], {"eu": (europe.url, public["eu"])})
    europe.extra = region_args("eu", keys["eu"], {"in": (india.url, public["in"])})
    cleanup += [india.start(), europe.start()]

    outcomes = _outcomes(india, "two")
    assert outcomes == {
        "IN": ("stored", "in"),
        "EU": ("redirected", "eu"),
        "GB": ("redirected", "eu"),
        # No US region in this deployment: the Indian node declares it stores them.
        "US": ("stored", "in"),
        "ZZ": ("redirected", "eu"),
    }
    from_europe = _outcomes(europe, "two_eu")
    assert from_europe == {
        "IN": ("redirected", "in"),
        "EU": ("stored", "eu"),
        "GB": ("stored", "eu"),
        "US": ("stored", "eu"),
        "ZZ": ("stored", "eu"),
    }
    _agree(india, "in")
    _agree(europe, "eu")
    report = httpx.get(india.url + "/v1/transparency", timeout=30).json()
    said = {j["code"]: j["registration"] for j in report["country_differences"]["jurisdictions"]}
    assert said["EU"] == "sent to region eu and stored there"
