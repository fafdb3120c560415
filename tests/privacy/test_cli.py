"""The privacy CLI, driven with CliRunner against a real database and a real server."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from sqlalchemy import update
from starlette.applications import Starlette

from baat.cli.privacy import admin, consent, me, policy, transparency
from baat.contract import DeviceCredentials
from baat.privacy.inventory import Retention
from baat.privacy.policy import Policy, dump_document
from baat.server.privacy.http import routes
from baat.server.privacy.schema import consent_events
from baat.server.privacy.service import PrivacyService
from baat.server.storage.sql import SqlStore

from .conftest import TODAY, User, make_user


def invoke(group: Any, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_policy_show_in_every_format() -> None:
    doc = Policy.current().document()
    assert json.loads(invoke(policy, "show", "--json").output) == doc
    assert json.loads(invoke(policy, "show", "--format", "jsonld").output)["@graph"]
    assert invoke(policy, "show", "--format", "html").output.startswith("<!doctype html>")
    md = invoke(policy, "show", "--jurisdiction", "EU").output
    assert "Regulation (EU) 2016/679" in md and doc["sha256"] in md
    assert "unknown jurisdiction" in invoke(policy, "show", "--jurisdiction", "XX", code=2).output


def test_policy_diff_exits_1_on_expansion(tmp_path: Path) -> None:
    doc = Policy.current().document()
    same = tmp_path / "same.json"
    same.write_text(dump_document(doc))
    assert "no changes" in invoke(policy, "diff", str(same), "current").output

    wider = json.loads(json.dumps(doc))
    wider["version"] = doc["version"] + 1
    next(e for e in wider["data"] if e["id"] == "account.username")["recipients"].append(
        "authorities"
    )
    from baat.privacy.policy import document_sha256

    wider["sha256"] = document_sha256(wider)
    path = tmp_path / "wider.json"
    path.write_text(dump_document(wider))
    out = invoke(policy, "diff", "current", str(path), code=1).output
    assert "expansion" in out and "re-consent" in out
    as_json = json.loads(invoke(policy, "diff", "current", str(path), "--json", code=1).output)
    assert as_json["expands"] and "share_affiliate" in as_json["expanded_purposes"]
    # The reverse direction is a reduction: exit 0.
    assert "reduction" in invoke(policy, "diff", str(path), "current").output

    edited = dict(wider, effective="1999-01-01")  # edited after publication
    path.write_text(dump_document(edited))
    assert "immutable" in invoke(policy, "diff", str(path), "current", code=1).output


def test_policy_publish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from baat.privacy.policy import POLICY_VERSION as n

    directory = tmp_path / "policies"
    invoke(policy, "publish", "--dir", str(directory))
    assert json.loads((directory / f"v{n}.json").read_text()) == Policy.current().document()
    assert "up to date" in invoke(policy, "publish", "--dir", str(directory)).output

    current = Policy.current()
    longer = tuple(
        replace(e, retention=Retention("P2Y", "x", "y")) if e.id == "account.last_seen_day" else e
        for e in current.entries
    )
    changed = current.evolve(entries=longer)
    monkeypatch.setattr(Policy, "current", classmethod(lambda cls: changed))
    out = invoke(policy, "publish", "--dir", str(directory), code=1).output
    assert f"POLICY_VERSION = {n + 1}" in out

    bumped_version = changed.evolve(version=n + 1)
    monkeypatch.setattr(Policy, "current", classmethod(lambda cls: bumped_version))
    out = invoke(policy, "publish", "--dir", str(directory), code=1).output
    assert f"consent_since={n + 1}" in out and "understand" in out

    expanded = ("understand", "support", "share_affiliate")
    bumped = tuple(
        replace(p, consent_since=n + 1) if p.id in expanded else p for p in bumped_version.purposes
    )
    final = bumped_version.evolve(purposes=bumped)
    monkeypatch.setattr(Policy, "current", classmethod(lambda cls: final))
    invoke(policy, "publish", "--dir", str(directory), "--accept")
    assert (directory / f"v{n + 1}.json").exists()


# -- operator commands ---------------------------------------------------------------------


def _prepare(db: str, data_dir: Path) -> tuple[User, str]:
    async def go() -> tuple[User, str]:
        store = await SqlStore.open(db)
        try:
            service = await PrivacyService.open(store, data_dir=data_dir, region="in")
            user = await make_user(store, "asha", created_day=TODAY - 5, last_seen_day=TODAY)
            await service.grant(user.id, "understand")
            await service.grant(user.id, "support")
            receipt = await service.withdraw(user.id, "support")
            return user, receipt.jws
        finally:
            await store.close()

    return asyncio.run(go())


def test_operator_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'baat.sqlite3'}"
    _user, _ = _prepare(db, tmp_path / "data")

    ok = json.loads(invoke(admin, "verify-ledger", "--db", db, "--json").output)
    assert ok["ok"] and ok["events"] == 3
    produced = json.loads(
        invoke(transparency, "legal-process", "asha", "--db", db, "--json").output
    )
    assert set(produced["produced"]) == {"account.created_day", "account.last_seen_day"}
    seized = produced["seized_database"]
    assert seized["undelivered_envelopes"] == 0 and seized["of_which_sealed"] == 0
    assert any("sender of a sealed envelope" in x for x in seized["cannot_link"])
    human = invoke(transparency, "legal-process", "asha", "--db", db).output
    assert "It cannot link:" in human and "created_day" in human
    assert (
        "account_not_found"
        in invoke(transparency, "legal-process", "zed", "--db", db, code=1).output
    )
    text = invoke(transparency, "report", "--db", db).output
    assert "## Where data is hosted" in text
    # Every run is logged by day, without the names asked about, and counted.
    assert "Requests answered in the last year: fewer than 10." in text
    con = sqlite3.connect(tmp_path / "baat.sqlite3")
    assert [len(r) for r in con.execute("SELECT * FROM legal_process_runs")] == [2, 2, 2]
    con.close()
    assert (
        json.loads(invoke(transparency, "report", "--db", db, "--format", "json").output)[
            "accounts"
        ]
        == 1
    )
    job = json.loads(invoke(admin, "run-job", "understand", "--db", db).output)
    assert job["accounts"] == 1
    assert "consent_required" in invoke(admin, "support-lookup", "asha", "--db", db, code=1).output
    later = str(time.time() + 40 * 86_400)
    assert json.loads(invoke(admin, "retention", "--db", db, "--now", later, "--json").output) == {
        "envelopes": 0, "transfer_log": 0, "region_transfers": 0, "consent_events": 0,
        "recent_sends": 0, "link_codes": 0, "registration_invites": 0,
        "legal_process_runs": 0, "server_keys": 0,
    }  # fmt: skip

    async def tamper() -> None:
        store = await SqlStore.open(db)
        async with store.engine.begin() as conn:
            await conn.execute(
                update(consent_events).where(consent_events.c.seq == 3).values(state="given")
            )
        await store.close()

    asyncio.run(tamper())
    bad = invoke(admin, "verify-ledger", "--db", db, code=1).output
    assert "TAMPERED" in bad and "ledger verification failed" in bad
    assert (
        "unsupported database URL"
        in invoke(admin, "verify-ledger", "--db", "mysql://x", code=1).output
    )


def test_consent_verify_offline(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'baat.sqlite3'}"
    _, token = _prepare(db, tmp_path / "data")

    async def key_set() -> dict[str, Any]:
        store = await SqlStore.open(db)
        try:
            return await (
                await PrivacyService.open(store, data_dir=tmp_path, region="in", sign=False)
            ).jwks()
        finally:
            await store.close()

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(asyncio.run(key_set())))
    receipt = tmp_path / "receipt.jws"
    receipt.write_text(token)
    out = invoke(consent, "verify", str(receipt), "--keys", str(keys)).output
    assert out.startswith("valid receipt") and "ConsentWithdrawn: support" in out
    checked = json.loads(invoke(consent, "verify", token, "--keys", str(keys), "--json").output)
    assert checked["record"]["purpose"]["id"] == "support"
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload[:-4]}AAAA.{sig}"
    assert "receipt_" in invoke(consent, "verify", forged, "--keys", str(keys), code=1).output
    assert "--server" in invoke(consent, "verify", token, code=2).output


# -- user commands against a live server ---------------------------------------------------


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, User]]:
    db = f"sqlite:///{tmp_path / 'server.sqlite3'}"

    async def create() -> User:
        store = await SqlStore.open(db)
        try:
            await make_user(store, "bilal")
            return await make_user(store, "asha")
        finally:
            await store.close()

    user = asyncio.run(create())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await SqlStore.open(db)
        app.state.store = store
        app.state.privacy = await PrivacyService.open(
            store, data_dir=tmp_path / "data", region="in"
        )
        yield
        await store.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=routes(), lifespan=lifespan), log_level="warning", ws="none"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    creds = DeviceCredentials(user.id, 1, user.token)
    monkeypatch.setenv("BAAT_PASSPHRASE", "secret")
    monkeypatch.setattr(
        "baat.client.profile.load_credentials", lambda profile, passphrase: (url, creds)
    )
    try:
        yield url, user
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_user_commands_against_a_server(live: tuple[str, User], tmp_path: Path) -> None:
    url, user = live
    profile = ["--profile", str(tmp_path / "profile")]
    listed = json.loads(invoke(consent, "list", *profile, "--json").output)
    assert not any(c["effective"] for c in listed["consents"])
    assert "off improve" in invoke(consent, "list", *profile).output

    granted = json.loads(invoke(consent, "grant", "market", *profile, "--json").output)
    assert granted["record"]["purpose"]["id"] == "market"
    receipt = tmp_path / "grant.json"
    receipt.write_text(json.dumps(granted))
    assert "valid receipt" in invoke(consent, "verify", str(receipt), "--server", url).output
    assert "ConsentWithdrawn" in invoke(consent, "withdraw", "market", *profile).output
    assert "consent_not_given" in invoke(consent, "withdraw", "market", *profile, code=1).output
    assert "unknown_purpose" in invoke(consent, "grant", "everything", *profile, code=1).output

    out = tmp_path / "export.json"
    invoke(me, "export", "--out", str(out), *profile)
    assert json.loads(out.read_text())["account_id"] == user.id
    corrected = json.loads(invoke(me, "correct", "--jurisdiction", "GB", *profile, "--json").output)
    assert corrected["region"] == "eu"
    assert "username_taken" in invoke(me, "correct", "--username", "bilal", *profile, code=1).output
    assert invoke(me, "correct", *profile, code=2).exit_code == 2
    report = invoke(transparency, "report", "--server", url, "--json").output
    assert json.loads(report)["accounts"] == 2

    deleted = json.loads(invoke(me, "delete", "--yes", *profile, "--json").output)
    assert deleted["deleted"]["accounts"] == 1
    assert "unauthorized" in invoke(consent, "list", *profile, code=1).output
