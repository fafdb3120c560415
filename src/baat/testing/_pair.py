from __future__ import annotations

import os
from collections.abc import Callable

from baat.proto import (
    ClientConnection,
    ClientFrame,
    Limits,
    ServerConnection,
    ServerFrame,
)
from baat.testing._clock import FakeClock


class ConnectionPair:
    """A server and a client protocol object wired together in memory, like h11's
    ``ConnectionPair``: what one side sends, the other receives, with no socket."""

    def __init__(self, limits: Limits | None = None, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.server = ServerConnection(os.urandom(32), self.clock(), limits)
        self.client = ClientConnection()

    def handshake(
        self, account_id: str, device_id: int, sign: Callable[[bytes], bytes]
    ) -> ClientFrame:
        """Run challenge and authenticate; return the server's view of the Authenticate."""
        self.client.receive(self.server.challenge())
        return self.server.receive(
            self.client.authenticate(account_id, device_id, sign), self.clock()
        )

    def open(self, account_id: str, device_id: int, sign: Callable[[bytes], bytes]) -> None:
        """Handshake and accept without checking the signature (the handler's job)."""
        self.handshake(account_id, device_id, sign)
        self.client.receive(self.server.accept(account_id, device_id))

    def to_server(self, frame: ClientFrame) -> ClientFrame:
        return self.server.receive(self.client.send(frame), self.clock())

    def to_client(self, frame: ServerFrame) -> ServerFrame:
        return self.client.receive(self.server.send(frame))
