"""JSON plumbing shared by the web app's routes: one error shape, one body reader, one
place that turns SDK and store exceptions into status codes the browser switches on."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from baat.client.core import ClientError, IdentityChanged, NotConnected, RegistrationFailed
from baat.client.devices import DeviceError
from baat.client.features import FeatureError
from baat.client.group_messaging import GroupFailure
from baat.client.groups import GroupError
from baat.client.store import NoProfile, ProfileExists, WrongPassphrase
from baat.web.privacy_proxy import ServerError
from baat.web.runtime import LOCKED, ONBOARDING, Busy, Runtime, WrongState

Handler = Callable[[Request], Awaitable[Response]]
MAX_BODY = 256 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        data, status_code=status, headers={"cache-control": "no-store", **(headers or {})}
    )


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON object body. Requiring ``application/json`` is a second line behind the
    Origin check: an HTML form on another site cannot send it without a CORS preflight,
    which this app never answers."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", "the request body is too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, *, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"{name} is required")
    if len(value) > limit:
        raise ApiError(400, "too_long", f"{name} is longer than {limit} characters")
    return value


def _state_error(exc: WrongState) -> ApiError:
    if exc.state == LOCKED:
        return ApiError(409, "locked", "unlock the profile first")
    if exc.state == ONBOARDING:
        return ApiError(409, "not_registered", "create an account first")
    return ApiError(409, "already_open", "the profile is already open")


def _translate(exc: Exception) -> ApiError | None:
    match exc:
        case ApiError():
            return exc
        case WrongState():
            return _state_error(exc)
        case Busy():
            return ApiError(409, "busy", str(exc))
        case RegistrationFailed():
            status = 409 if exc.code == "username_taken" else 400
            return ApiError(status, exc.code, str(exc))
        case NotConnected():
            return ApiError(502, "not_connected", str(exc))
        case IdentityChanged():
            return ApiError(409, "identity_changed", str(exc))
        case ClientError():
            status = 404 if exc.code == "unknown_contact" else 400
            return ApiError(status, exc.code, str(exc))
        case WrongPassphrase():
            return ApiError(401, "wrong_passphrase", "wrong passphrase for this profile")
        case NoProfile():
            return ApiError(409, "no_profile", str(exc))
        case ProfileExists():
            return ApiError(409, "profile_exists", str(exc))
        case ServerError():
            return ApiError(exc.status, exc.code, exc.message)
        case ValueError():
            return ApiError(400, "invalid_request", str(exc))
    return None


def api(handler: Handler) -> Handler:
    """Route decorator: known exceptions become ``{"error": {"code", "message"}}``."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            known = _translate(exc)
            if known is None:
                raise
            return error(known.status, known.code, known.message)

    return wrapped


# Statuses of the SDK's typed refusals; their codes and messages reach the page as they are.
_TYPED_STATUS = {
    "unknown_group": 404,
    "unknown_message": 404,
    "unknown_device": 404,
    "not_admin": 403,
    "not_member": 403,
    "not_author": 403,
    "too_late": 409,
}


def typed(handler: Handler) -> Handler:
    """``api`` plus the SDK's group, device and feature errors with their own codes."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except (GroupFailure, GroupError, FeatureError, DeviceError) as exc:
            status = _TYPED_STATUS.get(exc.code, 400)
            raise ApiError(status, exc.code, str(exc)) from exc

    return api(wrapped)


def qr_svg(payload: bytes, title: str) -> Response:
    """``payload`` as a QR code in SVG, drawn on the server so that the page needs no script
    library; never cached (it is a secret or tied to a contact)."""
    out = io.BytesIO()
    segno.make_qr(payload, error="m").save(
        out,
        kind="svg",
        scale=4,
        border=4,
        dark="#000",
        light="#fff",
        xmldecl=False,
        title=title,
        svgclass=None,
        lineclass=None,
    )
    return Response(
        out.getvalue(), media_type="image/svg+xml", headers={"cache-control": "no-store"}
    )
