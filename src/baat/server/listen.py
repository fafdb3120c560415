"""The listening sockets, bound before anything else of the server is imported.

``baat serve`` binds its port (and the metrics port) first: importing the application takes
a second or two on a loaded machine, and a supervisor must learn that the port is taken at
once, with a non-zero status, never after "listening" was announced (docs/DEPLOY.md,
"Start-up and logs"). Only the standard library is imported here.
"""

from __future__ import annotations

import logging
import socket
import sys

log = logging.getLogger("baat.server")


def bind(host: str, port: int, what: str = "server") -> socket.socket:
    """A bound socket, not yet listening; a failure ends the process with status 1.

    Bound only: the port is ours (another process's listener makes ``bind`` fail), but
    clients that connect while the server starts are refused at once rather than left
    waiting in the backlog; asyncio starts listening when the server is ready.
    """
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        log.error(
            "cannot listen on %s:%d for the %s: %s",
            host,
            port,
            what,
            exc.strerror or exc,
            extra={"baat": {"event": "bind_failed", "host": host, "port": port}},
        )
        sys.exit(1)
    sock.set_inheritable(False)
    return sock
