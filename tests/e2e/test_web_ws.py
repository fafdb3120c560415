"""Chromium's own WebSocket client against the server's ``/v1/ws`` (issue 18: interop with
independent clients). The page authenticates as a real device (Python signs the challenge
the page received), sends, is refused for a text message, and closes with its own code."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.proto import (
    Authenticate,
    Challenge,
    Error,
    OutgoingEnvelope,
    Ready,
    Send,
    SendResult,
    auth_message,
    decode_server,
    encode,
)
from support.devices import registration_body
from support.server import ServerProcess

if TYPE_CHECKING:  # fixtures come from tests/e2e/conftest.py
    from e2e.conftest import Pages

pytestmark = pytest.mark.e2e

OPEN_SOCKET = """async ([url, name]) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const box = { frames: [], closed: null };
  window[name] = { ws, box };
  ws.onmessage = (e) => box.frames.push(Array.from(new Uint8Array(e.data)));
  ws.onclose = (e) => { box.closed = e.code; };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  return ws.extensions;
}"""


def register(url: str, name: str) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    r = httpx.post(url + "/v1/accounts", json=registration_body(name, key), timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["account_id"], key


def frames(page: Any, name: str) -> list[object]:
    raw = page.evaluate(f"() => window['{name}'].box.frames")
    return [decode_server(bytes(f)) for f in raw]


def wait_for(page: Any, name: str, kind: type, timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [f for f in frames(page, name) if isinstance(f, kind)]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {kind.__name__}: {frames(page, name)}")


def wait_closed(page: Any, name: str, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = page.evaluate(f"() => window['{name}'].box.closed")
        if code is not None:
            return int(code)
        time.sleep(0.05)
    raise AssertionError("the socket did not close")


def send_bytes(page: Any, name: str, data: bytes) -> None:
    page.evaluate(f"(b) => window['{name}'].ws.send(new Uint8Array(b))", list(data))


def test_chromium_websocket_against_the_server(web_server: ServerProcess, pages: Pages) -> None:
    alice, key = register(web_server.url, "chromium_alice")
    bob, _ = register(web_server.url, "chromium_bob")
    page = pages.open("ws", web_server.url + "/healthz")
    url = web_server.url.replace("http", "ws") + "/v1/ws"
    # Chromium offers permessage-deflate; the server declines it.
    assert page.evaluate(OPEN_SOCKET, [url, "a"]) == ""
    challenge = wait_for(page, "a", Challenge)
    assert isinstance(challenge, Challenge)
    sig = key.sign(auth_message(challenge.nonce, alice, 1))
    send_bytes(page, "a", encode(Authenticate(1, alice, 1, sig)))
    assert isinstance(wait_for(page, "a", Ready), Ready)
    # A 65,000-byte envelope makes a frame past 65,535 bytes: the 64-bit length form.
    send_bytes(page, "a", encode(Send("from-chromium", [OutgoingEnvelope(bob, 1, b"x" * 65_000)])))
    result = wait_for(page, "a", SendResult)
    assert isinstance(result, SendResult) and result.message_id == "from-chromium"
    page.evaluate("() => window['a'].ws.close(4005, 'bye')")
    assert wait_closed(page, "a") == 4005  # the server echoed the page's code

    page.evaluate(OPEN_SOCKET, [url, "b"])
    page.evaluate("() => window['b'].ws.send('text is not part of the protocol')")
    err = wait_for(page, "b", Error)
    assert isinstance(err, Error) and err.code == "malformed_frame" and err.fatal
    assert wait_closed(page, "b") == 1008
    assert "Traceback" not in web_server.log()
