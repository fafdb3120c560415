"""HTTP authentication of devices.

WebSocket connections prove possession of the device's Ed25519 key (see ``baat.proto``).
Plain HTTP calls (privacy, rights, account lookup) carry a bearer token issued at
registration: ``Authorization: Bearer <account_id>.<device_id>.<token>``. The server keeps
only SHA-256 of the token, compared in constant time. The header's format is shared with
the client (``baat.contract``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> tuple[str, bytes]:
    """A fresh bearer token and the hash the server stores."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_token(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
