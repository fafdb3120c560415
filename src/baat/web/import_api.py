"""Importing a WhatsApp export from the browser (docs/WEB.md, "Import").

The browser sends the file's bytes to this app on 127.0.0.1 and nowhere else; they are
streamed into a folder of the profile (``import-uploads/``), size-limited, parsed here
for a preview, and written into the encrypted store by ``baat.client.importing``, the
same code ``baat import whatsapp`` uses. The upload is not JSON, so instead it must carry
``X-Baat-Request: 1``: a form on another site cannot set a custom header without a CORS
preflight, which this app never answers (the guard's Origin check comes first anyway).

Routes: ``POST /api/import/upload`` (the raw file) → the preview, or the dates read both
ways when their order is ambiguous; ``POST /api/import/{id}/preview`` with
``{date_order, chat_name}``; ``POST /api/import/{id}/start`` with ``{date_order,
chat_name, me, map}`` → a job; ``GET /api/import/{id}`` its progress (the page polls);
``DELETE /api/import/{id}`` drops the upload.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from baat.client.importing import ImportProblem, check_authors, import_chat, import_report
from baat.client.store import Store, StoreError
from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    ChatImport,
    DateOrder,
    WhatsAppExport,
    WhatsAppImportError,
    open_export,
)
from baat.web.jsonapi import ApiError, api, body_of, ok, runtime_of
from baat.web.runtime import Runtime

UPLOADS_DIR = "import-uploads"
MAX_UPLOAD = 512 << 20  # bytes; a zip with a year of photos fits
MAX_UPLOADS = 4  # kept at once; the oldest idle one goes first
REQUEST_HEADER = "x-baat-request"
ORDERS = ("dmy", "mdy", "ymd")


@dataclass
class Job:
    state: str = "running"  # running | done | failed
    phase: str = "parse"  # parse (lines) | media (bytes) | messages (records)
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    def progress(self, phase: str, done: int, total: int) -> None:
        # Called from the import's worker thread; plain attribute writes are enough.
        self.phase, self.done, self.total = phase, done, total

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "phase": self.phase}
        out.update(done=self.done, total=self.total, result=self.result, error=self.error)
        return out


@dataclass
class Upload:
    id: str
    path: Path
    name: str
    created: float = field(default_factory=time.monotonic)
    job: Job | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.state == "running"


class Uploads:
    """The files waiting in the profile; a new launch starts with none."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: dict[str, Upload] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        shutil.rmtree(root, ignore_errors=True)  # left over from a launch that was killed

    def new(self, name: str) -> Upload:
        idle = sorted((u for u in self.items.values() if not u.busy), key=lambda u: u.created)
        while len(self.items) >= MAX_UPLOADS and idle:
            self.drop(idle.pop(0).id)
        if len(self.items) >= MAX_UPLOADS:
            raise ApiError(409, "busy", "other imports are still running")
        upload_id = secrets.token_urlsafe(12)
        folder = self.root / upload_id
        folder.mkdir(parents=True, mode=0o700)
        upload = Upload(upload_id, folder / name, name)
        self.items[upload_id] = upload
        return upload

    def get(self, upload_id: str) -> Upload:
        upload = self.items.get(upload_id)
        if upload is None:
            raise ApiError(404, "unknown_upload", "this upload is gone: choose the file again")
        return upload

    def remove_file(self, upload: Upload) -> None:
        shutil.rmtree(upload.path.parent, ignore_errors=True)

    def drop(self, upload_id: str) -> None:
        upload = self.items.pop(upload_id, None)
        if upload is not None:
            self.remove_file(upload)


def _uploads(request: Request) -> Uploads:
    runtime = runtime_of(request)
    uploads = getattr(request.app.state, "imports", None)
    if not isinstance(uploads, Uploads) or uploads.root.parent != runtime.profile:
        uploads = Uploads(runtime.profile / UPLOADS_DIR)
        request.app.state.imports = uploads
    return uploads


def _safe_name(header: str) -> str:
    """The browser's file name, reduced to a harmless last path component."""
    name = unquote(header).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")[:200]
    return name or "export.txt"


