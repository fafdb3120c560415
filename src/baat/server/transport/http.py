"""uvicorn's httptools protocol with Baat's admission, timeouts and the WebSocket hand-off.

HTTP requests still go through uvicorn and Starlette. This subclass adds, per connection:

- admission by ``ConnectionGuard`` when the connection is made (a refused one gets an
  immediate ``503`` with ``Retry-After``);
- a header timeout from the connection (or a request's first byte) to the end of its
  headers, and a minimum body rate while a body is being read (slowloris, issue 14 item 1);
  either one answers ``408`` and closes;
- on a WebSocket upgrade, the hand-off of the transport to ``WebSocketProtocol`` with the
  connection's place in the guard's counts.

It relies on ``HttpToolsProtocol``'s callbacks (``on_message_begin``,
``on_headers_complete``, ``on_body``, ``on_message_complete``) and its attributes
``transport``, ``client``, ``url``, ``scope`` and ``connections``; uvicorn is pinned to a
version range in pyproject.toml for that reason, and ``tests/server/test_transport_limits.py``
exercises every path on a real server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from baat.server.transport.guard import (
    ADMIT,
    REFUSE_ADDRESS,
    RESERVE_ONLY,
    refusal,
)
from baat.server.transport.ws import Hub, WebSocketProtocol

log = logging.getLogger("baat.transport")

_HEADERS = 1
_BODY = 2
HEALTH_PATH = b"/healthz"
MAX_HEADER_BYTES = 64 * 1024


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP connection (until it upgrades)."""

    def __init__(self, *args: Any, hub: Hub, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub
        self.address = ""
        self.counted = False
        self.reserve_only = False
        self.phase = 0
        self.received = 0
        self.timer: asyncio.TimerHandle | None = None

    # -- admission ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        verdict = self.hub.guard.admit(self.address)
        if verdict not in (ADMIT, RESERVE_ONLY):
            which = "this address" if verdict == REFUSE_ADDRESS else "the server"
            log.info("refused a connection from %s: %s is at its cap", self.address, which)
            self._refuse(503, "server_busy", f"{which} has too many open connections")
            return
        self.counted = True
        self.reserve_only = verdict == RESERVE_ONLY
        self._arm(_HEADERS, self.hub.settings.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()
        if self.counted:
            self.counted = False
            self.hub.guard.release(self.address)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused or timed out: nothing more is parsed
        super().data_received(data)
        if self.phase == _HEADERS and not self.transport.is_closing():
            # Still inside the headers after this chunk, so all of it was headers: httptools
            # sets no limit on a request line and headers, so bound them here.
            self.received += len(data)
            if self.received > MAX_HEADER_BYTES:
                self._refuse(431, "headers_too_large", "request headers are too large")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm()
        retry = self.hub.settings.retry_after if status == 503 else 0
        self.transport.write(refusal(status, code, message, retry))
        self.transport.close()

    # -- timeouts -------------------------------------------------------------------------

    def _arm(self, phase: int, delay: float) -> None:
        self._disarm()
        self.received = 0
        if delay > 0:
            self.phase = phase
            self.timer = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.phase = 0

    def _expired(self) -> None:
        self.timer = None
        settings = self.hub.settings
        if self.phase == _BODY and self.received >= settings.body_min_rate * settings.body_timeout:
            self.received = 0  # fast enough over this window: watch the next one
            self._arm(_BODY, settings.body_timeout)
            return
        what = "headers" if self.phase == _HEADERS else "body"
        log.info("request %s from %s too slow; closing", what, self.address)
        self.phase = 0
        self._refuse(408, "request_timeout", f"request {what} not received in time")

    # -- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase == 0:
            self._arm(_HEADERS, self.hub.settings.header_timeout)

    def on_headers_complete(self) -> None:
        if self.reserve_only and self.url.split(b"?", 1)[0] != HEALTH_PATH:
            self._refuse(503, "server_busy", "the server is at its connection cap")
            return
        self._arm(_BODY, self.hub.settings.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.transport.is_closing():
            return
        self.received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            super().on_message_complete()

    # -- the WebSocket hand-off -----------------------------------------------------------

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        if self.reserve_only:
            self._refuse(503, "server_busy", "the server is at its connection cap")
            return
        if self.transport.is_closing():
            return
        self.connections.discard(self)
        request = [b"GET ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            request += [name, b": ", value, b"\r\n"]
        request.append(b"\r\n")
        protocol = WebSocketProtocol(self.hub, self.address)
        # The connection's place in the guard's counts moves with the transport.
        self.counted = False
        # In uvicorn's set of connections, so that a graceful shutdown closes it (1012).
        self.hub.connections = self.connections
        self.connections.add(protocol)  # type: ignore[arg-type]
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(b"".join(request))
