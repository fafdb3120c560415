"""HTTP routes for attachment blobs: resumable uploads (tus-like), fetch-once downloads.

The server only ever holds ciphertext: the client encrypts each attachment with a fresh
key before uploading (``baat.client.attachments``) and sends the key inside the end-to-end
encrypted message. What the server learns is the size, the uploading device, when, and
how many devices fetched it.

    POST  /v1/blobs        {"length": N, "fetches_allowed": K} -> 201 {id, url, offset, ...}
    PATCH /v1/blobs/{id}   Upload-Offset: O, body = bytes from O   -> 204, Upload-Offset
    HEAD  /v1/blobs/{id}   (uploader only)                         -> Upload-Offset/-Length
    GET   /v1/blobs/{id}   [Range: bytes=a-b]                      -> 200/206 the ciphertext

A blob is deleted when ``fetches_allowed`` distinct devices (other than the uploader) have
each been served the whole of it (in one download or resumed ones, ``blob_progress``), or
after 30 days, whichever comes first.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials, DeviceCredentials
from baat.server.blob_progress import ServedPrefixes
from baat.server.counters import COUNTS, bump
from baat.server.quotas import QuotaExceeded, check_blob_quota
from baat.server.regions.ids import region_of_blob
from baat.server.regions.links import RegionUnavailable
from baat.server.state import authenticate
from baat.server.storage.blob_store import (
    BlobError,
    BlobInfo,
    BlobStore,
    OffsetMismatch,
    UnknownBlob,
    open_blob_store,
)
from baat.server.storage.sql import SqlStore

if TYPE_CHECKING:
    from baat.server.state import ServerState

# The largest blob accepted (ciphertext bytes). A module default so that the CLI can set
# it before the app starts; a ``max_blob_bytes`` on ServerConfig takes precedence.
MAX_BLOB_BYTES = 100 * 1024 * 1024
# A message can fan out to many devices, but a number this high is a mistake or abuse.
MAX_FETCHES = 1000

_STATUS = {"unknown_blob": 404, "offset_mismatch": 409, "blob_too_large": 413}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BLOB_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
_NO_STORE = {"Cache-Control": "no-store"}
# One blob store per server store, shared by the routes and the expiry loop.
_STORES: weakref.WeakKeyDictionary[SqlStore, BlobStore] = weakref.WeakKeyDictionary()
# What each fetching device has been served so far, per blob store.
_SERVED: weakref.WeakKeyDictionary[BlobStore, ServedPrefixes] = weakref.WeakKeyDictionary()


def blob_store(state: ServerState) -> BlobStore:
    found = _STORES.get(state.store)
    if found is None:
        found = _STORES[state.store] = open_blob_store(state.store, state.config.data_dir)
    return found


def max_blob_bytes(state: ServerState) -> int:
    configured = getattr(state.config, "max_blob_bytes", None)
    return int(configured) if configured else MAX_BLOB_BYTES


async def expire_blobs(state: ServerState, now: float | None = None) -> int:
    """Delete blobs older than 30 days (and files a crash left behind); returns how many.

    For the server's hourly expiry loop.
    """
    return await blob_store(state).expire(now)


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers={**_NO_STORE, **(headers or {})})


def _blob_error(exc: BlobError) -> Response:
    headers = {"Upload-Offset": str(exc.expected)} if isinstance(exc, OffsetMismatch) else None
    return _error(exc.code, str(exc), _STATUS.get(exc.code, 400), headers)


async def _auth(request: Request) -> DeviceCredentials:
    return await authenticate(request)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def create_blob(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    state = _state(request)
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > 1024:
        return _error("invalid_request", "the creation request is a small JSON object", 400)
    try:
        body = await request.json()
        length, fetches = body["length"], body["fetches_allowed"]
    except (ValueError, KeyError, TypeError):
        return _error(
            "invalid_request", 'the body must be {"length": int, "fetches_allowed": int}', 400
        )
    if type(length) is not int or type(fetches) is not int or length < 1:  # bool is an int
        return _error("invalid_request", "length must be a positive integer", 400)
    if not 1 <= fetches <= MAX_FETCHES:
        return _error("invalid_request", f"fetches_allowed must be 1..{MAX_FETCHES}", 400)
    limit = max_blob_bytes(state)
    if length > limit:
        return _error("blob_too_large", f"blobs are limited to {limit} bytes", 413)
    try:
        await check_blob_quota(
            state.store.engine,
            creds.account_id,
            length,
            state.config.max_blobs_per_account,
            state.config.max_blob_bytes_per_account,
        )
    except QuotaExceeded as exc:
        bump(COUNTS.http_refusals, str(exc.code))
        return _error(str(exc.code), exc.message, 413)
    info = await blob_store(state).create(
        creds.account_id, creds.device_id, length, fetches, time.time()
    )
    url = f"/v1/blobs/{info.blob_id}"
    return JSONResponse(
        {
            "id": info.blob_id,
            "url": url,
            "offset": 0,
            "length": length,
            "expires_at": info.expires_at,
        },
        status_code=201,
        headers={"Location": url, "Upload-Offset": "0", **_NO_STORE},
    )


async def blob(request: Request) -> Response:
    try:
        creds = await _auth(request)
    except BadCredentials as exc:
        return _error("unauthorized", str(exc), 401)
    store = blob_store(_state(request))
    blob_id = request.path_params["blob_id"]
    try:
        if not _BLOB_ID.match(blob_id):
            # Never a file name either: ids the server did not make go nowhere near a path.
            raise UnknownBlob("no such blob")
        if request.method == "PATCH":
            return await _patch(request, store, blob_id, creds)
        if request.method == "GET":
            home = _elsewhere(_state(request), blob_id)
            if home is not None:
                return await _from_region(request, home, blob_id, creds)
        info = await store.info(blob_id, time.time())
        if request.method == "HEAD":
            if not info.uploaded_by(creds.account_id, creds.device_id):
                raise UnknownBlob("no such upload")
            headers = {"Upload-Offset": str(info.received), "Upload-Length": str(info.length)}
            return Response(status_code=200, headers={**headers, **_NO_STORE})
        return _get(request, store, info, creds)
    except BlobError as exc:
        return _blob_error(exc)


async def send_blob(
    request: Request, store: BlobStore, blob_id: str, fetcher: DeviceCredentials
) -> Response:
    """A GET of ``blob_id`` for ``fetcher`` (a device of this region or another)."""
    try:
        if not _BLOB_ID.match(blob_id):
            raise UnknownBlob("no such blob")
        return _get(request, store, await store.info(blob_id, time.time()), fetcher)
    except BlobError as exc:
        return _blob_error(exc)


def _elsewhere(state: ServerState, blob_id: str) -> str | None:
    """The linked region a blob id names, when that is not this one."""
    regions = state.regions
    if regions is None:
        return None
    home = region_of_blob(blob_id)
    return home if home is not None and home in regions.peers else None


async def _from_region(
    request: Request, region: str, blob_id: str, creds: DeviceCredentials
) -> Response:
    """Relay a blob uploaded in another region, streamed as it arrives (never stored)."""
    regions = _state(request).regions
    assert regions is not None
    try:
        upstream = await regions.open_blob(
            region, blob_id, (creds.account_id, creds.device_id), request.headers.get("range")
        )
    except RegionUnavailable as exc:
        return _error("region_unavailable", str(exc), 503, {"Retry-After": "1"})
    if upstream.status_code not in (200, 206, 404, 409, 416):
        await upstream.aclose()
        return _error(
            "region_unavailable", f"region {region!r} answered {upstream.status_code}", 503
        )
    kept = ("content-length", "content-range", "accept-ranges", "content-type")
    headers = {k: v for k, v in upstream.headers.items() if k in kept}

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(
        relay(), status_code=upstream.status_code, headers={**headers, **_NO_STORE}
    )


async def _patch(
    request: Request, store: BlobStore, blob_id: str, creds: DeviceCredentials
) -> Response:
    offset_header = request.headers.get("upload-offset", "")
    if not offset_header.isdigit():
        return _error("invalid_request", "Upload-Offset must be a non-negative integer", 400)
    declared = request.headers.get("content-length", "")
    try:
        new_offset = await store.append(
            blob_id,
            creds.account_id,
            creds.device_id,
            int(offset_header),
            request.stream(),
            time.time(),
            int(declared) if declared.isdigit() else None,
        )
    except ClientDisconnect:
        # What arrived is stored; the uploader asks HEAD for the offset and resumes.
        return Response(status_code=400)
    COUNTS.blob_bytes_received += max(0, new_offset - int(offset_header))
    return Response(status_code=204, headers={"Upload-Offset": str(new_offset), **_NO_STORE})


def _get(request: Request, store: BlobStore, info: BlobInfo, creds: DeviceCredentials) -> Response:
    if not info.complete:
        return _error("incomplete_blob", "the upload has not finished", 409)
    start, end = 0, info.length
    status = 200
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        **_NO_STORE,
    }
    wanted = request.headers.get("range")
    if wanted:
        parsed = _parse_range(wanted, info.length)
        if parsed is None:
            return _error(
                "invalid_range", "only one satisfiable bytes=a-b range is served", 416,
                {"Content-Range": f"bytes */{info.length}"},
            )  # fmt: skip
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.length}"
    headers["Content-Length"] = str(end - start)
    counts = not info.uploaded_by(creds.account_id, creds.device_id)
    body = _stream(store, info, start, end, creds if counts else None)
    return StreamingResponse(body, status_code=status, headers=headers)


async def _stream(
    store: BlobStore, info: BlobInfo, start: int, end: int, fetcher: DeviceCredentials | None
) -> AsyncIterator[bytes]:
    served = _SERVED.get(store)
    if served is None:
        served = _SERVED[store] = ServedPrefixes()
    key = (info.blob_id, fetcher.account_id, fetcher.device_id) if fetcher else None
    position = start
    async for data in store.read(info, start, end):
        yield data
        COUNTS.blob_bytes_served += len(data)
        # Past the yield, the chunk has been handed to the connection: a download that
        # drops is cancelled at the yield, and what it had is all that counts.
        if key is not None:
            served.advance(key, position, position + len(data))
        position += len(data)
    # Counted only once this device has been served every byte from the first, in one
    # download or in resumed ones; the end of a blob alone (``bytes=-1``) is not a fetch.
    if fetcher is not None and key is not None and served.complete(key, info.length):
        # Shielded: a client that hangs up right after the last byte cancels this task
        # while the count is being written, and an uncounted fetch would keep the blob
        # until it expires.
        await asyncio.shield(
            store.record_fetch(info.blob_id, fetcher.account_id, fetcher.device_id)
        )


def _parse_range(value: str, length: int) -> tuple[int, int] | None:
    """``[start, end)`` for one ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range."""
    m = _RANGE.match(value.strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        start, end = max(length - int(last), 0), length
    else:
        start = int(first)
        end = min(int(last) + 1, length) if last else length
    if start >= end:
        return None
    return start, end


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/blobs", create_blob, methods=["POST"]),
        Route("/v1/blobs/{blob_id}", blob, methods=["GET", "HEAD", "PATCH"]),
    ]
