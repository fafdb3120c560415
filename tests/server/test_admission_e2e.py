"""Registration and device linking that one client cannot lock out (baat.server.admission),
and invite-only registration, against a real ``baat serve``.

Clients use other loopback addresses (127.0.0.2, ...) as their source address, the way
different hosts would reach the server.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from baat.contract import link_message
from baat.crypto import identity_dh_signature_message
from baat.crypto.linking import link_commitment
from support.cli import baat
from support.devices import b64, raw, registration_body
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def client_at(address: str, server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
    )


def code_of(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def junk_registrations(http: httpx.Client, n: int) -> None:
    """``n`` registrations of every invalid kind; none may be charged."""
    good = registration_body("mallory")
    bodies: list[object] = [
        {**good, "proof": b64(b"\0" * 64)},  # does not verify
        {**good, "identity_key": b64(b"\0" * 31)},  # wrong size
        {**good, "username": "x"},  # invalid name
        {**good, "jurisdiction": "XX"},
        [1, 2, 3],
    ]
    for i in range(n):
        body = bodies[i % len(bodies)]
        r = http.post("/v1/accounts", json=body)
        assert r.status_code in (400, 401), r.text
        r = http.post(
            "/v1/accounts", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and code_of(r) == "invalid_request"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "server",
        None,
        *("--registrations-per-minute", "6", "--registrations-per-address", "2"),
        *("--links-per-minute", "4", "--links-per-address", "1"),
    ).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()


def test_invalid_registrations_from_one_address_do_not_stop_valid_ones(
    limited: ServerProcess,
) -> None:
    with (
        client_at("127.0.0.2", limited) as abuser,
        client_at("127.0.0.3", limited) as other,
        client_at("127.0.0.4", limited) as third,
        client_at("127.0.0.5", limited) as fourth,
        client_at("127.0.0.6", limited) as late,
    ):
        junk_registrations(abuser, 60)
        # Validated before charged: nobody is limited, not even the abuser.
        assert other.post("/v1/accounts", json=registration_body("olga")).status_code == 201
        assert abuser.post("/v1/accounts", json=registration_body("amir")).status_code == 201
        # A taken name is refused for what it is, and charged: names cannot be probed
        # faster than accounts can be made.
        r = abuser.post("/v1/accounts", json=registration_body("olga"))
        assert (r.status_code, code_of(r)) == (409, "username_taken")
        # One address has its own share (2 a minute here); past it, only it is refused.
        r = abuser.post("/v1/accounts", json=registration_body("arun"))
        assert (r.status_code, code_of(r)) == (429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert third.post("/v1/accounts", json=registration_body("tara")).status_code == 201
        # The server-wide ceiling (6) still holds when many addresses add up to it.
        assert fourth.post("/v1/accounts", json=registration_body("fred")).status_code == 201
        assert fourth.post("/v1/accounts", json=registration_body("fern")).status_code == 201
        r = late.post("/v1/accounts", json=registration_body("lena"))
        assert (r.status_code, code_of(r)) == (429, "rate_limited")
    assert httpx.get(limited.url + "/healthz").status_code == 200
    assert "Traceback" not in limited.log()


def link_body(code: str) -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    ik, dh = raw(key), raw(X25519PrivateKey.generate())
    return {
        "code": code,
        "identity_key": b64(ik),
        "identity_dh_key": b64(dh),
        "identity_dh_sig": b64(key.sign(identity_dh_signature_message(dh))),
        "proof": b64(key.sign(link_message(code, ik, dh))),
        # The SAS commitment every link carries (docs/CRYPTO.md §16).
        "commitment": b64(link_commitment(secrets.token_bytes(32), ik)),
    }


def test_device_linking_has_its_own_limiter(limited: ServerProcess) -> None:
    with (
        client_at("127.0.0.2", limited) as abuser,
        client_at("127.0.0.3", limited) as owner,
        client_at("127.0.0.4", limited) as other,
    ):
        r = owner.post("/v1/accounts", json=registration_body("owen"))
        assert r.status_code == 201
        me = r.json()
        auth = {"authorization": f"Bearer {me['account_id']}.1.{me['token']}"}
        # The abuser fills the registration limits (its share and, with helpers, more).
        junk_registrations(abuser, 20)
        for name in ("ab1", "ab2", "ab3"):
            abuser.post("/v1/accounts", json=registration_body(name))
        # Invalid link attempts, even with bad proofs, are not charged.
        for _ in range(30):
            bad = {**link_body("guess"), "proof": b64(b"\1" * 64)}
            r = abuser.post("/v1/devices", json=bad)
            assert (r.status_code, code_of(r)) == (401, "bad_proof")
        code = owner.post("/v1/devices/link-codes", headers=auth).json()["code"]
        r = owner.post("/v1/devices", json=link_body(code))
        assert r.status_code == 201, r.text
        # Guessing codes with valid proofs is charged: one a minute per address here.
        r = abuser.post("/v1/devices", json=link_body("not-a-code"))
        assert (r.status_code, code_of(r)) == (404, "invalid_link_code")
        r = abuser.post("/v1/devices", json=link_body("still-not-a-code"))
        assert (r.status_code, code_of(r)) == (429, "rate_limited")
        # ... which does not stop anyone else.
        code = owner.post("/v1/devices/link-codes", headers=auth).json()["code"]
        assert other.post("/v1/devices", json=link_body(code)).status_code == 201


def make_invites(db: str, count: int) -> list[str]:
    command = [sys.executable, "-m", "baat", "admin", "invite", "--db", db, "--json"]
    out = subprocess.run(
        [*command, "--count", str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    codes: list[str] = json.loads(out.stdout)["invites"]
    return codes


def test_invite_mode(tmp_path: Path, db_url: str) -> None:
    server = ServerProcess(tmp_path / "server", db_url, "--registration", "invite").start()
    try:
        codes = make_invites(db_url, 2)
        assert len(set(codes)) == 2
        with httpx.Client(base_url=server.url, timeout=30) as http:
            r = http.post("/v1/accounts", json=registration_body("invivan"))
            assert (r.status_code, code_of(r)) == (403, "invite_required")
            body = {**registration_body("invivan"), "invite": "made-up-code-000000"}
            r = http.post("/v1/accounts", json=body)
            assert (r.status_code, code_of(r)) == (403, "invite_required")
            r = http.post("/v1/accounts", json={**registration_body("invivan"), "invite": codes[0]})
            assert r.status_code == 201, r.text
            # A taken name does not use the code up: the person chooses another name.
            r = http.post("/v1/accounts", json={**registration_body("invivan"), "invite": codes[1]})
            assert (r.status_code, code_of(r)) == (409, "username_taken")
            # One code, one account.
            r = http.post("/v1/accounts", json={**registration_body("invinez"), "invite": codes[0]})
            assert (r.status_code, code_of(r)) == (403, "invite_required")
        # The command-line client passes the code along.
        refused = baat(tmp_path / "p1", "register", "--server", server.url, "invinez", check=False)
        assert refused.returncode != 0 and "invite" in refused.stderr
        baat(tmp_path / "p2", "register", "--server", server.url, "invinez", "--invite", codes[1])
    finally:
        server.stop()
    assert "Traceback" not in server.log()
