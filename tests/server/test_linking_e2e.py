"""Device linking through a real ``baat serve``: the commit-then-reveal SAS (docs/CRYPTO.md
§12) and the device limit checked when a device is added."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import httpx
import pytest

from baat.client.linked import register_linked
from baat.client.sdk import Client
from baat.contract import link_message
from baat.crypto import (
    IdentityKeyPair,
    LinkCode,
    LinkCommitmentMismatch,
    check_link_commitment,
    link_commitment,
    link_nonce,
    link_sas_committed,
)
from baat.server.devices import MAX_DEVICES
from client.test_multidevice_support import PASS, joined_device
from support.server import ServerProcess

pytestmark = pytest.mark.e2e

IDENTITY = IdentityKeyPair.generate()
PRIMARY = IdentityKeyPair.generate()
CODE = LinkCode(secret=bytes(20), account_id="acct", server_url="https://example.org")


def test_a_server_cannot_choose_values_that_force_a_sas_match() -> None:
    """The server plays the new device towards the primary with its own key. It must hand
    the primary a commitment before it sees the primary's nonce, so its nonce is fixed
    before the primary's is known: over many runs its SAS matches the real device's about
    once in a million, never by choice."""
    evil = IdentityKeyPair.generate()
    matches = 0
    for _ in range(300):
        # The real new device commits and later reveals; the server relays a commitment of
        # its own to the primary (it cannot open the real one with its key).
        real_nonce = link_nonce()
        evil_nonce = link_nonce()
        evil_commit = link_commitment(evil_nonce, evil.identity_key)
        primary_nonce = link_nonce()  # revealed only now that a commitment was given
        # The server may give the real device any "primary nonce" it likes, but only
        # before the real device reveals its own.
        fake_primary_nonce = link_nonce()
        on_new = link_sas_committed(
            CODE, PRIMARY.identity_key, IDENTITY.identity_key, fake_primary_nonce, real_nonce
        )
        check_link_commitment(evil_commit, evil_nonce, evil.identity_key)
        on_primary = link_sas_committed(
            CODE, PRIMARY.identity_key, evil.identity_key, primary_nonce, evil_nonce
        )
        matches += on_new == on_primary
        # Changing its nonce after the reveal (to search for a match) breaks the
        # commitment the primary holds.
        with pytest.raises(LinkCommitmentMismatch):
            check_link_commitment(evil_commit, link_nonce(), evil.identity_key)
    assert matches == 0


def test_the_sas_depends_on_each_sides_nonce() -> None:
    a, b = link_nonce(), link_nonce()
    base = link_sas_committed(CODE, PRIMARY.identity_key, IDENTITY.identity_key, a, b)
    assert base == link_sas_committed(CODE, PRIMARY.identity_key, IDENTITY.identity_key, a, b)
    assert base != link_sas_committed(
        CODE, PRIMARY.identity_key, IDENTITY.identity_key, link_nonce(), b
    )
    assert base != link_sas_committed(
        CODE, PRIMARY.identity_key, IDENTITY.identity_key, a, link_nonce()
    )
    assert len(a) * 8 >= 128


async def test_linking_shows_the_same_sas_and_the_relay_keeps_the_order(
    server: ServerProcess, tmp_path: Path
) -> None:
    primary = await Client.register(tmp_path / "p", PASS, server.url, "p" + secrets.token_hex(3))
    await primary.connect()
    try:
        before = {d["device_id"] for d in await primary.devices.server_devices()}
        code, _ = await primary.devices.create_link_code()
        joining = asyncio.create_task(register_linked(tmp_path / "n", PASS, code.to_text()))
        new = await joined_device(primary, before)
        device_id = int(str(new["device_id"]))
        # Before the primary reveals, the new device has nothing to reveal against, and
        # the server refuses an early reveal.
        await asyncio.sleep(0.5)
        assert not joining.done()
        sas = await primary.devices.confirm_link(
            code, device_id, base64.b64decode(str(new["identity_key"]))
        )
        device, their_sas = await joining
        assert sas == their_sas
        auth = {"authorization": primary.credentials.header()}
        async with httpx.AsyncClient(base_url=server.url) as http:
            again = await http.put(
                f"/v1/devices/{device_id}/link",
                json={"nonce": base64.b64encode(link_nonce()).decode()},
                headers=auth,
            )
            assert again.status_code == 409 and again.json()["error"]["code"] == (
                "already_revealed"
            )
            bad = await http.put(
                f"/v1/devices/{device_id}/link", json={"nonce": "AAAA"}, headers=auth
            )
            assert bad.status_code == 400
            unknown = await http.get("/v1/devices/99/link", headers=auth)
            assert unknown.json()["error"]["code"] == "link_unknown"
        await device.close()
    finally:
        await primary.close()
    assert "Traceback" not in server.log()


async def _join(url: str, code: LinkCode) -> httpx.Response:
    """A new device's registration with a link code, with a commitment."""
    ident = IdentityKeyPair.generate()
    server_code = base64.urlsafe_b64encode(code.secret[:18]).decode()

    def b64(x: bytes) -> str:
        return base64.b64encode(x).decode()

    body = {
        "code": server_code,
        "identity_key": b64(ident.identity_key),
        "identity_dh_key": b64(ident.identity_dh_key),
        "identity_dh_sig": b64(ident.identity_dh_sig),
        "proof": b64(
            ident.sign(link_message(server_code, ident.identity_key, ident.identity_dh_key))
        ),
        "commitment": b64(link_commitment(link_nonce(), ident.identity_key)),
    }
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.post("/v1/devices", json=body)


async def test_a_seventh_device_fails_even_with_several_outstanding_codes(
    server: ServerProcess, tmp_path: Path
) -> None:
    primary = await Client.register(tmp_path / "p", PASS, server.url, "q" + secrets.token_hex(3))
    try:
        # Codes are handed out while the account has room: all of them before any is used.
        codes = [(await primary.devices.create_link_code())[0] for _ in range(MAX_DEVICES + 2)]
        results = await asyncio.gather(*(_join(server.url, c) for c in codes))
        added = [r for r in results if r.status_code == 201]
        refused = [r for r in results if r.status_code != 201]
        assert len(added) == MAX_DEVICES - 1  # the primary is the first of the six
        assert {r.status_code for r in refused} == {409}
        assert {r.json()["error"]["code"] for r in refused} == {"too_many_devices"}
        assert len(await primary.devices.server_devices()) == MAX_DEVICES
        with pytest.raises(Exception, match="at most"):
            await primary.devices.create_link_code()
    finally:
        await primary.close()


async def test_registration_without_a_commitment_is_refused(
    server: ServerProcess, tmp_path: Path
) -> None:
    primary = await Client.register(tmp_path / "p", PASS, server.url, "r" + secrets.token_hex(3))
    try:
        code, _ = await primary.devices.create_link_code()
        ident = IdentityKeyPair.generate()
        server_code = base64.urlsafe_b64encode(code.secret[:18]).decode()
        body = {
            "code": server_code,
            "identity_key": base64.b64encode(ident.identity_key).decode(),
            "identity_dh_key": base64.b64encode(ident.identity_dh_key).decode(),
            "identity_dh_sig": base64.b64encode(ident.identity_dh_sig).decode(),
            "proof": base64.b64encode(
                ident.sign(link_message(server_code, ident.identity_key, ident.identity_dh_key))
            ).decode(),
        }
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.post("/v1/devices", json=body)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_request"
        # The code was not used up by the refused attempt.
        assert (await _join(server.url, code)).status_code == 201
    finally:
        await primary.close()