def _problem(exc: Exception) -> ApiError:
    """A parser or import error as a 400 whose code names its kind."""
    if isinstance(exc, ImportProblem):
        return ApiError(400, "import_problem", str(exc))
    if isinstance(exc, StoreError):
        return ApiError(500, "store_error", str(exc))
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    return ApiError(400, code, str(exc))


# -- parsing -------------------------------------------------------------------------------


def _open(upload: Upload, chat_name: str | None) -> WhatsAppExport:
    try:
        return open_export(upload.path, chat_name=chat_name or None)
    except WhatsAppImportError as exc:
        raise _problem(exc) from exc
    except OSError as exc:
        raise ApiError(400, "unreadable", f"cannot read the file: {exc.strerror or exc}") from exc


def _parse(
    export: WhatsAppExport,
    date_order: str | None,
    job: Job | None = None,
    summary_only: bool = False,
) -> ChatImport | AmbiguousDateOrder:
    if not export.chat_name:
        raise ApiError(400, "no_chat_name", "cannot tell the chat's name: type one")
    try:
        return export.parse(
            date_order=cast(DateOrder | None, date_order),
            progress=(lambda d, t: job.progress("parse", d, t)) if job else None,
            summary_only=summary_only,
        )
    except AmbiguousDateOrder as exc:
        return exc
    except (WhatsAppImportError, ValueError) as exc:
        raise _problem(exc) from exc


def _preview(upload: Upload, date_order: str | None, chat_name: str | None, store: Store) -> Any:
    with _open(upload, chat_name) as export:
        name = export.chat_name
        parsed = _parse(export, date_order, summary_only=True)  # a preview needs counts only
    contacts = sorted(c.username for c in store.contacts())
    me = store.info.username if store.info else None
    head = {"upload": upload.id, "file": upload.name, "chat": name, "contacts": contacts, "me": me}
    if isinstance(parsed, AmbiguousDateOrder):
        samples = [
            {
                "line": s.line_no,
                "raw": s.raw,
                "dmy": s.dmy.isoformat() if s.dmy else None,
                "mdy": s.mdy.isoformat() if s.mdy else None,
            }
            for s in parsed.samples
        ]
        return {**head, "ambiguous": samples, "preview": None}
    return {**head, "ambiguous": None, "preview": import_report(parsed, None, upload.name, True)}


def _order(body: dict[str, Any]) -> str | None:
    value = body.get("date_order")
    if value in (None, ""):
        return None
    if value not in ORDERS:
        raise ApiError(400, "invalid_request", "date_order is dmy, mdy or ymd")
    return cast(str, value)


def _chat_name(body: dict[str, Any]) -> str | None:
    value = body.get("chat_name")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise ApiError(400, "invalid_request", "chat_name is a text of at most 200 characters")
    return value.strip() or None


