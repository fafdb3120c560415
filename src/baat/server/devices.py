"""Several devices per account: link codes, linking, listing, removal, signed device list.

The first device of an account is its primary: it creates link codes, removes other
devices and signs the device list that senders check (``baat.crypto.device_list``). Any
device may remove itself. The server keeps the signed list opaque; it only refuses to go
back to an older version, and it refuses sends that do not address exactly the account's
current devices (``stale_devices``), which makes a sender refresh.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials, DeviceCredentials, link_message
from baat.crypto import InvalidSignature as InvalidIdentitySignature
from baat.crypto import verify_identity_dh_signature
from baat.server.accounts import RegistrationError, b64_field
from baat.server.admission import AdmissionRefused
from baat.server.auth import new_token
from baat.server.state import authenticate
from baat.server.storage.base import Device, TooManyDevices
from baat.server.storage.sql import today

if TYPE_CHECKING:
    from baat.server.state import ServerState

PRIMARY_DEVICE = 1
LINK_CODE_TTL_S = 600
MAX_DEVICES = 6
MAX_DEVICE_LIST_BYTES = 16 * 1024


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def _auth(request: Request) -> DeviceCredentials:
    return await authenticate(request)


async def create_link_code(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    if creds.device_id != PRIMARY_DEVICE:
        return _error("not_primary", "only the account's first device can link devices", 403)
    state = _state(request)
    if len(await state.store.devices(creds.account_id)) >= MAX_DEVICES:
        return _error("too_many_devices", f"an account has at most {MAX_DEVICES} devices", 409)
    code = secrets.token_urlsafe(18)
    expires_at = int(time.time()) + LINK_CODE_TTL_S
    await state.store.create_link_code(creds.account_id, _hash(code), expires_at)
    return JSONResponse({"code": code, "expires_at": expires_at}, status_code=201)


async def link_device(request: Request) -> Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        return _error("invalid_request", "the body must be JSON", 400)
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return _error("invalid_request", "expected {code, identity_key, ...}", 400)
    try:
        identity_key = b64_field(body.get("identity_key"), "identity_key", 32)
        identity_dh_key = b64_field(body.get("identity_dh_key"), "identity_dh_key", 32)
        identity_dh_sig = b64_field(body.get("identity_dh_sig"), "identity_dh_sig", 64)
        proof = b64_field(body.get("proof"), "proof", 64)
        # The SAS commitment (linking.py, docs/CRYPTO.md §16).
        commitment = b64_field(body.get("commitment"), "commitment", 32)
    except RegistrationError as exc:
        return _error(exc.code, exc.message, exc.status)
    code = body["code"]
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(
            proof, link_message(code, identity_key, identity_dh_key)
        )
        verify_identity_dh_signature(identity_key, identity_dh_key, identity_dh_sig)
    except (InvalidSignature, InvalidIdentitySignature, ValueError):
        return _error("bad_proof", "the proof or key signature does not verify", 401)
    # Charged only now that the request is valid (baat.server.admission), and before the
    # code is looked up, so that guessing codes is limited too.
    try:
        state.admission.admit_link(request.client.host if request.client else None)
    except AdmissionRefused as exc:
        response = _error(exc.code, exc.message, exc.status)
        response.headers.update(exc.headers)
        return response
    account_id = await state.store.consume_link_code(_hash(code), int(time.time()))
    if account_id is None:
        return _error("invalid_link_code", "the link code is unknown, used or expired", 404)
    account = await state.store.account(account_id)
    if account is None:
        return _error("invalid_link_code", "the account no longer exists", 404)
    token, digest = new_token()
    try:
        # The limit is checked in the transaction that adds the device, so that several
        # outstanding link codes cannot add more than MAX_DEVICES between them.
        device_id = await state.store.add_device(
            Device(account_id, 0, identity_key, identity_dh_key, identity_dh_sig, today(), digest),
            max_devices=MAX_DEVICES,
        )
    except TooManyDevices:
        return _error("too_many_devices", f"an account has at most {MAX_DEVICES} devices", 409)
    state.link_relay.start(account_id, device_id, commitment)
    await state.router.devices_changed(account_id)
    return JSONResponse(
        {
            "account_id": account_id,
            "username": account.username,
            "device_id": device_id,
            "token": token,
        },
        status_code=201,
    )


async def list_devices(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    devices = await _state(request).store.devices(creds.account_id)
    return JSONResponse(
        {
            "devices": [
                {
                    "device_id": d.device_id,
                    "identity_key": base64.b64encode(d.identity_key).decode(),
                    "created_day": d.created_day,
                    "primary": d.device_id == PRIMARY_DEVICE,
                    "current": d.device_id == creds.device_id,
                }
                for d in devices
            ]
        }
    )


async def remove_device(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    try:
        device_id = int(request.path_params["device_id"])
    except ValueError:
        return _error("invalid_request", "device id must be a number", 400)
    if creds.device_id not in (PRIMARY_DEVICE, device_id):
        return _error("not_primary", "only the first device can remove other devices", 403)
    if device_id == PRIMARY_DEVICE:
        return _error(
            "primary_device", "the first device cannot be removed; delete the account", 409
        )
    state = _state(request)
    if not await state.store.remove_device(creds.account_id, device_id):
        return _error("unknown_device", f"no device {device_id} on this account", 404)
    await state.router.devices_changed(creds.account_id, device_id)
    return Response(status_code=204)


async def put_device_list(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    if creds.device_id != PRIMARY_DEVICE:
        return _error("not_primary", "only the first device signs the device list", 403)
    try:
        body = await request.json()
        version = int(body["version"])
        signed = base64.b64decode(body["signed_list"], validate=True)
    except (ValueError, KeyError, TypeError):
        return _error("invalid_request", "expected {version, signed_list (base64)}", 400)
    if not 0 < len(signed) <= MAX_DEVICE_LIST_BYTES:
        return _error("invalid_request", "signed_list is empty or too large", 400)
    if not await _state(request).store.put_device_list(creds.account_id, version, signed):
        return _error("stale_version", "a device list as new or newer is stored", 409)
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/devices/link-codes", create_link_code, methods=["POST"]),
        Route("/v1/devices", link_device, methods=["POST"]),
        Route("/v1/devices", list_devices, methods=["GET"]),
        Route("/v1/devices/{device_id}", remove_device, methods=["DELETE"]),
        Route("/v1/device-list", put_device_list, methods=["PUT"]),
    ]
