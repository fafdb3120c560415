"""Only the person who started ``baat app`` can drive it: the per-launch secret, the Host
and the Origin are checked on every request and WebSocket handshake (no browser needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import AppProcess, Pages

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(apps: Callable[..., AppProcess]) -> Iterator[AppProcess]:
    # No server is needed to guard the door: the app starts in onboarding.
    yield apps("guarded", "http://127.0.0.1:9")


def forbidden(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


def test_secret_cookie_and_redirect(app: AppProcess) -> None:
    assert len(app.secret) >= 22  # at least 128 bits of URL-safe base64
    with httpx.Client(base_url=app.base, timeout=10) as http:
        forbidden(http.get("/"))
        forbidden(http.get("/api/state"))
        forbidden(http.get("/static/app.js"))
        forbidden(http.get("/?k=" + "A" * len(app.secret)))
        forbidden(http.get("/api/state", headers={"cookie": f"baat_app_{app.port}=wrong"}))
        # Another port's cookie (another user's app) opens nothing here.
        forbidden(http.get("/api/state", headers={"cookie": f"baat_app_1={app.secret}"}))

        first = http.get(f"/?k={app.secret}", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"baat_app_{app.port}={app.secret};")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert first.headers["referrer-policy"] == "no-referrer"

        # httpx kept the cookie, like a browser.
        page = http.get("/")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        state = http.get("/api/state").json()
        assert state["state"] == "onboarding"
        assert state["passphrase_from_env"] is False


def test_foreign_origin_and_wrong_host_are_refused(app: AppProcess) -> None:
    with app.http() as http:
        assert http.get("/api/state").status_code == 200
        assert http.get("/api/state", headers={"origin": app.base}).status_code == 200
        for origin in ("http://evil.example", f"http://127.0.0.1:{app.port + 1}", "null"):
            forbidden(http.get("/api/state", headers={"origin": origin}))
            forbidden(
                http.post("/api/unlock", json={"passphrase": "x" * 8}, headers={"origin": origin})
            )
        for host in (f"evil.example:{app.port}", "127.0.0.1", f"127.0.0.1:{app.port + 1}"):
            forbidden(http.get("/api/state", headers={"host": host}))
        # The secret in the URL does not excuse a wrong Host (DNS rebinding).
        forbidden(http.get(f"/?k={app.secret}", headers={"host": f"rebind.example:{app.port}"}))
        assert http.get("/api/state", headers={"host": f"localhost:{app.port}"}).status_code == 200


def test_unsafe_requests_must_be_json(app: AppProcess) -> None:
    with app.http() as http:
        # An HTML form can post this without a preflight; the app refuses it.
        r = http.post("/api/register", data={"username": "mallory", "server_url": "http://x"})
        assert r.status_code == 415
        assert r.json()["error"]["code"] == "unsupported_media_type"
        r = http.post(
            "/api/register",
            json={"server_url": "http://127.0.0.1:9", "username": "eve", "passphrase": "short"},
        )
        assert r.json()["error"]["code"] == "passphrase_too_short"
        r = http.get("/api/chats")
        assert (r.status_code, r.json()["error"]["code"]) == (409, "not_registered")
        assert http.get("/api/nothing").json()["error"]["code"] == "not_found"


def test_websocket_needs_the_secret_and_our_origin(app: AppProcess) -> None:
    uri = f"ws://127.0.0.1:{app.port}/ws"
    cookie = {"cookie": f"baat_app_{app.port}={app.secret}"}
    for headers, origin in (
        ({}, app.base),  # no cookie
        (cookie, "http://evil.example"),  # a page elsewhere riding on the cookie
        ({"cookie": f"baat_app_{app.port}=guess"}, app.base),
    ):
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(uri, additional_headers=headers, origin=origin, open_timeout=5),  # type: ignore[arg-type]
        ):
            pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body or b"{}")["error"]["code"] == "forbidden"
    with connect(uri, additional_headers=cookie, origin=app.base, open_timeout=5) as ws:  # type: ignore[arg-type]
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "state"
        assert first["state"] == "onboarding"


@pytest.fixture
def other_site() -> Iterator[str]:
    """A real page on another port of 127.0.0.1, as any local program could serve."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><h1>cute cats</h1>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


FORM_POST = """(url) => { const form = document.createElement("form");
    form.method = "POST"; form.action = url; form.enctype = "text/plain";
    const field = document.createElement("input"); field.name = '{"username": "mallory", "x": "';
    field.value = '"}'; form.append(field); document.body.append(form); form.submit(); }"""
SOCKET = """(url) => new Promise((done) => { const ws = new WebSocket(url);
    ws.onopen = () => done("open"); ws.onerror = () => done("refused"); })"""


def test_a_foreign_page_cannot_drive_the_app(
    app: AppProcess, pages: Pages, other_site: str
) -> None:
    """In the owner's own browser, with the cookie set, a page elsewhere is refused. Another
    port of 127.0.0.1 is the same site, so the browser sends the cookie along (even with
    SameSite=Strict) and only the Origin check stops the request."""
    expect = pytest.importorskip("playwright.sync_api").expect
    owner = pages.open("owner", app.url)
    expect(owner.locator("#onboarding")).to_be_visible()
    evil = owner.context.new_page()
    evil.goto(other_site)
    assert evil.evaluate(SOCKET, f"ws://127.0.0.1:{app.port}/ws") == "refused"
    with evil.expect_navigation() as navigated:
        evil.evaluate(FORM_POST, f"{app.base}/api/register")
    answer = navigated.value
    assert answer.request.header_value("cookie") == f"baat_app_{app.port}={app.secret}"
    assert answer.request.header_value("origin") == other_site
    assert answer.status == 403
    assert answer.json()["error"]["code"] == "forbidden"
    evil.close()
    assert pages.errors(owner) == []
