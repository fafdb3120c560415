"""Registering accounts and connecting devices without the client SDK (server tests)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from baat.client.transport import Transport
from baat.contract import DeviceCredentials, registration_message
from baat.crypto import identity_dh_signature_message

# Closed after each test by the autouse fixture in tests/conftest.py.
OPEN_TRANSPORTS: list[Transport] = []


def raw(key: object) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)  # type: ignore[attr-defined,no-any-return]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class DeviceUnderTest:
    username: str
    account_id: str
    device_id: int
    token: str
    key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    @property
    def creds(self) -> DeviceCredentials:
        return DeviceCredentials(self.account_id, self.device_id, self.token)

    async def connect(self, url: str) -> Transport:
        t = await Transport.connect(url, self.account_id, self.device_id, self.sign)
        OPEN_TRANSPORTS.append(t)
        return t


def registration_body(username: str, key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    key = key or Ed25519PrivateKey.generate()
    ik = raw(key)
    dh = raw(X25519PrivateKey.generate())
    return {
        "username": username,
        "identity_key": b64(ik),
        "identity_dh_key": b64(dh),
        "identity_dh_sig": b64(key.sign(identity_dh_signature_message(dh))),
        "proof": b64(key.sign(registration_message(username.casefold(), ik, dh))),
    }


async def register(url: str, username: str) -> DeviceUnderTest:
    key = Ed25519PrivateKey.generate()
    async with httpx.AsyncClient() as http:
        r = await http.post(url + "/v1/accounts", json=registration_body(username, key))
    assert r.status_code == 201, r.text
    body = r.json()
    return DeviceUnderTest(
        body["username"], body["account_id"], body["device_id"], body["token"], key
    )
