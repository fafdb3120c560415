"""Connection caps and the transport's timeouts (issue 14, items 1 and 2).

Every TCP connection is admitted here when it is made and released when it is lost, so
the counts are exact and cost one dict operation each way. Three limits, checked in order:

1. per client address: ``per_address`` open connections (0: no limit; set 0 behind a
   reverse proxy, where every client has the proxy's address, and limit there instead);
2. total: ``max_total`` open connections, kept below the process's open-file limit;
3. the reserve: once connections that are not authenticated devices reach
   ``max_total - reserve``, a new connection may only ask for ``/healthz``. Devices that
   are already authenticated keep their sockets, and probes and the operator keep an
   answer, while an abuser holds every unauthenticated slot; the timeouts below free those
   slots within seconds.

A refused connection gets an immediate ``503`` with ``Retry-After`` and is closed: nothing
waits, nothing is queued.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

ADMIT = 0
RESERVE_ONLY = 1
REFUSE_ADDRESS = 2
REFUSE_TOTAL = 3

# File descriptors kept free for the database, logs, blobs and the listening socket.
FD_MARGIN = 256


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """What ``baat serve`` configures; the defaults are safe for a public server."""

    # Time to receive a request's headers, from the connection or the request's first byte.
    header_timeout: float = 10.0
    # A request body must bring at least ``body_min_rate`` bytes per ``body_timeout``
    # seconds while it is being read (slow-body attacks; large uploads keep going).
    body_timeout: float = 30.0
    body_min_rate: int = 1024
    # Idle time between two HTTP requests on one connection.
    keep_alive_timeout: float = 5.0
    # From the WebSocket upgrade to a successful Authenticate; pings do not extend it.
    auth_timeout: float = 10.0
    # Authenticated connections: ping after this much silence, close after twice it.
    ping_interval: float = 30.0
    # 0: from the open-file limit (minus a margin).
    max_connections: int = 0
    reserve: int = 0  # 0: 5% of max_connections, at least 16
    per_address: int = 256
    # JSON request bodies (blob uploads have their own limit).
    max_json_body: int = 64 * 1024
    # Bytes a connection may have waiting to be written before it is closed as too slow.
    max_write_buffer: int = 16 * 1024 * 1024
    retry_after: int = 5

    def total(self) -> int:
        if self.max_connections:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            soft = 1_048_576
        return max(64, soft - FD_MARGIN)

    def reserved(self, total: int) -> int:
        if self.reserve:
            return min(self.reserve, total - 1)
        return min(max(16, total // 20), total // 2)


class ConnectionGuard:
    """Counts open connections per address and in total; decides admission."""

    __slots__ = ("_by_address", "authenticated", "max_total", "open", "per_address", "reserve")

    def __init__(self, settings: TransportSettings) -> None:
        self.max_total = settings.total()
        self.reserve = settings.reserved(self.max_total)
        self.per_address = settings.per_address
        self.open = 0
        self.authenticated = 0
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> int:
        """Count a new connection, or say why not (``REFUSE_*``: not counted)."""
        if self.per_address and self._by_address.get(address, 0) >= self.per_address:
            return REFUSE_ADDRESS
        if self.open >= self.max_total:
            return REFUSE_TOTAL
        self.open += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        if self.open - self.authenticated > self.max_total - self.reserve:
            return RESERVE_ONLY
        return ADMIT

    def release(self, address: str) -> None:
        self.open -= 1
        left = self._by_address.get(address, 1) - 1
        if left > 0:
            self._by_address[address] = left
        else:
            self._by_address.pop(address, None)

    def count(self, address: str) -> int:
        return self._by_address.get(address, 0)


def refusal(status: int, code: str, message: str, retry_after: int = 0) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    reason = {
        400: "Bad Request",
        404: "Not Found",
        408: "Request Timeout",
        413: "Content Too Large",
        431: "Request Header Fields Too Large",
        503: "Service Unavailable",
    }.get(status, "Error")
    body = ('{"error": {"code": "%s", "message": "%s"}}' % (code, message)).encode()  # noqa: UP031
    retry = f"retry-after: {retry_after}\r\n" if retry_after else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{retry}connection: close\r\n\r\n"
    ).encode() + body
