"""Account registration and lookup: parsing and rules, no HTTP."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from baat.contract import registration_message
from baat.crypto import InvalidSignature as InvalidIdentitySignature
from baat.crypto import verify_identity_dh_signature
from baat.server.auth import new_token
from baat.server.regions.ids import new_account_id
from baat.server.storage.base import Account, Device, UsernameTaken
from baat.server.storage.sql import SqlStore, today

# The jurisdictions the privacy notice has wording for (baat.privacy.purposes); "ZZ" is
# the notice for everywhere else. The choice changes wording and storage, never rights.
JURISDICTIONS = frozenset({"IN", "EU", "GB", "US", "ZZ"})
# Two characters are enough ("me", "jo"): names are unique per server, not secrets, and
# the usual short ones being taken costs nothing (docs/PROTOCOL.md, "Accounts").
_USERNAME = re.compile(r"^[a-z][a-z0-9_.]{1,31}$")


class RegistrationError(ValueError):
    """Registration input is invalid; ``code`` is stable."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def normalize_username(raw: str) -> str:
    """NFKC, case-folded and validated.

    Raises:
        RegistrationError: not 2-32 characters of a-z, 0-9, '_' and '.', starting with a letter.
    """
    name = unicodedata.normalize("NFKC", raw).casefold().strip()
    if not _USERNAME.match(name):
        raise RegistrationError(
            "invalid_username",
            "a username is 2-32 characters: letters a-z, digits, '_' and '.', "
            "starting with a letter",
        )
    return name


def b64_field(value: object, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise RegistrationError("invalid_request", f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise RegistrationError("invalid_request", f"{field} is not valid base64") from exc
    if size is not None and len(raw) != size:
        raise RegistrationError("invalid_key", f"{field} must be {size} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class Registered:
    account_id: str
    username: str
    device_id: int
    token: str


async def register(
    store: SqlStore,
    body: object,
    region: str,
    taken_elsewhere: Callable[[str], Awaitable[bool]] | None = None,
    admit: Callable[[dict[str, object]], Awaitable[None]] | None = None,
) -> Registered:
    """Create an account and its first device from a JSON body. ``admit`` runs once the
    request is known to be valid, before the name is looked up: the place for rate limits
    and invites (``baat.server.admission``), so that invalid requests charge nothing and
    names cannot be probed faster than accounts can be made.

    Raises:
        RegistrationError: invalid input, bad proof of possession.
        UsernameTaken: the name is in use.
    """
    if not isinstance(body, dict):
        raise RegistrationError("invalid_request", "expected a JSON object")
    username = normalize_username(str(body.get("username", "")))
    identity_key = b64_field(body.get("identity_key"), "identity_key", 32)
    identity_dh_key = b64_field(body.get("identity_dh_key"), "identity_dh_key", 32)
    identity_dh_sig = b64_field(body.get("identity_dh_sig"), "identity_dh_sig", 64)
    proof = b64_field(body.get("proof"), "proof", 64)
    jurisdiction = str(body.get("jurisdiction", "ZZ")).upper()
    if jurisdiction not in JURISDICTIONS:
        raise RegistrationError(
            "invalid_jurisdiction", f"jurisdiction must be one of {sorted(JURISDICTIONS)}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(
            proof, registration_message(username, identity_key, identity_dh_key)
        )
    except (InvalidSignature, ValueError) as exc:
        raise RegistrationError(
            "bad_proof", "the proof does not verify with the identity key", 401
        ) from exc
    try:
        verify_identity_dh_signature(identity_key, identity_dh_key, identity_dh_sig)
    except InvalidIdentitySignature as exc:
        raise RegistrationError(
            "invalid_key", "identity_dh_sig does not verify with the identity key"
        ) from exc
    if admit is not None:
        await admit(body)
    if await store.account_by_username(username) is not None or (
        taken_elsewhere is not None and await taken_elsewhere(username)
    ):
        raise UsernameTaken(username)
    account_id = new_account_id(region)
    token, token_digest = new_token()
    day = today()
    await store.create_account(
        Account(account_id, username, region, jurisdiction, day, day),
        Device(account_id, 1, identity_key, identity_dh_key, identity_dh_sig, day, token_digest),
    )
    return Registered(account_id, username, 1, token)
