"""The network side of attachments: resumable uploads and downloads of ciphertext blobs.

Speaks the server's ``/v1/blobs`` API (``docs/ATTACHMENTS.md``) with the device's bearer
credentials. Only ciphertext passes through here: ``attachments.py`` encrypts before an
upload and checks and decrypts after a download.

- Uploads go in PATCH pieces of ``PIECE_BYTES``. When a connection drops, the stored
  offset is asked for with HEAD and the upload goes on from there, so at most one piece
  is sent twice. The source must be seekable (a spool file of the ciphertext).
- Downloads that drop go on with ``Range: bytes=N-``; the server counts a fetch only once
  its response reaches the last byte, so a dropped download does not use up the fetch.

Errors (all ``attachments.AttachmentError``)::

    TransferError         the server is unreachable after retries, or refused the call
    ├── BlobTooLarge      413 blob_too_large: the server's size limit
    └── BlobGone          404 unknown_blob: expired (30 days) or already fetched
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import IO

import httpx

from baat.client.attachments import AttachmentError
from baat.contract import DeviceCredentials

log = logging.getLogger("baat.client.blobs")

# (bytes done, bytes in all) of one transfer.
Progress = Callable[[int, int], None]

# One PATCH: small enough that a dropped connection costs little, large enough that the
# per-request cost (an fsync and a row update on the server) stays negligible.
PIECE_BYTES = 4 << 20
# How often progress is reported inside a PATCH body.
SLICE_BYTES = 256 << 10
RETRIES = 5
BACKOFF = 0.25


class TransferError(AttachmentError):
    code = "transfer_failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BlobTooLarge(TransferError):
    code = "blob_too_large"


class BlobGone(TransferError):
    code = "unknown_blob"


def _refusal(r: httpx.Response) -> TransferError:
    try:
        err = r.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"HTTP {r.status_code}"
    if r.status_code == 413 or code == "blob_too_large":
        return BlobTooLarge(message)
    if r.status_code == 404 or code == "unknown_blob":
        return BlobGone("the attachment is no longer on the server (expired or already fetched)")
    return TransferError(f"the server refused the transfer: {code}: {message}", code)


class BlobClient:
    """``async with BlobClient(url, creds) as blobs: ...``; one HTTP connection pool."""

    def __init__(
        self,
        server_url: str,
        credentials: DeviceCredentials,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        piece_bytes: int = PIECE_BYTES,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=server_url,
            timeout=timeout,
            transport=transport,
            headers={"authorization": credentials.header()},
        )
        self.retries = retries
        self.backoff = backoff
        self.piece_bytes = piece_bytes

    async def __aenter__(self) -> BlobClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _retry(self, failures: int, exc: Exception) -> int:
        """Wait before the next attempt; gives up after ``retries`` failures in a row."""
        failures += 1
        if failures > self.retries:
            raise TransferError(
                f"the server is unreachable: {exc or type(exc).__name__}", "unreachable"
            ) from exc
        log.info("blob transfer interrupted (%s); retrying", exc or type(exc).__name__)
        await asyncio.sleep(self.backoff * 2 ** (failures - 1))
        return failures

    # -- upload ----------------------------------------------------------------------------

    async def create(self, length: int, fetches_allowed: int) -> str:
        """Announce an upload of ``length`` ciphertext bytes; returns the blob id.

        Raises:
            BlobTooLarge: over the server's limit (nothing was created).
            TransferError: unreachable or refused.
        """
        body = {"length": length, "fetches_allowed": fetches_allowed}
        failures = 0
        while True:
            try:
                r = await self._http.post("/v1/blobs", json=body)
                break
            except httpx.TransportError as exc:
                failures = await self._retry(failures, exc)
        if r.status_code != 201:
            raise _refusal(r)
        return str(r.json()["id"])

    async def offset(self, blob_id: str) -> int:
        """How many bytes of our upload the server has stored (HEAD)."""
        r = await self._http.head(f"/v1/blobs/{blob_id}")
        if r.status_code != 200:
            raise _refusal(r)
        return int(r.headers["upload-offset"])

    async def upload(
        self, blob_id: str, src: IO[bytes], length: int, progress: Progress | None = None
    ) -> None:
        """Send ``length`` bytes of ``src`` (seekable), resuming after dropped connections.

        Raises:
            BlobTooLarge, BlobGone, TransferError.
        """
        url = f"/v1/blobs/{blob_id}"
        offset: int | None = 0
        failures = 0
        while True:
            try:
                if offset is None:  # after a drop only the server knows what arrived
                    offset = await self.offset(blob_id)
                if progress is not None:
                    progress(offset, length)
                if offset >= length:
                    return
                size = min(self.piece_bytes, length - offset)
                r = await self._http.patch(
                    url,
                    content=_pieces(src, offset, size, length, progress),
                    headers={"upload-offset": str(offset), "content-length": str(size)},
                )
            except httpx.TransportError as exc:
                failures = await self._retry(failures, exc)
                offset = None
                continue
            if r.status_code == 204:
                offset, failures = int(r.headers["upload-offset"]), 0
            elif r.status_code == 409 and "upload-offset" in r.headers:
                offset = int(r.headers["upload-offset"])  # the server is ahead: go on there
            else:
                raise _refusal(r)

    # -- download --------------------------------------------------------------------------

    async def download(self, blob_id: str, dst: IO[bytes], progress: Progress | None = None) -> int:
        """Write the blob into ``dst`` (empty, seekable); returns its length. A dropped
        download goes on from the bytes already written.

        Raises:
            BlobGone: expired or already fetched.
            TransferError: unreachable or refused.
        """
        url = f"/v1/blobs/{blob_id}"
        have, total, failures = 0, -1, 0
        while have != total:
            headers = {"range": f"bytes={have}-"} if have else {}
            try:
                async with self._http.stream("GET", url, headers=headers) as r:
                    if r.status_code not in (200, 206):
                        await r.aread()
                        raise _refusal(r)
                    if r.status_code == 200 and have:
                        have = 0  # the range was not honoured: start over
                        dst.seek(0)
                        dst.truncate()
                    total = have + int(r.headers["content-length"])
                    async for data in r.aiter_bytes():
                        dst.write(data)
                        have += len(data)
                        if progress is not None:
                            progress(have, total)
                if have != total:
                    raise httpx.ReadError(f"the download ended at {have} of {total} bytes")
            except httpx.TransportError as exc:
                failures = await self._retry(failures, exc)
        dst.flush()
        await self._let_the_fetch_count(url)
        return have

    async def _let_the_fetch_count(self, url: str) -> None:
        """Hold the connection until the server has counted the fetch.

        The server counts a fetch after handing over the last byte; a client that hangs up
        at once can cancel that (Starlette stops a streaming response on disconnect) and
        the blob would stay until it expires. A server handles a connection's next request
        only after the previous response is finished, so one more (harmless) request on
        the same pooled connection waits exactly long enough.
        """
        with contextlib.suppress(httpx.TransportError):
            await self._http.head(url)


async def _pieces(
    src: IO[bytes], start: int, size: int, length: int, progress: Progress | None
) -> AsyncIterator[bytes]:
    """The PATCH body, read in slices off the event loop, with progress as it goes."""
    await asyncio.to_thread(src.seek, start)
    sent = 0
    while sent < size:
        data = await asyncio.to_thread(src.read, min(SLICE_BYTES, size - sent))
        if not data:
            raise TransferError("the upload's source ended early")
        yield data
        sent += len(data)
        if progress is not None:
            progress(start + sent, length)
