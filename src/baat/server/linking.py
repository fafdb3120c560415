"""The relay for the device-linking commit-then-reveal (docs/CRYPTO.md §16, PROTOCOL.md
"Linking a device").

1. ``POST /v1/devices`` (devices.py) carries the new device's ``commitment``; it is kept
   here under (account, new device id).
2. ``GET /v1/devices/{id}/link`` (primary): the commitment and, once revealed, the new
   device's nonce. ``PUT /v1/devices/{id}/link`` (primary): reveal the primary's nonce,
   once, and only after the commitment is there.
3. ``GET /v1/devices/link`` (new device): the primary's nonce once revealed.
   ``PUT /v1/devices/link`` (new device): reveal its nonce, once, and only after the
   primary's.

The server checks order and sizes only; the devices check the commitment and compare the
SAS. Entries live ``link_relay.RELAY_TTL_S`` in memory on the node that took the registration, so
a deployment with several nodes sends an account's linking calls to one node (the client
retries on ``link_unknown``). Nothing here is personal data beyond the ten minutes of a
link; nothing is written to storage.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials, DeviceCredentials
from baat.server.state import authenticate

if TYPE_CHECKING:
    from baat.server.state import ServerState

NONCE_BYTES: Final = 32
PRIMARY_DEVICE: Final = 1


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


async def _caller(request: Request) -> tuple[ServerState, DeviceCredentials]:
    state: ServerState = request.app.state.server
    return state, await authenticate(request)


async def _nonce(request: Request) -> bytes | None:
    try:
        body = await request.json()
        nonce = base64.b64decode(body["nonce"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return nonce if len(nonce) == NONCE_BYTES else None


async def primary_view(request: Request) -> Response:
    """GET or PUT ``/v1/devices/{device_id}/link`` by the primary."""
    try:
        state, creds = await _caller(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    if creds.device_id != PRIMARY_DEVICE:
        return _error("not_primary", "only the account's first device links devices", 403)
    try:
        device_id = int(request.path_params["device_id"])
    except ValueError:
        return _error("invalid_request", "device id must be a number", 400)
    ex = state.link_relay.get(creds.account_id, device_id)
    if ex is None:
        return _error("link_unknown", f"no link under way for device {device_id}", 404)
    if request.method == "PUT":
        nonce = await _nonce(request)
        if nonce is None:
            return _error("invalid_request", f"expected {{nonce}}: {NONCE_BYTES} bytes", 400)
        if ex.primary_nonce is not None:
            return _error("already_revealed", "the primary's nonce is already revealed", 409)
        ex.primary_nonce = nonce
        return Response(status_code=204)
    return JSONResponse(
        {"commitment": _b64(ex.commitment), "nonce": _b64(ex.device_nonce)}, status_code=200
    )


async def device_view(request: Request) -> Response:
    """GET or PUT ``/v1/devices/link`` by the new device itself."""
    try:
        state, creds = await _caller(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    ex = state.link_relay.get(creds.account_id, creds.device_id)
    if ex is None:
        return _error("link_unknown", "no link under way for this device", 404)
    if request.method == "PUT":
        nonce = await _nonce(request)
        if nonce is None:
            return _error("invalid_request", f"expected {{nonce}}: {NONCE_BYTES} bytes", 400)
        if ex.primary_nonce is None:
            return _error("too_early", "reveal only after the primary revealed its nonce", 409)
        if ex.device_nonce is not None:
            return _error("already_revealed", "this device's nonce is already revealed", 409)
        ex.device_nonce = nonce
        return Response(status_code=204)
    return JSONResponse({"nonce": _b64(ex.primary_nonce)}, status_code=200)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/devices/link", device_view, methods=["GET", "PUT"]),
        Route("/v1/devices/{device_id}/link", primary_view, methods=["GET", "PUT"]),
    ]