def _people(body: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    me = body.get("me") or None
    if me is not None and not isinstance(me, str):
        raise ApiError(400, "invalid_request", "me is an author's name")
    raw = body.get("map") or {}
    if not isinstance(raw, dict) or len(raw) > 1000:
        raise ApiError(400, "invalid_request", "map is {author: username}")
    mapping = {}
    for author, username in raw.items():
        if not isinstance(username, str) or len(username) > 64:
            raise ApiError(400, "invalid_request", "map is {author: username}")
        if username.strip():
            mapping[str(author)] = username.strip()
    return me, mapping


# -- importing -----------------------------------------------------------------------------


def _import(
    store: Store,
    upload: Upload,
    job: Job,
    date_order: str | None,
    chat_name: str | None,
    me: str | None,
    mapping: dict[str, str],
) -> dict[str, Any]:
    with _open(upload, chat_name) as export:
        chat = _parse(export, date_order, job)
        if isinstance(chat, AmbiguousDateOrder):
            raise ApiError(400, "ambiguous_date_order", "choose the date order first")
        try:
            check_authors(chat, me, mapping)
            result = import_chat(
                store, export, chat, me=me, mapping=mapping, file_name=upload.name,
                progress=job.progress,
            )  # fmt: skip
        except (ImportProblem, WhatsAppImportError, StoreError) as exc:
            raise _problem(exc) from exc
    return import_report(chat, result, upload.name, False)


async def _run(runtime: Runtime, uploads: Uploads, upload: Upload, **options: Any) -> None:
    job = upload.job
    assert job is not None
    try:
        client = runtime.need_client()
        report = await asyncio.to_thread(_import, client.store, upload, job, **options)
    except ApiError as exc:
        job.state, job.error = "failed", {"code": exc.code, "message": exc.message}
        return
    except Exception as exc:  # shown to the person; the file stays for another try
        job.state = "failed"
        job.error = {"code": "import_failed", "message": f"{type(exc).__name__}: {exc}"}
        return
    job.state, job.result = "done", report
    uploads.remove_file(upload)  # stored now; the copy in the profile is not needed
    # Every open tab reloads its chat list (and the conversation, if it is on screen).
    runtime.hub.publish({"type": "contact", "chat": report["conversation"]})


# -- routes --------------------------------------------------------------------------------


@api
async def upload(request: Request) -> Response:
    runtime = runtime_of(request)
    client = runtime.need_client()
    if request.headers.get(REQUEST_HEADER) != "1":
        raise ApiError(403, "forbidden", f"uploads carry the {REQUEST_HEADER} header")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise ApiError(413, "too_large", f"the file is larger than {MAX_UPLOAD >> 20} MiB")
    uploads = _uploads(request)
    item = uploads.new(_safe_name(request.headers.get("x-file-name", "")))
    try:
        size = 0
        with item.path.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise ApiError(
                        413, "too_large", f"the file is larger than {MAX_UPLOAD >> 20} MiB"
                    )
                f.write(chunk)
        if size == 0:
            raise ApiError(400, "empty_export", "the file is empty")
        return ok(await asyncio.to_thread(_preview, item, None, None, client.store))
    except BaseException:
        uploads.drop(item.id)
        raise


@api
async def preview(request: Request) -> Response:
    client = runtime_of(request).need_client()
    body = await body_of(request)
    item = _uploads(request).get(request.path_params["upload"])
    data = await asyncio.to_thread(_preview, item, _order(body), _chat_name(body), client.store)
    return ok(data)


@api
async def start(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.need_client()
    body = await body_of(request)
    uploads = _uploads(request)
    item = uploads.get(request.path_params["upload"])
    if item.busy:
        raise ApiError(409, "busy", "this file is being imported")
    if item.job is not None and item.job.state == "done":
        raise ApiError(409, "already_imported", "this file was imported: choose it again")
    me, mapping = _people(body)
    options = {"date_order": _order(body), "chat_name": _chat_name(body)}
    item.job = Job()
    task = asyncio.create_task(_run(runtime, uploads, item, **options, me=me, mapping=mapping))
    uploads.tasks.add(task)  # a reference, so the task is not collected half-way
    task.add_done_callback(uploads.tasks.discard)
    return ok({"upload": item.id, **item.job.json()}, status=202)


@api
async def progress(request: Request) -> Response:
    runtime_of(request).need_client()
    item = _uploads(request).get(request.path_params["upload"])
    if item.job is None:
        raise ApiError(404, "not_started", "this import has not started")
    return ok({"upload": item.id, **item.job.json()})


@api
async def discard(request: Request) -> Response:
    uploads = _uploads(request)
    item = uploads.get(request.path_params["upload"])
    if item.busy:
        raise ApiError(409, "busy", "this file is being imported")
    uploads.drop(item.id)
    return ok({"dropped": item.id})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/import/upload", upload, methods=["POST"]),
        Route("/api/import/{upload}/preview", preview, methods=["POST"]),
        Route("/api/import/{upload}/start", start, methods=["POST"]),
        Route("/api/import/{upload}", progress, methods=["GET"]),
        Route("/api/import/{upload}", discard, methods=["DELETE"]),
    ]
