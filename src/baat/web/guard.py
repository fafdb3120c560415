"""Who may drive the local app: only the person holding this launch's secret.

The app listens on 127.0.0.1, but that alone protects nothing: every local user, and every
web page open in any browser on the machine, can reach 127.0.0.1. So every HTTP request
and every WebSocket handshake must pass three checks:

* ``Host`` is ``127.0.0.1:PORT`` or ``localhost:PORT``. A page on another name that
  resolves to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
* ``Origin``, when present, is this app's own origin. Browsers send it on every
  cross-origin request and on WebSocket handshakes, so another page (another port of
  127.0.0.1 included) cannot use the cookie the browser would attach.
* The secret: a cookie set on the first visit from the printed ``/?k=SECRET`` URL, or the
  ``k`` query parameter itself. The URL is then redirected without ``k`` so the secret
  leaves the address bar and the history.

Refusals are ``403 {"error": {"code": "forbidden", ...}}``, for WebSockets too.
"""

from __future__ import annotations

import hmac
import json
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

SECRET_BYTES = 32  # 256 bits, twice the 128-bit floor for a capability secret


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


class Guard:
    """ASGI middleware applying the checks above to ``http`` and ``websocket`` scopes."""

    def __init__(self, app: ASGIApp, secret: str, port: int) -> None:
        self.app = app
        self.secret = secret
        self.port = port
        # Cookies ignore ports: two apps on one machine (alice on 8781, bob on 8782) must
        # not overwrite each other's cookie, so the name carries the port.
        self.cookie_name = f"baat_app_{port}"
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            await self._refuse(scope, receive, send, "wrong Host header")
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host}":
            await self._refuse(scope, receive, send, "requests from other origins are refused")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        from_query = next((v for k, v in query if k == "k"), None)
        if from_query is not None and self._valid(from_query):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                await self._set_cookie_and_redirect(scope, send, query)
                return
            await self.app(scope, receive, send)
            return
        if self._valid(self._cookie(headers.get("cookie", ""))):
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send, "open the URL printed by 'baat app'")

    def _valid(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode("utf-8", "replace"), self.secret.encode()
        )

    def _cookie(self, header: str) -> str | None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except Exception:  # a malformed Cookie header is simply no cookie
            return None
        morsel = jar.get(self.cookie_name)
        return None if morsel is None else morsel.value

    async def _set_cookie_and_redirect(
        self, scope: Scope, send: Send, query: list[tuple[str, str]]
    ) -> None:
        rest = urlencode([(k, v) for k, v in query if k != "k"])
        location = scope.get("path", "/") + (f"?{rest}" if rest else "")
        cookie = f"{self.cookie_name}={self.secret}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        body = json.dumps({"error": {"code": "forbidden", "message": why}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
