"""The only socket code of the server: admission, timeouts, body limits and the WebSocket
path on ``asyncio.Protocol`` (docs/ARCHITECTURE.md, "The socket path")."""

from baat.server.transport.bodies import BodyLimit
from baat.server.transport.guard import ConnectionGuard, TransportSettings
from baat.server.transport.http import GuardedHttpProtocol
from baat.server.transport.ws import Hub, WebSocketProtocol

__all__ = [
    "BodyLimit",
    "ConnectionGuard",
    "GuardedHttpProtocol",
    "Hub",
    "TransportSettings",
    "WebSocketProtocol",
]
