"""The sans-IO WebSocket codec (RFC 6455): two codecs wired in memory, every input parsed
whole, one byte at a time and in random chunks."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baat.proto import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    CloseEvent,
    HandshakeError,
    Message,
    PingEvent,
    PongEvent,
    WebSocketCodec,
    WebSocketError,
    accept_response,
    client_handshake,
    parse_handshake,
)
from baat.proto._websocket import (
    CLOSE_INVALID_DATA,
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    apply_mask,
)

MAX = 1 << 20


def pair() -> tuple[WebSocketCodec, WebSocketCodec]:
    """(client, server)."""
    return WebSocketCodec(MAX, client=True), WebSocketCodec(MAX)


def feed(codec: WebSocketCodec, data: bytes, sizes: list[int] | None = None) -> list[object]:
    """Feed ``data`` in chunks of ``sizes`` (cycled), or whole."""
    if not sizes:
        return list(codec.receive(data))
    events: list[object] = []
    pos, i = 0, 0
    while pos < len(data):
        step = max(1, sizes[i % len(sizes)])
        events += codec.receive(data[pos : pos + step])
        pos += step
        i += 1
    return events


def masked_frame(first: int, payload: bytes, length_field: bytes | None = None) -> bytes:
    key = b"\x01\x02\x03\x04"
    if length_field is None:
        length_field = bytes([0x80 | len(payload)])
    return bytes([first]) + length_field + key + apply_mask(payload, key)


SPLITS = [None, [1], [2, 7, 3], [1000]]


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_binary_message_every_length_encoding(size: int, sizes: list[int] | None) -> None:
    client, server = pair()
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert feed(server, client.binary(payload), sizes) == [Message(payload, False)]
    assert server.buffered == 0


@settings(max_examples=200)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    st.lists(st.integers(1, 50), max_size=4),
    st.booleans(),
)
def test_fragmented_message_with_control_frames_between(
    parts: list[bytes], sizes: list[int], text: bool
) -> None:
    client, server = pair()
    if text:
        parts = [p.hex().encode() for p in parts]
    wire = b""
    for i, part in enumerate(parts):
        op = (OP_TEXT if text else OP_BINARY) if i == 0 else OP_CONTINUATION
        wire += client.frame(op, part, fin=i == len(parts) - 1)
        wire += client.ping(b"p%d" % i)  # control frames may come between fragments (5.4)
    events = feed(server, wire, sizes)
    pings = [e for e in events if isinstance(e, PingEvent)]
    messages = [e for e in events if isinstance(e, Message)]
    assert [p.payload for p in pings] == [b"p%d" % i for i in range(len(parts))]
    assert messages == [Message(b"".join(parts), text)]
    # the message is whole only once its last fragment arrived: after the last-but-one ping
    assert events.index(messages[0]) == len(events) - 2


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=8), st.binary(max_size=5))
def test_stream_of_messages_with_trailing_partial_frame(msgs: list[bytes], tail: bytes) -> None:
    client, server = pair()
    wire = b"".join(client.binary(m) for m in msgs)
    partial = client.binary(b"next message")[: max(1, len(tail) % 10)]
    events = feed(server, wire + partial)
    assert events == [Message(m, False) for m in msgs]
    assert server.buffered == len(partial)


def test_server_frames_are_unmasked_and_client_reads_them() -> None:
    client, server = pair()
    wire = server.binary(b"hello")
    assert wire[1] & 0x80 == 0
    assert client.receive(wire + server.pong(b"x") + server.close(1000, "bye")) == [
        Message(b"hello", False),
        PongEvent(b"x"),
        CloseEvent(1000, "bye"),
    ]


def test_close_handshake_and_nothing_after_close() -> None:
    client, server = pair()
    events = server.receive(client.close(1001, "leaving") + client.binary(b"late"))
    assert events == [CloseEvent(1001, "leaving")]
    assert server.close_received
    assert server.receive(client.binary(b"later")) == []
    reply = server.close(1001)
    assert client.receive(reply) == [CloseEvent(1001, "")]
    assert server.close(1000) == b""  # a Close frame is sent once


def test_close_without_status() -> None:
    client, server = pair()
    assert server.receive(client.frame(0x8, b"")) == [CloseEvent(1005, "")]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (masked_frame(0x80 | 0x40 | OP_BINARY, b"x"), CLOSE_PROTOCOL_ERROR),  # RSV1
        (masked_frame(0x80 | 0x20 | OP_BINARY, b"x"), CLOSE_PROTOCOL_ERROR),  # RSV2
        (masked_frame(0x80 | 0x10 | OP_BINARY, b"x"), CLOSE_PROTOCOL_ERROR),  # RSV3
        (masked_frame(0x80 | 0x3, b"x"), CLOSE_PROTOCOL_ERROR),  # reserved data opcode
        (masked_frame(0x80 | 0xB, b"x"), CLOSE_PROTOCOL_ERROR),  # reserved control opcode
        (masked_frame(OP_PING, b"x"), CLOSE_PROTOCOL_ERROR),  # fragmented control frame
        (masked_frame(0x80 | OP_PING, b"x" * 126, b"\xfe\x00\x7e"), CLOSE_PROTOCOL_ERROR),
        (masked_frame(0x80 | OP_CONTINUATION, b"x"), CLOSE_PROTOCOL_ERROR),  # nothing to continue
        (bytes([0x82, 0x01]) + b"x", CLOSE_PROTOCOL_ERROR),  # unmasked from a client
        (masked_frame(0x80 | OP_TEXT, b"\xff\xfe"), CLOSE_INVALID_DATA),
        (masked_frame(0x88, b"\x03"), CLOSE_PROTOCOL_ERROR),  # 1-byte close payload
        (masked_frame(0x88, struct.pack("!H", 1005)), CLOSE_PROTOCOL_ERROR),  # reserved code
        (masked_frame(0x88, struct.pack("!H", 999)), CLOSE_PROTOCOL_ERROR),
        (masked_frame(0x88, struct.pack("!H", 1000) + b"\xff"), CLOSE_INVALID_DATA),
        (bytes([0x82, 0xFF]) + b"\x80" + bytes(7), CLOSE_PROTOCOL_ERROR),  # top length bit
    ],
)
@pytest.mark.parametrize("sizes", SPLITS)
def test_protocol_violations_name_their_close_code(
    wire: bytes, code: int, sizes: list[int] | None
) -> None:
    server = WebSocketCodec(MAX)
    with pytest.raises(WebSocketError) as info:
        feed(server, wire, sizes)
    assert info.value.close_code == code


def test_new_message_inside_a_fragmented_one_is_refused() -> None:
    client, server = pair()
    wire = client.frame(OP_BINARY, b"a", fin=False) + client.frame(OP_BINARY, b"b")
    with pytest.raises(WebSocketError) as info:
        server.receive(wire)
    assert info.value.close_code == CLOSE_PROTOCOL_ERROR


def test_oversize_is_refused_from_the_header_alone() -> None:
    server = WebSocketCodec(1000)
    header = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 2**40)
    with pytest.raises(WebSocketError) as info:
        server.receive(header)  # no payload sent: nothing was buffered for it
    assert info.value.close_code == CLOSE_TOO_BIG


def test_oversize_across_fragments() -> None:
    client = WebSocketCodec(MAX, client=True)
    server = WebSocketCodec(1000)
    wire = client.frame(OP_BINARY, b"x" * 600, fin=False)
    wire += client.frame(OP_CONTINUATION, b"x" * 600)
    with pytest.raises(WebSocketError) as info:
        server.receive(wire)
    assert info.value.close_code == CLOSE_TOO_BIG


@settings(max_examples=300)
@given(st.binary(max_size=200), st.lists(st.integers(1, 20), max_size=3))
def test_arbitrary_bytes_are_events_or_websocket_errors(data: bytes, sizes: list[int]) -> None:
    server = WebSocketCodec(4096)
    try:
        events = feed(server, data, sizes)
    except WebSocketError as exc:
        assert exc.close_code in (1002, 1007, 1009)
    else:
        assert all(isinstance(e, Message | PingEvent | PongEvent | CloseEvent) for e in events)


@settings(max_examples=100)
@given(st.binary(min_size=0, max_size=100), st.binary(min_size=4, max_size=4))
def test_mask_is_its_own_inverse(data: bytes, key: bytes) -> None:
    assert apply_mask(apply_mask(data, key), key) == data


# -- the opening handshake -----------------------------------------------------------------


def test_handshake_accept_key_from_the_rfc_example() -> None:
    # RFC 6455 section 1.3: this key must be answered with this accept value.
    shake = parse_handshake(client_handshake("h", "/v1/ws", "dGhlIHNhbXBsZSBub25jZQ=="))
    assert shake.path == "/v1/ws"
    response = accept_response(shake.key)
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert b"Sec-WebSocket-Extensions" not in response  # permessage-deflate declined


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /v1/ws HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400),
        (
            b"GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: "
            + base64.b64encode(bytes(16))
            + b"\r\n\r\n",
            426,
        ),
        (
            b"GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
            400,
        ),
        (b"GET /v1/ws HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /v1/ws HTTP/1.1\r\n", 400),
        (b"GET /v1/ws HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 400),
    ],
)
def test_bad_handshakes(request_bytes: bytes, status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_handshake(request_bytes)
    assert info.value.status == status
    response = info.value.response()
    assert response.startswith(b"HTTP/1.1 %d " % status)
    assert b'"code": "bad_upgrade"' in response
