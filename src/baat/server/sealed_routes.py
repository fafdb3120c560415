"""Sealed sender over the wire: the ``SealedSend`` handler and the HTTP routes
(``/v1/certificate/delivery``, ``/v1/profile/access``, ``/v1/profile``). The keys and the
access check are in ``server/sealed.py``; docs/PROTOCOL.md, "Sealed sender", has the path.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials
from baat.server.sealed import MAX_PROFILE_FIELD
from baat.server.state import authenticate
from baat.server.storage.schema import delivery_access, profiles

if TYPE_CHECKING:
    from baat.server.state import ServerState


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be base64") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _server(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def certificate(request: Request) -> Response:
    """``GET /v1/certificate/delivery``: a sender certificate for the calling device."""
    try:
        creds = await authenticate(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    state = _server(request)
    assert state.sealed is not None
    device = await state.store.device(creds.account_id, creds.device_id)
    assert device is not None  # authenticate() found it
    data, expires = state.sealed.keys.issue(
        creds.account_id,
        creds.device_id,
        device.identity_key,
        device.identity_dh_key,
        int(time.time() * 1000),
    )
    return JSONResponse({"certificate": _b64(data), "expires_ms": expires})


async def access(request: Request) -> Response:
    """``GET``/``PUT /v1/profile/access``: the account's delivery access."""
    try:
        creds = await authenticate(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    state = _server(request)
    assert state.sealed is not None
    table = delivery_access
    if request.method == "PUT":
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            raw = body.get("verifier")
            verifier = None if raw is None else _unb64(raw, "verifier", 32)
            anyone = body.get("anyone", False)
            if not isinstance(anyone, bool):
                raise ValueError("anyone must be true or false")
        except ValueError as exc:
            return _error("invalid_request", str(exc), 400)
        row = {"account_id": creds.account_id, "verifier": verifier, "anyone": int(anyone)}
        async with state.store.engine.begin() as conn:
            stmt = state.store._insert(table).values(**row)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.account_id],
                    set_={"verifier": verifier, "anyone": int(anyone)},
                )
            )
        state.sealed.forget(creds.account_id)
    found = await state.sealed.access(creds.account_id)
    return JSONResponse(
        {
            "verifier": None if found.verifier is None else _b64(found.verifier),
            "anyone": found.anyone,
        }
    )


async def profile(request: Request) -> Response:
    """``PUT /v1/profile`` (own), ``GET /v1/profile/{account_id}``: encrypted profiles."""
    try:
        creds = await authenticate(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    state = _server(request)
    if request.method == "PUT":
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            version = body.get("version")
            if not isinstance(version, int) or not 0 <= version < 2**63:
                raise ValueError("version must be a non-negative integer")
            name = _unb64(body.get("name"), "name")
            avatar = None if body.get("avatar") is None else _unb64(body["avatar"], "avatar")
            if len(name) > 4096 or (avatar is not None and len(avatar) > MAX_PROFILE_FIELD):
                raise ValueError("profile field too large")
        except ValueError as exc:
            return _error("invalid_request", str(exc), 400)
        row = {"version": version, "name": name, "avatar": avatar}
        async with state.store.engine.begin() as conn:
            stmt = state.store._insert(profiles).values(account_id=creds.account_id, **row)
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=[profiles.c.account_id], set_=row)
            )
        return Response(status_code=204)
    account_id = request.path_params["account_id"]
    async with state.store.engine.connect() as conn:
        found = (
            await conn.execute(select(profiles).where(profiles.c.account_id == account_id))
        ).first()
    if found is None:
        return _error("unknown_profile", "no profile stored for that account", 404)
    return JSONResponse(
        {
            "version": found.version,
            "name": _b64(found.name),
            "avatar": None if found.avatar is None else _b64(found.avatar),
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/certificate/delivery", certificate, methods=["GET"]),
        Route("/v1/profile/access", access, methods=["GET", "PUT"]),
        Route("/v1/profile", profile, methods=["PUT"]),
        Route("/v1/profile/{account_id}", profile, methods=["GET"]),
    ]
