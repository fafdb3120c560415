"""What client and server agree on outside the frames of ``baat.proto``.

Both sides import this module and neither imports the other (docs/ARCHITECTURE.md,
"Layers"): a client library can be read, packaged and tested without the server.

- The HTTP bearer credentials of a device: ``Authorization: Bearer
  <account_id>.<device_id>.<token>``, issued at registration or linking (docs/PROTOCOL.md,
  "Accounts"). The server keeps only a hash of the token (``baat.server.auth``).
- What a new device signs to prove it holds its identity key: ``registration_message`` for
  a new account, ``link_message`` for a device linked to an existing one. Each starts with
  its own domain string, so that one signature can never stand for the other.
"""

from __future__ import annotations

from dataclasses import dataclass

REGISTRATION_DOMAIN = b"Baat registration v1\x00"
LINK_DOMAIN = b"Baat link device v1\x00"


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    account_id: str
    device_id: int
    token: str

    def header(self) -> str:
        return f"Bearer {self.account_id}.{self.device_id}.{self.token}"


class BadCredentials(ValueError):
    """The Authorization header is missing, malformed or does not match a device."""


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


def registration_message(username: str, identity_key: bytes, identity_dh_key: bytes) -> bytes:
    """What the new device signs to prove it holds its identity key."""
    return REGISTRATION_DOMAIN + username.encode() + b"\x00" + identity_key + identity_dh_key


def link_message(code: str, identity_key: bytes, identity_dh_key: bytes) -> bytes:
    """What a new device signs to prove it holds the identity key it links with."""
    return LINK_DOMAIN + code.encode() + b"\x00" + identity_key + identity_dh_key
