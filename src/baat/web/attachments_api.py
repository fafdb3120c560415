"""Attachments in the web app: the browser hands a file to this app, which sends it with
``Client.send_file``; received files are served from the local store, decrypted in memory.

* ``POST /api/attachments?chat=ID&to=NAME&name=FILE&upload=TOKEN`` takes the file as the
  raw request body. It must carry ``X-Baat-Request: 1``: an HTML form on another site
  cannot set a custom header, and a script there would need a CORS preflight this app never
  answers. The body is streamed into a private directory in the profile, at most
  ``MAX_UPLOAD`` bytes (the server's default blob limit; the server's own refusal comes
  back as ``413 too_large`` too), and removed once sent. Upload progress goes to every tab
  as ``{"type": "upload", "upload": TOKEN, "chat", "done", "total"}`` events.
* ``GET /api/attachments/{message_id}`` answers the file: images of a few known types
  inline with their type, everything else (and ``?download=1``) as a download.
* ``GET /api/attachments/{message_id}/thumbnail`` answers the JPEG thumbnail carried in the
  message, so the page needs no ``data:`` images in its Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.attachments import (
    AttachmentError,
    decode_pointer,
    decrypt_bytes,
    safe_file_name,
)
from baat.client.blobs import BlobTooLarge, TransferError
from baat.client.group_messaging import is_group_chat
from baat.client.store import StoredMessage
from baat.web.api import MAX_TEXT
from baat.web.jsonapi import ApiError, api, ok, runtime_of
from baat.web.progress import PROGRESS_EVERY
from baat.web.runtime import Runtime

MAX_UPLOAD = 100 * 1024 * 1024  # the server's default max_blob_bytes
UPLOAD_DIR = "uploads"
CSRF_HEADER = "x-baat-request"
# Served with their own type and shown in the page; anything else is a download, so a
# received HTML or SVG file can never run as part of this app.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
# Played in the page (an <audio> element), never rendered as a document.
INLINE_TYPES |= {"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/x-m4a"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ProgressFn = Callable[[int, int], None]


def _require_header(request: Request) -> None:
    if request.headers.get(CSRF_HEADER) != "1":
        raise ApiError(403, "forbidden", f"send the {CSRF_HEADER.title()}: 1 header")


def progress_events(runtime: Runtime, base: dict[str, str], kind: str) -> ProgressFn:
    """A ``progress(done, total)`` that publishes at most a few events a second (and
    always the last one)."""
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_EVERY:
            return
        last = now
        runtime.hub.publish({"type": kind, **base, "done": done, "total": total})

    return progress


async def _receive(request: Request, dst: Path) -> int:
    """Stream the request body into ``dst``; its size. Raises ApiError 413 past the limit."""
    size = 0
    with dst.open("xb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise ApiError(413, "too_large", _too_large())
            await asyncio.to_thread(f.write, chunk)
    return size


def _too_large() -> str:
    return f"a file can be at most {MAX_UPLOAD // (1024 * 1024)} MB"


@api
async def upload(request: Request) -> Response:
    _require_header(request)
    runtime = runtime_of(request)
    client = runtime.need_client()
    q = request.query_params
    chat, to, token = q.get("chat", ""), q.get("to", "").strip().casefold(), q.get("upload", "")
    group = is_group_chat(chat)
    if not (to or group) or not chat or not _TOKEN.match(token):
        raise ApiError(400, "invalid_request", "chat, to (for a 1:1 chat) and upload are required")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise ApiError(413, "too_large", _too_large())
    known = None if group else client.store.contact_by_name(to)
    if known is not None and known.account_id != chat:
        raise ApiError(400, "invalid_request", f"{to!r} names another contact than this chat")
    caption = q.get("caption") or None
    if caption is not None and len(caption) > MAX_TEXT:
        raise ApiError(400, "too_long", f"a caption holds at most {MAX_TEXT} characters")
    # The file keeps its name (the SDK sends the file's own name), in a directory of its own.
    where = runtime.profile / UPLOAD_DIR / secrets.token_hex(16)
    where.mkdir(mode=0o700, parents=True)
    try:
        path = where / safe_file_name(q.get("name"), "file")
        if await _receive(request, path) == 0:
            raise ApiError(400, "empty_file", "the file is empty")
        progress = progress_events(runtime, {"upload": token, "chat": chat}, "upload")
        try:
            if group:
                message_id = await client.attachments.send_to_group(chat, path, caption, progress)
            else:
                message_id = await client.send_file(to, path, caption, progress)
        except BlobTooLarge as exc:
            raise ApiError(413, "too_large", str(exc)) from exc
        except TransferError as exc:
            raise ApiError(502, "upload_failed", f"the upload failed: {exc}") from exc
        except AttachmentError as exc:
            raise ApiError(400, "attachment_error", str(exc)) from exc
    finally:
        await asyncio.to_thread(shutil.rmtree, where, True)
    status = next(
        (m.status for m in client.store.messages(chat=chat) if m.message_id == message_id),
        "sending",
    )
    return ok({"id": message_id, "status": status}, status=201)


def _find(request: Request) -> tuple[StoredMessage, dict[str, object]]:
    client = runtime_of(request).need_client()
    try:
        m = client.attachments.find(request.path_params["message_id"])
    except AttachmentError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    if m.status == "held":
        raise ApiError(409, "held", "compare the safety number to show this message")
    return m, dict(m.body["attachment"])


def _disposition(kind: str, name: str) -> str:
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name) or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@api
async def file(request: Request) -> Response:
    client = runtime_of(request).need_client()
    imported = await _imported(request)
    if imported is not None:
        return imported
    m, att = _find(request)
    if att.get("state") != "ready":
        why = att.get("error") or "it has not been downloaded yet"
        raise ApiError(409, f"attachment_{att.get('state')}", str(why))
    # The local copy's key is sealed in the message body, bound to this message.
    sealed = str(att["local"])
    local = decode_pointer(client.attachments._open(m, "local", sealed))
    try:
        blob = await asyncio.to_thread((client.attachments.directory / local.blob_id).read_bytes)
        data = await asyncio.to_thread(decrypt_bytes, blob, local)
    except FileNotFoundError as exc:
        raise ApiError(410, "missing", "the local copy of this file is missing") from exc
    except AttachmentError as exc:
        raise ApiError(500, "damaged", f"the local copy is damaged: {exc}") from exc
    ctype = str(att.get("content_type") or "")
    inline = ctype in INLINE_TYPES and not request.query_params.get("download")
    name = safe_file_name(str(att.get("file_name") or ""), "file")
    headers = {
        "content-disposition": _disposition("inline" if inline else "attachment", name),
        "cache-control": "no-store",
    }
    media = ctype if inline else "application/octet-stream"
    return Response(data, media_type=media, headers=headers)


async def _imported(request: Request) -> Response | None:
    """An imported chat's file (client.imported_files), or None for any other message."""
    from baat.client import imported_files
    from baat.client.store import CorruptValue

    client = runtime_of(request).need_client()
    message_id = request.path_params["message_id"]
    found = [
        m
        for m in client.store.messages()
        if m.message_id == message_id and imported_files.is_imported_file(m)
    ]
    if not found:
        return None
    m = found[0]
    try:
        data = await asyncio.to_thread(imported_files.read, client.store, m)
    except imported_files.NotImported as exc:
        raise ApiError(409, "attachment_omitted", "the export did not include this file") from exc
    except CorruptValue as exc:
        raise ApiError(500, "damaged", f"the stored file is damaged: {exc}") from exc
    name = safe_file_name(str(m.body["attachment"].get("name") or ""), "file")
    ctype = imported_files.content_type(name)
    inline = ctype in INLINE_TYPES and not request.query_params.get("download")
    headers = {
        "content-disposition": _disposition("inline" if inline else "attachment", name),
        "cache-control": "no-store",
    }
    return Response(
        data, media_type=ctype if inline else "application/octet-stream", headers=headers
    )


@api
async def thumbnail(request: Request) -> Response:
    _, att = _find(request)
    thumb = att.get("thumbnail")
    if not isinstance(thumb, str):
        raise ApiError(404, "not_found", "this attachment has no thumbnail")
    data = b""
    with contextlib.suppress(ValueError):
        data = base64.b64decode(thumb, validate=True)
    if not data:
        raise ApiError(404, "not_found", "the thumbnail is unreadable")
    headers = {"cache-control": "no-store"}
    return Response(data, media_type="image/jpeg", headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/attachments", upload, methods=["POST"]),
        Route("/api/attachments/{message_id}", file, methods=["GET"]),
        Route("/api/attachments/{message_id}/thumbnail", thumbnail, methods=["GET"]),
    ]
