"""What a region serves to the other regions (``/v1/regions/...``).

Only linked regions may call: each request is signed with the calling region's own key and
the caller is the region whose key verifies (``baat.server.regions.signing``). Each answer
is about this region's own accounts only, and passes the transfer gate before any byte of
it leaves.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.contract import DeviceCredentials
from baat.privacy.errors import UndeclaredRegion, UndeclaredTransfer
from baat.proto import ErrorCode, SendResult
from baat.server.accounts import RegistrationError, normalize_username
from baat.server.bundles import NoSuchDevice, claim_bundles, public_details
from baat.server.errors import SendRefused
from baat.server.regions import wire
from baat.server.regions.ids import region_of, region_of_blob
from baat.server.regions.signing import SIGNATURE_HEADER, BadRegionSignature
from baat.server.storage.base import StorageUnavailable

if TYPE_CHECKING:
    from baat.server.regions.links import Regions
    from baat.server.state import ServerState

# How long a send from another region may wait for its envelopes to become final here
# (acknowledged or stored): past it the other region retries, and duplicates are dropped.
SEND_TIMEOUT_S = 30.0

T = TypeVar("T")


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.response = Response(
            wire.encode(wire.Refusal(code, message, retry_after_ms)),
            status_code=status,
            media_type=wire.MEDIA_TYPE,
        )


def _state(request: Request) -> tuple[ServerState, Regions]:
    state: ServerState = request.app.state.server
    if state.regions is None or not state.regions.peers:
        raise _Refused(404, "not_found", "this deployment links no other region")
    return state, state.regions


async def _caller(request: Request, regions: Regions) -> str:
    """The calling region: the one whose key signed this very request (never a header the
    caller chooses). The body is read here to check its digest; Starlette keeps it for
    the handler."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        caller, nonce = regions.verifier.verify(
            request.headers.get(SIGNATURE_HEADER),
            request.method,
            target,
            await request.body(),
            request.headers.get(wire.FETCHER_HEADER, ""),
        )
    except BadRegionSignature as exc:
        status = 403 if exc.code == "unknown_region" else 401
        raise _Refused(status, exc.code, exc.message) from exc
    if regions.nonces is not None and not await regions.nonces.first_time(caller, nonce):
        raise _Refused(401, "replayed_request", "this request was already received")
    return caller


def _gate(regions: Regions, kind: str, to_region: str, count: int = 1) -> None:
    try:
        regions.gate.check(kind, to_region, count)
    except (UndeclaredTransfer, UndeclaredRegion) as exc:
        raise _Refused(403, "transfer_not_declared", str(exc)) from exc


def _endpoint(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer a refusal, and a database outage, as a typed ``Refusal``."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as exc:
            return exc.response
        except StorageUnavailable as exc:
            return _Refused(503, ErrorCode.STORAGE_UNAVAILABLE, str(exc), 1000).response

    return wrapped


def _ok(body: msgspec.Struct) -> Response:
    return Response(wire.encode(body), media_type=wire.MEDIA_TYPE)


async def _body(request: Request, type_: type[T]) -> T:
    try:
        return wire.decode(await request.body(), type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _Refused(400, "malformed_frame", f"malformed request: {exc}") from exc


@_endpoint
async def lookup(request: Request) -> Response:
    state, regions = _state(request)
    caller = await _caller(request, regions)
    try:
        name = normalize_username(request.path_params["username"])
    except RegistrationError as exc:
        raise _Refused(404, "unknown_account", "no such user") from exc
    account = await state.store.account_by_username(name)
    if account is None or regions.home(account.account_id) is not None:
        raise _Refused(404, "unknown_account", f"no user named {name!r} here")
    details = await public_details(state.store, account)
    _gate(regions, "lookup", caller)
    return Response(msgspec.json.encode(details), media_type="application/json", status_code=200)


@_endpoint
async def bundles(request: Request) -> Response:
    state, regions = _state(request)
    caller = await _caller(request, regions)
    req = await _body(request, wire.BundleRequest)
    if regions.home(req.account_id) is not None:
        raise _Refused(404, ErrorCode.UNKNOWN_ACCOUNT, "that account is not stored here")
    try:
        records = await claim_bundles(state.store, req.account_id, req.device_id)
    except NoSuchDevice as exc:
        raise _Refused(404, exc.code, exc.message) from exc
    _gate(regions, "bundle", caller, len(records))
    return _ok(wire.BundleAnswer(records))


@_endpoint
async def send(request: Request) -> Response:
    state, regions = _state(request)
    caller = await _caller(request, regions)
    req = await _body(request, wire.RegionSend)
    if region_of(req.sender_account) != caller:
        raise _Refused(403, "unknown_region", "a region sends only for its own accounts")
    if any(regions.home(e.recipient_account) is not None for e in req.envelopes):
        raise _Refused(400, "misrouted", "an envelope is for an account not stored here")
    done: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()

    def settle(result: SendResult) -> None:
        if not done.done():
            done.set_result(result)

    try:
        await state.router.accept_send(
            (req.sender_account, req.sender_device), req.message_id, req.envelopes, settle
        )
    except SendRefused as exc:
        status = 409 if exc.code == ErrorCode.STALE_DEVICES else 503
        if exc.code in (
            ErrorCode.RATE_LIMITED,
            ErrorCode.RECIPIENT_QUEUE_FULL,
            ErrorCode.RECIPIENT_RATE_LIMITED,
        ):
            status = 429
        raise _Refused(status, exc.code, exc.message, exc.retry_after_ms) from exc
    try:
        result = await asyncio.wait_for(asyncio.shield(done), SEND_TIMEOUT_S)
    except TimeoutError as exc:
        raise _Refused(
            503, ErrorCode.STORAGE_UNAVAILABLE, "not final in time; retry", 1000
        ) from exc
    return _ok(wire.RegionSendResult(result.results))


@_endpoint
async def blob(request: Request) -> Response:
    """Stream an attachment uploaded by an account of this region to a device of the calling
    one; the fetch counts for that device as a local one would."""
    from baat.server.blobs import blob_store, send_blob

    state, regions = _state(request)
    caller = await _caller(request, regions)
    account, _, device = request.headers.get(wire.FETCHER_HEADER, "").rpartition(".")
    if region_of(account) != caller or not device.isdigit():
        raise _Refused(403, "unknown_region", "a region fetches only for its own devices")
    blob_id = request.path_params["blob_id"]
    if region_of_blob(blob_id) != regions.local:
        raise _Refused(404, "unknown_blob", "that blob is not stored here")
    _gate(regions, "blob", caller)
    return await send_blob(
        request, blob_store(state), blob_id, DeviceCredentials(account, int(device), "")
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/regions/blobs/{blob_id}", blob, methods=["GET"]),
        Route("/v1/regions/accounts/{username}", lookup, methods=["GET"]),
        Route("/v1/regions/bundles", bundles, methods=["POST"]),
        Route("/v1/regions/send", send, methods=["POST"]),
    ]
