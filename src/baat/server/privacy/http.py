"""HTTP routes of the privacy layer. Thin: parse, authenticate, call ``PrivacyService``.

Public: ``GET /privacy`` (HTML notice), ``GET /v1/policy`` (JSON, or JSON-LD with
``?format=jsonld``), ``GET /.well-known/baat/keys`` (JWKS), ``GET
/.well-known/baat/ledger-head`` (the consent ledger's signed head), ``GET /v1/transparency``.
Authenticated with the device bearer token (``baat.server.auth``): ``GET /v1/consents``,
``POST`` and ``DELETE /v1/consents/{purpose}``, ``GET /v1/me/export``, ``DELETE /v1/me``,
``PATCH /v1/me``.

Every error is ``{"error": {"code": ..., "message": ...}}`` with a fitting status.
Withdrawing takes the same single request as granting (GDPR Art. 7(3), DPDP s. 6(4)).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from baat.contract import BadCredentials, parse_header
from baat.privacy.errors import PrivacyError
from baat.privacy.render import jsonld, render
from baat.server.auth import check_token
from baat.server.privacy import receipt_fields
from baat.server.privacy.service import PrivacyService
from baat.server.privacy.transparency import markdown as transparency_markdown
from baat.server.storage.base import StorageUnavailable
from baat.server.storage.sql import SqlStore

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json_errors(handler: Handler) -> Handler:
    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except _HttpError as exc:
            return error(exc.status, exc.code, exc.message)
        except PrivacyError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        except StorageUnavailable as exc:
            return error(503, "storage_unavailable", str(exc))

    return wrapped


def _service(request: Request) -> PrivacyService:
    service: PrivacyService = request.app.state.privacy
    return service


async def _account_id(request: Request) -> str:
    """The authenticated account, from ``Authorization: Bearer <account>.<device>.<token>``."""
    store: SqlStore = request.app.state.store
    try:
        creds = parse_header(request.headers.get("authorization"))
    except BadCredentials as exc:
        raise _HttpError(401, "unauthorized", str(exc)) from exc
    device = await store.device(creds.account_id, creds.device_id)
    if device is None or not check_token(creds.token, device.auth_token_hash):
        raise _HttpError(401, "unauthorized", "unknown device or wrong token")
    request.state.device_id = creds.device_id
    return creds.account_id


def _collection_method(request: Request) -> str:
    method = request.headers.get(receipt_fields.HEADER, "api").strip().lower()
    if method not in receipt_fields.METHODS:
        allowed = ", ".join(receipt_fields.METHODS)
        raise _HttpError(
            400, "invalid_request", f"{receipt_fields.HEADER} must be one of: {allowed}"
        )
    return method


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise _HttpError(400, "invalid_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _HttpError(400, "invalid_request", "the body must be a JSON object")
    return body


@_json_errors
async def privacy_page(request: Request) -> Response:
    doc = _service(request).policy.document()
    jurisdiction = request.query_params.get("jurisdiction")
    try:
        page = render(doc, "html", jurisdiction.upper() if jurisdiction else None)
    except ValueError as exc:
        raise _HttpError(400, "invalid_request", str(exc)) from exc
    return HTMLResponse(page)


@_json_errors
async def policy(request: Request) -> Response:
    doc = _service(request).policy.document()
    headers = {"ETag": f'"{doc["sha256"]}"'}
    fmt = request.query_params.get("format", "json")
    if fmt == "jsonld":
        return JSONResponse(jsonld(doc), media_type="application/ld+json", headers=headers)
    if fmt != "json":
        raise _HttpError(400, "invalid_request", "format must be json or jsonld")
    return JSONResponse(doc, headers=headers)


@_json_errors
async def key_set(request: Request) -> Response:
    keys = await _service(request).jwks()
    # The sealed-sender trust root and server certificates (docs/CRYPTO.md §18.1), which
    # clients pin; absent where the app serves no sealed sender.
    sealed = getattr(request.app.state, "sealed_keys", None)
    if sealed is not None:
        keys = {**keys, "sealed_sender": sealed.published(int(time.time() * 1000))}
    return JSONResponse(keys, media_type="application/jwk-set+json")


@_json_errors
async def ledger_head(request: Request) -> Response:
    return JSONResponse(await _service(request).ledger_head())


@_json_errors
async def transparency(request: Request) -> Response:
    report = await _service(request).transparency_report()
    if request.query_params.get("format") == "md":
        return PlainTextResponse(transparency_markdown(report), media_type="text/markdown")
    return JSONResponse(report)


@_json_errors
async def consents(request: Request) -> Response:
    account_id = await _account_id(request)
    service = _service(request)
    return JSONResponse(
        {
            "policy": {"version": service.policy.version, "sha256": service.policy.sha256},
            "consents": await service.consents(account_id),
            "ledger_head": await service.ledger_head(),
        }
    )


@_json_errors
async def consent(request: Request) -> Response:
    account_id = await _account_id(request)
    purpose = request.path_params["purpose"]
    service = _service(request)
    how = {
        "method": _collection_method(request),
        "device_id": request.state.device_id,
        "base_url": str(request.base_url),
    }
    if request.method == "POST":
        receipt = await service.grant(account_id, purpose, **how)
        return JSONResponse(receipt.to_json(), status_code=201)
    receipt = await service.withdraw(account_id, purpose, **how)
    return JSONResponse(receipt.to_json())


@_json_errors
async def export(request: Request) -> Response:
    account_id = await _account_id(request)
    data = await _service(request).export_account(account_id)
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="baat-export.json"'}
    )


@_json_errors
async def me(request: Request) -> Response:
    account_id = await _account_id(request)
    service = _service(request)
    if request.method == "DELETE":
        return JSONResponse(await service.delete_account(account_id))
    body = await _json_body(request)
    return JSONResponse(await service.correct(account_id, **body))


def routes() -> list[BaseRoute]:
    return [
        Route("/privacy", privacy_page, methods=["GET"]),
        Route("/v1/policy", policy, methods=["GET"]),
        Route("/.well-known/baat/keys", key_set, methods=["GET"]),
        Route("/.well-known/baat/ledger-head", ledger_head, methods=["GET"]),
        Route("/v1/transparency", transparency, methods=["GET"]),
        Route("/v1/consents", consents, methods=["GET"]),
        Route("/v1/consents/{purpose}", consent, methods=["POST", "DELETE"]),
        Route("/v1/me/export", export, methods=["GET"]),
        Route("/v1/me", me, methods=["DELETE", "PATCH"]),
    ]


async def http_exception_as_json(request: Request, exc: Exception) -> Response:
    """Starlette exception handler turning 404/405 and friends into the JSON error shape;
    install with ``exception_handlers={HTTPException: http_exception_as_json}``."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(exc.status_code, code, str(exc.detail))
