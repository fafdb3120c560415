"""HTTP authentication of devices.

WebSocket connections prove possession of the device's Ed25519 key (see ``baat.proto``).
Plain HTTP calls (privacy, rights, account lookup) carry a bearer token issued at
registration: ``Authorization: Bearer <account_id>.<device_id>.<token>``. The server keeps
only SHA-256 of the token, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    account_id: str
    device_id: int
    token: str

    def header(self) -> str:
        return f"Bearer {self.account_id}.{self.device_id}.{self.token}"


class BadCredentials(ValueError):
    """The Authorization header is missing, malformed or does not match a device."""


def new_token() -> tuple[str, bytes]:
    """A fresh bearer token and the hash the server stores."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_header(value: str | None) -> DeviceCredentials:
    """Split an Authorization header into its parts.

    Raises:
        BadCredentials: missing or malformed header.
    """
    if not value or not value.startswith("Bearer "):
        raise BadCredentials("missing bearer credentials")
    parts = value[len("Bearer ") :].split(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise BadCredentials("malformed bearer credentials")
    return DeviceCredentials(parts[0], int(parts[1]), parts[2])


def check_token(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
