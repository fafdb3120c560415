"""The local web app: static UI, JSON routes, and ``/ws`` for live events, behind the guard.

``create_app(runtime, secret, port)`` returns the ASGI app ``baat app`` serves on
127.0.0.1. Layers from the outside in: security headers, the guard (secret, Host,
Origin), then Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from baat.web import (
    api,
    attachments_api,
    business_api,
    devices_api,
    features_api,
    groups_api,
    import_api,
    privacy_api,
)
from baat.web.guard import Guard
from baat.web.jsonapi import error
from baat.web.runtime import Runtime

STATIC = Path(__file__).parent / "static"


def _csp(port: int) -> str:
    # Everything comes from this origin; nothing from the internet, no inline script.
    origins = f"ws://127.0.0.1:{port} ws://localhost:{port}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        # The manifest makes the app installable as a window; media plays imported audio.
        "manifest-src 'self'; media-src 'self'; "
        f"connect-src 'self' {origins}; font-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Adds the same protective headers to every HTTP response."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", _csp(port).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(exc.status_code, code, str(exc.detail))


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})


async def favicon(request: Request) -> Response:
    return FileResponse(STATIC / "icon.svg", media_type="image/svg+xml")


async def events(ws: WebSocket) -> None:
    """Live events as JSON text messages; the first one is the app's state."""
    runtime: Runtime = ws.app.state.runtime
    await ws.accept()
    queue = runtime.hub.subscribe()
    try:
        await ws.send_json({"type": "state", **runtime.describe()})

        async def read() -> None:
            # The browser sends nothing; reading is how a closed tab is noticed.
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.receive_text()

        async def write() -> None:
            while (event := await queue.get()) is not None:
                await ws.send_json(event)

        tasks = [asyncio.create_task(read()), asyncio.create_task(write())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        runtime.hub.unsubscribe(queue)
        with contextlib.suppress(Exception):
            await ws.close()


def create_app(runtime: Runtime, secret: str, port: int) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            WebSocketRoute("/ws", events),
            *api.routes(),
            *privacy_api.routes(),
            *attachments_api.routes(),
            *import_api.routes(),
            *groups_api.routes(),
            *devices_api.routes(),
            *features_api.routes(),
            *business_api.routes(),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.runtime = runtime
    return SecurityHeaders(Guard(app, secret, port), port)
