"""Business accounts on the server (docs/BUSINESS.md): signed profiles and the operator's
verification statements.

1. A business's primary device publishes its signed profile (``PUT /v1/business/profile``).
   The server checks the signature with the account's primary identity key, the account id
   it names, and that the version grows; it keeps the bytes as they are, for clients to
   verify again (the server is not trusted with the disclosure, only with storing it).
2. Anyone signed in reads it with ``GET /v1/business/{account_id}``, together with the
   operator's verification statement, if any.
3. ``baat admin verify-business NAME`` signs a statement (a compact JWS under the keys the
   server publishes at ``/.well-known/baat/keys``) naming the account, its legal entity
   and country: a client shows the verified badge only when the statement verifies and
   still names the entity and country of the current profile.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from joserfc import jws
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials
from baat.crypto.business import (
    MAX_PROFILE_BYTES,
    VERIFICATION_TYP,
    BusinessProfile,
    InvalidBusinessProfile,
    verify_business_profile,
)
from baat.privacy.policy import canonical_json
from baat.privacy.receipts import ALG
from baat.server.privacy.keys import SigningKey
from baat.server.state import ServerState, authenticate
from baat.server.storage.schema import business_profiles, business_verifications
from baat.server.storage.sql import today

PRIMARY_DEVICE: Final = 1


class BusinessError(Exception):
    """A refused business operation; ``code`` is stable."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


# -- storage ------------------------------------------------------------------------------


async def store_profile(engine: AsyncEngine, account_id: str, version: int, blob: bytes) -> bool:
    """Store a verified profile unless one as new or newer is stored."""
    t = business_profiles
    async with engine.begin() as conn:
        current = await conn.scalar(select(t.c.version).where(t.c.account_id == account_id))
        if current is not None and int(current) >= version:
            return False
        values = {"version": version, "signed_profile": blob, "updated_day": today()}
        if current is None:
            await conn.execute(t.insert().values(account_id=account_id, **values))
        else:
            await conn.execute(update(t).where(t.c.account_id == account_id).values(**values))
        return True


async def load(engine: AsyncEngine, account_id: str) -> tuple[int, bytes, str | None] | None:
    """(version, signed profile, verification statement or None), or None: no business."""
    p, v = business_profiles.c, business_verifications.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(p.version, p.signed_profile, v.statement)
                .select_from(
                    business_profiles.outerjoin(
                        business_verifications, v.account_id == p.account_id
                    )
                )
                .where(p.account_id == account_id)
            )
        ).first()
    if row is None:
        return None
    return int(row[0]), bytes(row[1]), None if row[2] is None else str(row[2])


# -- the operator's statement ----------------------------------------------------------------


def statement_payload(account_id: str, username: str, p: BusinessProfile, now: int) -> bytes:
    return canonical_json(
        {
            "type": "business-verification",
            "account_id": account_id,
            "username": username,
            "entity": p.entity,
            "country": p.country,
            "profile_version": p.version,
            "verified_at": now,
        }
    )


async def verify_business(
    engine: AsyncEngine, key: SigningKey, username: str, now: int
) -> dict[str, Any]:
    """Sign and store the operator's statement for the business ``username``.

    Raises:
        BusinessError: no such account, or it has no business profile.
    """
    from baat.server.storage.schema import accounts, devices

    async with engine.connect() as conn:
        account_id = await conn.scalar(
            select(accounts.c.account_id).where(accounts.c.username == username)
        )
        key_row = await conn.scalar(
            select(devices.c.identity_key).where(
                devices.c.account_id == account_id, devices.c.device_id == PRIMARY_DEVICE
            )
        )
    if account_id is None or key_row is None:
        raise BusinessError("unknown_account", f"no account named {username!r}", 404)
    found = await load(engine, str(account_id))
    if found is None:
        raise BusinessError("not_a_business", f"{username!r} has no business profile", 404)
    profile = verify_business_profile(bytes(key_row), found[1], account_id=str(account_id))
    token = jws.serialize_compact(
        {"alg": ALG, "kid": key.kid, "typ": VERIFICATION_TYP},
        statement_payload(str(account_id), username, profile, now),
        key.key,
        algorithms=[ALG],
    )
    t = business_verifications
    async with engine.begin() as conn:
        await conn.execute(t.delete().where(t.c.account_id == account_id))
        await conn.execute(
            t.insert().values(account_id=account_id, statement=token, verified_day=now // 86_400)
        )
    body: dict[str, Any] = json.loads(statement_payload(str(account_id), username, profile, now))
    return {**body, "statement": token}


# -- HTTP ---------------------------------------------------------------------------------


async def put_profile(request: Request) -> Response:
    try:
        creds = await authenticate(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    if creds.device_id != PRIMARY_DEVICE:
        return _error("not_primary", "only the first device signs the business profile", 403)
    try:
        body = await request.json()
        blob = base64.b64decode(body["signed_profile"], validate=True)
    except (ValueError, KeyError, TypeError):
        return _error("invalid_request", "expected {signed_profile (base64)}", 400)
    if not 0 < len(blob) <= MAX_PROFILE_BYTES:
        return _error("invalid_request", "signed_profile is empty or too large", 400)
    state = _state(request)
    device = await state.store.device(creds.account_id, PRIMARY_DEVICE)
    assert device is not None  # authenticated as that very device
    try:
        profile = verify_business_profile(device.identity_key, blob, account_id=creds.account_id)
    except InvalidBusinessProfile as exc:
        return _error("invalid_business_profile", str(exc), 400)
    if not await store_profile(state.store.engine, creds.account_id, profile.version, blob):
        return _error("stale_version", "a business profile as new or newer is stored", 409)
    return Response(status_code=204)


async def get_profile(request: Request) -> Response:
    try:
        await authenticate(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    account_id = request.path_params["account_id"]
    state = _state(request)
    found = await load(state.store.engine, account_id)
    if found is None:
        return _error("not_a_business", "this account is not a business account", 404)
    version, blob, statement = found
    return JSONResponse(
        {
            "account_id": account_id,
            "version": version,
            "signed_profile": base64.b64encode(blob).decode(),
            "verification": statement,
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/business/profile", put_profile, methods=["PUT"]),
        Route("/v1/business/{account_id}", get_profile, methods=["GET"]),
    ]
