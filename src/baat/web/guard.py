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

The secret is kept in the profile (``app-secret``, readable by its owner only), so a tab or
a bookmark opened before ``baat app`` restarts keeps working with the same cookie;
``baat app --new-secret`` replaces it, which signs every open tab out.

Refusals are ``403 {"error": {"code": "forbidden", ...}}``, for WebSockets too, except a
page the browser navigates to (a GET asking for HTML): that one gets a short page saying
what to open, never raw JSON.
"""

from __future__ import annotations

import hmac
import html
import json
import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

SECRET_BYTES = 32  # 256 bits, twice the 128-bit floor for a capability secret


SECRET_FILE = "app-secret"  # noqa: S105 (a file name, not a secret)


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def profile_secret(profile: Path, *, renew: bool = False) -> str:
    """The app's secret for ``profile``: read from its ``app-secret`` file, or made and
    written there (mode 0600, the profile directory 0700 when this creates it).

    Raises:
        OSError: the profile directory cannot be created or written.
    """
    profile.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = profile / SECRET_FILE
    if not renew:
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = ""
        if len(value) >= 43:  # 32 bytes of URL-safe base64; anything shorter is replaced
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return value
    value = new_secret()
    tmp = profile / f".{SECRET_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)  # atomic: a second launch reads the old secret or the new one
    return value


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
        kind = b"application/json"
        if scope["type"] == "http" and _navigation(scope):
            body, kind = _refusal_page(why), b"text/html; charset=utf-8"
        headers = [
            (b"content-type", kind),
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


def _navigation(scope: Scope) -> bool:
    """A page the browser opens (address bar, bookmark, reload), not a script's request."""
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    accept = next((v for k, v in scope["headers"] if k.lower() == b"accept"), b"")
    return b"text/html" in accept


def _refusal_page(why: str) -> bytes:
    # Plain HTML, no script or style (the CSP allows neither inline): it must explain
    # itself to someone whose bookmark stopped working.
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baat: open the app's address</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>Open Baat from the address it printed</h1>
<p>This browser has no key to this Baat app ({html.escape(why)}). Baat only answers the
person who started it.</p>
<p>In the terminal where you ran <code>baat app</code>, open the address it printed
(<code>http://127.0.0.1:PORT/?k=…</code>). The address stays the same from one launch to
the next, so after that this page and your bookmarks work again.</p>
<p>If you did not start Baat, close this page.</p>
</main></body></html>
""".encode()
