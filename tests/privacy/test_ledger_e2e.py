"""Consent decided from signed records, through a real ``baat serve`` process and real
``baat admin`` processes, on SQLite and PostgreSQL.

Tampering with the ``consent_events.state`` column changes nothing a job does and
``admin verify-ledger`` reports it; deleting the newest record (a withdrawal) is reported as
truncation, and every optional purpose stops instead of processing the withdrawn account; a
client that saw the newer head warns when the server later shows an older one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from baat.cli.privacy import consent
from baat.contract import DeviceCredentials
from baat.privacy import receipts
from baat.server.privacy import ledger_head
from baat.server.privacy.schema import consent_events
from baat.server.privacy.schema import ledger_head as head_table
from baat.server.storage.schema import devices
from baat.server.storage.sql import SqlStore
from support.server import ROOT, ServerProcess

from .conftest import User, make_user


def baat(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """A real ``baat`` process, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "baat", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def live(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server", db_url)
    yield proc
    if proc.proc is not None:
        proc.stop()


def _auth(user: User) -> dict[str, str]:
    return {**user.auth, "Baat-Collection-Method": "api"}


async def _market(db_url: str, code: int = 0) -> Any:
    done = baat("admin", "run-job", "market", "--db", db_url, code=code)
    return json.loads(done.stdout) if code == 0 else done.stdout + done.stderr


async def _identity(store: SqlStore, user: User) -> bytes:
    async with store.engine.connect() as conn:
        key = await conn.scalar(
            select(devices.c.identity_key).where(
                devices.c.account_id == user.id, devices.c.device_id == 1
            )
        )
    return bytes(key)


async def test_jobs_decide_from_signed_records(
    store: SqlStore, live: ServerProcess, db_url: str
) -> None:
    asha = await make_user(store, "asha")
    bilal = await make_user(store, "bilal")
    live.start()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        for user in (asha, bilal):
            r = await http.post("/v1/consents/market", headers=_auth(user))
            assert r.status_code == 201, r.text
        r = await http.delete(
            "/v1/consents/market", headers={**asha.auth, "Baat-Collection-Method": "web"}
        )
        withdrawal = r.json()
        keys = (await http.get("/.well-known/baat/keys")).json()
        head = (await http.get("/.well-known/baat/ledger-head")).json()
        bad = await http.post(
            "/v1/consents/market", headers={**asha.auth, "Baat-Collection-Method": "fax"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"

    # The receipt: absolute notice URL, the method used, the device's key fingerprint, and
    # the signed head its append produced, which is what the server publishes.
    record = receipts.verify(withdrawal["receipt"], keys).record
    assert record["notice"]["url"] == live.url + "/v1/policy"
    assert record["method"] == "web"
    digest = hashlib.sha256(await _identity(store, asha)).hexdigest()
    assert record["identity_key"] == {"device_id": 1, "fingerprint": "sha256:" + digest}
    signed = ledger_head.verify(head["jws"], keys)
    assert (signed.seq, signed.head) == (3, withdrawal["record_hash"])
    assert withdrawal["ledger_head"]["jws"] == head["jws"]
    assert (await _market(db_url))["audience"] == ["bilal"]

    # Editing the unsigned column: the job's audience does not change, and it is reported.
    async with store.engine.begin() as conn:
        await conn.execute(
            update(consent_events).where(consent_events.c.seq == 3).values(state="given")
        )
    assert (await _market(db_url))["audience"] == ["bilal"]
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        listed = (await http.get("/v1/consents", headers=asha.auth)).json()["consents"]
    assert not next(c for c in listed if c["purpose"] == "market")["effective"]
    out = baat("admin", "verify-ledger", "--db", db_url, code=1).stdout
    assert "column state disagrees with the signed record" in out
    async with store.engine.begin() as conn:
        await conn.execute(
            update(consent_events).where(consent_events.c.seq == 3).values(state="withdrawn")
        )
    assert "intact" in baat("admin", "verify-ledger", "--db", db_url).stdout

    # Deleting the newest record (the withdrawal): truncation is reported and no optional
    # purpose runs, rather than one that would process the withdrawn account.
    async with store.engine.begin() as conn:
        await conn.execute(delete(consent_events).where(consent_events.c.seq == 3))
    out = baat("admin", "verify-ledger", "--db", db_url, code=1).stdout
    assert "truncated" in out and "TAMPERED" in out
    assert "ledger_unverifiable" in await _market(db_url, code=1)
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        r = await http.get("/v1/consents", headers=bilal.auth)
        assert r.status_code == 503 and r.json()["error"]["code"] == "ledger_unverifiable"
        assert (await http.get("/healthz")).status_code == 200  # everyone else is served
    assert "Traceback" not in live.log()


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(consent, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


async def test_the_client_warns_when_the_server_rolls_back(
    store: SqlStore, live: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asha = await make_user(store, "asha")
    live.start()
    creds = DeviceCredentials(asha.id, 1, asha.token)
    monkeypatch.setenv("BAAT_PASSPHRASE", "secret")
    monkeypatch.setattr(
        "baat.client.profile.load_credentials", lambda profile, passphrase: (live.url, creds)
    )
    profile = ["--profile", str(tmp_path / "profile"), "--json"]
    granted = json.loads(_cli("grant", "market", *profile).stdout)
    assert granted["record"]["method"] == "cli" and granted["warnings"] == []
    async with store.engine.connect() as conn:
        old_head = (await conn.execute(select(head_table))).first()
    assert old_head is not None
    withdrawn = json.loads(_cli("withdraw", "market", *profile).stdout)
    assert withdrawn["warnings"] == []
    listing = _cli("list", *profile)
    assert json.loads(listing.stdout)["warnings"] == [] and not listing.stderr

    # Whoever controls the database deletes the withdrawal and puts back the head the server
    # signed before it: the chain verifies on its own, but not against what the client saw.
    async with store.engine.begin() as conn:
        await conn.execute(
            delete(consent_events).where(consent_events.c.record_id == withdrawn["record_id"])
        )
        await conn.execute(update(head_table).values(**old_head._mapping))
    live.restart()  # a fresh process: nothing cached from before the rollback
    assert "intact" in baat("admin", "verify-ledger", "--db", live.db or "").stdout
    listing = _cli("list", *profile)
    warnings = json.loads(listing.stdout)["warnings"]
    assert any("older ledger head" in w for w in warnings), warnings
    assert any("omits your latest consent record for market" in w for w in warnings), warnings
    assert "warning: " in listing.stderr
