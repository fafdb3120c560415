"""``SealedSend`` in the sans-IO state machines (docs/PROTOCOL.md, "Sealed sender")."""

from __future__ import annotations

import pytest

from baat.proto import (
    ClientConnection,
    ErrorCode,
    LocalProtocolError,
    OutgoingEnvelope,
    RemoteProtocolError,
    SealedEnvelope,
    SealedSend,
    Send,
    SendResult,
    ServerConnection,
    State,
    encode,
    request_hint,
)
from baat.proto import Error as ErrorFrame

FRAME = SealedSend("s1", "acct", b"k" * 16, [SealedEnvelope(1, b"sealed")])


def test_a_server_takes_a_sealed_send_before_authentication_and_answers_it() -> None:
    conn = ServerConnection(b"n" * 32, 0.0)
    assert conn.receive(encode(FRAME), 0.0) == FRAME
    assert conn.state is State.AWAITING_AUTH  # still nobody
    assert conn.send(SendResult("s1", []))  # the answer may go out before Ready
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(encode(Send("m", [OutgoingEnvelope("a", 1, b"x")])), 0.0)
    assert info.value.code == ErrorCode.UNAUTHENTICATED


def test_sizes_are_checked_and_refusals_name_the_message() -> None:
    conn = ServerConnection(b"n" * 32, 0.0)
    empty = SealedSend("s2", "acct", b"", [])
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(encode(empty), 0.0)
    assert info.value.code == ErrorCode.TOO_MANY_RECIPIENTS and not info.value.fatal
    assert request_hint(encode(empty)) == (0, "s2")


def test_an_anonymous_client_may_send_only_sealed_sends() -> None:
    client = ClientConnection()
    server = ServerConnection(b"n" * 32, 0.0)
    client.receive(server.challenge())
    assert client.state is State.CHALLENGED
    assert client.send(FRAME)
    with pytest.raises(LocalProtocolError):
        client.send(Send("m", [OutgoingEnvelope("a", 1, b"x")]))
    for answer in (SendResult("s1", []), ErrorFrame(code="sealed_access_denied", message="no")):
        client.receive(encode(answer))
        assert client.state is State.CHALLENGED
