"""JSON routes for this account's devices: list, remove, and link a new one.

Linking as ``baat device link`` does it (docs/GROUPS.md §4.1), spread over the page: the
primary makes a one-time code (shown as text and as a QR code), watches the server for the
device that uses it, shows the 6-digit code both screens must agree on, and signs the new
device into the account's list once the person confirms (or removes it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.core import ClientError
from baat.client.devices import DeviceError
from baat.client.sdk import Client
from baat.crypto import CryptoError
from baat.web.jsonapi import ApiError, body_of, ok, qr_svg, runtime_of, typed
from baat.web.runtime import PendingLink, Runtime

# How often the primary asks the server whether the new device has joined.
LINK_POLL = 1.0


def _device_of(request: Request) -> int:
    try:
        return int(request.path_params["device"])
    except ValueError as exc:
        raise ApiError(404, "unknown_device", "no such device") from exc


def _changed(runtime: Runtime, **extra: object) -> None:
    runtime.hub.publish({"type": "devices", **extra})


@typed
async def devices(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    found = await client.devices.server_devices()
    with client.store.transaction() as tx:
        known = client.devices.known(tx, client.info.account_id) or {}
    rows = [
        {
            "device_id": int(d["device_id"]),
            "created_day": d.get("created_day"),
            "primary": bool(d.get("primary")),
            "current": bool(d.get("current")),
            "listed": int(d["device_id"]) in known,
        }
        for d in found
    ]
    link = runtime.pending_link
    pending = (
        {"device_id": link.device_id, "sas": link.sas}
        if link is not None and link.device_id is not None
        else None
    )
    return ok({"devices": rows, "this_is_primary": client.devices.is_primary, "joined": pending})


@typed
async def remove_device(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    await body_of(request)
    device_id = _device_of(request)
    if device_id == client.info.device_id:
        raise ApiError(400, "current_device", "this is the device you are using")
    await client.devices.remove(device_id)
    link = runtime.pending_link
    if link is not None and link.device_id == device_id:
        runtime.pending_link = None
    _changed(runtime, removed=device_id)
    return ok({"removed": device_id})


@typed
async def link_code(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    await body_of(request)
    before = {int(d["device_id"]) for d in await client.devices.server_devices()}
    code, expires_at = await client.devices.create_link_code()
    link = PendingLink(code=code, expires_at=expires_at, known=before)
    runtime.pending_link = link
    runtime.spawn(_watch(runtime, client, link))
    return ok({"code": code.to_text(), "expires_at": expires_at}, status=201)


async def _watch(runtime: Runtime, client: Client, link: PendingLink) -> None:
    """Until the code expires or is replaced: the first new device on the server is the
    one that used it; tell every tab, with the SAS to compare."""
    while runtime.pending_link is link and time.time() < link.expires_at:
        await asyncio.sleep(LINK_POLL)
        try:
            found = await client.devices.server_devices()
        except (ClientError, DeviceError, OSError):
            continue  # offline for a moment: ask again
        new = next((d for d in found if int(d["device_id"]) not in link.known), None)
        if new is not None and runtime.pending_link is link:
            device_id = int(new["device_id"])
            try:  # commit-then-reveal with the new device (docs/CRYPTO.md §16)
                sas = await client.devices.confirm_link(
                    link.code, device_id, base64.b64decode(new["identity_key"])
                )
            except (ClientError, DeviceError, CryptoError) as exc:
                with contextlib.suppress(ClientError, DeviceError):
                    await client.devices.remove(device_id)
                runtime.pending_link = None
                _changed(runtime, expired=True, error=str(exc))
                return
            link.device_id = device_id
            link.sas = sas
            _changed(runtime, joined=link.device_id, sas=link.sas)
            return
    if runtime.pending_link is link:
        runtime.pending_link = None
        _changed(runtime, expired=True)


@typed
async def link_qr(request: Request) -> Response:
    """The current link code as a QR code (its binary form, as ``baat device link``
    prints it), drawn here so that the page needs no script library."""
    link = runtime_of(request).pending_link
    if link is None or link.device_id is not None or time.time() >= link.expires_at:
        raise ApiError(404, "no_link_code", "no link code is waiting: create one")
    return qr_svg(link.code.to_bytes(), "QR code of the link code")


@typed
async def approve(request: Request) -> Response:
    """Both screens showed the same 6-digit code: sign the new device into the list."""
    runtime = runtime_of(request)
    client = runtime.need_client()
    await body_of(request)
    device_id = _device_of(request)
    link = runtime.pending_link
    if link is None or link.device_id != device_id:
        raise ApiError(404, "unknown_device", "no device is waiting to be confirmed with this id")
    listed = await client.devices.publish(include=[device_id])
    runtime.pending_link = None
    _changed(runtime, listed=device_id)
    return ok({"listed": device_id, "version": listed.version})


@typed
async def cancel_link(request: Request) -> Response:
    """Forget the code on screen (it still expires on the server by itself)."""
    runtime = runtime_of(request)
    await body_of(request)
    runtime.pending_link = None
    return ok({"cancelled": True})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/devices", devices, methods=["GET"]),
        Route("/api/devices/link-code", link_code, methods=["POST"]),
        Route("/api/devices/link-code/qr.svg", link_qr, methods=["GET"]),
        Route("/api/devices/link-code/cancel", cancel_link, methods=["POST"]),
        Route("/api/devices/{device}/remove", remove_device, methods=["POST"]),
        Route("/api/devices/{device}/approve", approve, methods=["POST"]),
    ]
