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
    """A bound, listening socket; a failure ends the process with status 1."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
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
