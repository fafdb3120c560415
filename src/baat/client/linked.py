"""Joining an existing account as a new, linked device (docs/GROUPS.md §2, docs/CRYPTO.md
§16): the new device's side of the commit-then-reveal whose primary side is
``devices.DeviceDirectory.confirm_link``. A module above sdk.py, since it makes the
``Client`` of the new device.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from baat.client.core import NotConnected, RegistrationFailed
from baat.client.devices import _b64, _error_of, _poll_nonce, _server_code
from baat.client.sdk import Client
from baat.client.store import ProfileInfo, Store
from baat.contract import link_message
from baat.crypto import IdentityKeyPair, LinkCode, link_commitment, link_nonce, link_sas_committed


async def register_linked(
    profile: Path, passphrase: str, code_text: str, timeout: float = 120
) -> tuple[Client, str]:
    """Join the account of ``code_text`` as a new device; returns the client and the SAS to
    compare with the primary's screen, once the primary took part in the commit-then-reveal
    (it runs ``DeviceDirectory.confirm_link`` meanwhile).

    Raises:
        InvalidLinkCode: the code does not parse (a typo).
        RegistrationFailed: the server refused (``invalid_link_code``: used or expired;
            ``too_many_devices``).
        NotConnected: the server is unreachable.
        DeviceError: the primary did not reveal its nonce within ``timeout`` seconds.
    """
    from baat.client.sdk import Client

    code = LinkCode.from_text(code_text)
    identity = IdentityKeyPair.generate()
    server_code = _server_code(code)
    nonce = link_nonce()
    body = {
        "commitment": _b64(link_commitment(nonce, identity.identity_key)),
        "code": server_code,
        "identity_key": _b64(identity.identity_key),
        "identity_dh_key": _b64(identity.identity_dh_key),
        "identity_dh_sig": _b64(identity.identity_dh_sig),
        "proof": _b64(
            identity.sign(
                link_message(server_code, identity.identity_key, identity.identity_dh_key)
            )
        ),
    }
    try:
        async with httpx.AsyncClient(base_url=code.server_url, timeout=15) as http:
            r = await http.post("/v1/devices", json=body)
            if r.status_code != 201:
                raise RegistrationFailed(*_error_of(r))
            reg = r.json()
            auth = f"Bearer {reg['account_id']}.{reg['device_id']}.{reg['token']}"
            listed = await http.get("/v1/devices", headers={"authorization": auth})
    except httpx.HTTPError as exc:
        raise NotConnected(f"cannot reach {code.server_url}: {exc}") from exc
    if reg["account_id"] != code.account_id:
        raise RegistrationFailed("wrong_account", "the server linked another account")
    primary = next(d for d in listed.json()["devices"] if d["primary"])
    primary_key = base64.b64decode(primary["identity_key"])
    store = Store.create(profile, passphrase)
    store.save_identity(identity.to_bytes(), {"token": reg["token"]})
    store.set_info(
        ProfileInfo(code.server_url, reg["username"], reg["account_id"], reg["device_id"])
    )
    client = await Client.finish_registration(store, identity, {"token": reg["token"]})
    with store.transaction() as tx:
        client.devices.trust_account_key(tx, reg["account_id"], primary_key)
    # Reveal our nonce only once the primary revealed its own (docs/CRYPTO.md §16).
    theirs = await _poll_nonce(client.devices._http, "/v1/devices/link", timeout)
    r = await client.devices._http("PUT", "/v1/devices/link", json={"nonce": _b64(nonce)})
    if r.status_code != 204:
        raise RegistrationFailed(*_error_of(r))
    return client, link_sas_committed(code, primary_key, identity.identity_key, theirs, nonce)
