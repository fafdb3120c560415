"""The SDK's view of a connection that closes under an operation.

A server that shuts down gracefully closes every WebSocket with code 1012 ("service
restart"); a send, or the bundle fetch that opens a session, may be on the wire at that
moment. The transport reports it as ``TransportError``; the SDK's callers get its own
errors instead (``baat.client.core`` draws the tree):

- no server code (the connection closed): ``NotConnected``, and the message stays in the
  outbox for the next connection (the server drops a retried send it already stored);
- a server code (the server answered with an error frame): ``SendRefused`` with that code.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from baat.client.core import NotConnected, SendRefused
from baat.client.transport import TransportError

T = TypeVar("T")


async def sdk_errors(operation: Awaitable[T]) -> T:
    """Await ``operation``, translating ``TransportError`` as above.

    Raises:
        NotConnected: the connection closed meanwhile.
        SendRefused: the server refused a request made for it.
    """
    try:
        return await operation
    except TransportError as exc:
        if exc.code:
            raise SendRefused(exc.code, str(exc)) from exc
        raise NotConnected(f"connection lost: {exc}") from exc
