"""Sans-IO protocol tests: two protocol objects wired in memory, no sockets."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from baat.proto import (
    PROTOCOL_VERSION,
    Ack,
    Authenticate,
    ClientConnection,
    Deliver,
    ErrorCode,
    FetchBundle,
    Limits,
    LocalProtocolError,
    OutgoingEnvelope,
    Ping,
    PrekeyRecord,
    Ready,
    RemoteProtocolError,
    Send,
    SendResult,
    State,
    UploadPrekeys,
    auth_message,
    decode_client,
    decode_server,
    encode,
)
from baat.testing import ConnectionPair, FakeClock

KEY = Ed25519PrivateKey.generate()


def sign(message: bytes) -> bytes:
    return KEY.sign(message)


def opened(limits: Limits | None = None) -> ConnectionPair:
    pair = ConnectionPair(limits)
    pair.open("acct", 1, sign)
    return pair


def test_handshake_signature_covers_nonce_and_device() -> None:
    pair = ConnectionPair()
    frame = pair.handshake("acct", 7, sign)
    assert isinstance(frame, Authenticate)
    assert pair.server.state is State.AUTHENTICATING
    KEY.public_key().verify(frame.signature, auth_message(pair.server.nonce, "acct", 7))
    ready = pair.client.receive(pair.server.accept("acct", 7))
    assert isinstance(ready, Ready)
    assert pair.client.state is State.OPEN and pair.server.state is State.OPEN


def test_frames_flow_both_ways_after_open() -> None:
    pair = opened()
    send = Send("m1", [OutgoingEnvelope("bob", 1, b"\x00" * 256)])
    assert pair.to_server(send) == send
    deliver = Deliver(b"g" * 16, "acct", 1, "m1", b"x", 5)
    assert pair.to_client(deliver) == deliver
    assert pair.to_server(Ack([b"g" * 16])) == Ack([b"g" * 16])


def test_frame_before_authentication_is_fatal() -> None:
    pair = ConnectionPair()
    pair.client.receive(pair.server.challenge())
    data = encode(Send("m1", [OutgoingEnvelope("bob", 1, b"x")]))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(data, 0)
    assert info.value.code is ErrorCode.UNAUTHENTICATED and info.value.fatal
    assert pair.server.state is State.CLOSED


def test_ping_allowed_before_authentication() -> None:
    pair = ConnectionPair()
    assert pair.server.receive(encode(Ping(3)), 0) == Ping(3)
    assert pair.server.state is State.AWAITING_AUTH


def test_second_authenticate_is_fatal() -> None:
    pair = opened()
    again = encode(Authenticate(PROTOCOL_VERSION, "acct", 1, b"s" * 64))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(again, pair.clock())
    assert info.value.code is ErrorCode.UNEXPECTED_FRAME


def test_wrong_version_is_refused() -> None:
    pair = ConnectionPair()
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(encode(Authenticate(99, "a", 1, b"")), 0)
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff", b"\x00\x01\x02", b"\x91", msgspec.msgpack.encode({"t": 2}), b"\xc1" * 10],
)
def test_garbage_is_malformed_and_fatal(data: bytes) -> None:
    pair = opened()
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(data, pair.clock())
    assert info.value.code is ErrorCode.MALFORMED_FRAME and info.value.fatal
    assert pair.server.state is State.CLOSED


def test_every_truncation_of_a_frame_is_refused_cleanly() -> None:
    whole = encode(Send("m1", [OutgoingEnvelope("bob", 1, b"payload" * 10)]))
    for cut in range(len(whole)):
        pair = opened()
        with pytest.raises(RemoteProtocolError) as info:
            pair.server.receive(whole[:cut], pair.clock())
        assert info.value.code is ErrorCode.MALFORMED_FRAME
    # Whole, it parses.
    assert isinstance(opened().server.receive(whole, 0), Send)


def test_trailing_bytes_are_refused() -> None:
    pair = opened()
    data = encode(Ping(1)) + b"\x00"
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(data, pair.clock())
    assert info.value.code is ErrorCode.MALFORMED_FRAME


def test_unknown_frame_type_refuses_only_that_frame() -> None:
    pair = opened()
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(msgspec.msgpack.encode([60, "future"]), pair.clock())
    assert info.value.code is ErrorCode.UNKNOWN_FRAME and not info.value.fatal
    assert pair.to_server(Ping(2)) == Ping(2)


def test_oversized_frame_is_fatal() -> None:
    pair = opened(Limits(max_frame_bytes=1000))
    data = encode(Send("m", [OutgoingEnvelope("b", 1, b"x" * 2000)]))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive(data, pair.clock())
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert pair.server.state is State.CLOSED


def test_oversized_envelope_refuses_the_send_only() -> None:
    pair = opened(Limits(max_envelope_bytes=100))
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server(Send("m", [OutgoingEnvelope("b", 1, b"x" * 101)]))
    assert info.value.code is ErrorCode.ENVELOPE_TOO_LARGE and not info.value.fatal
    assert pair.server.state is State.OPEN
    assert isinstance(pair.to_server(Send("m", [OutgoingEnvelope("b", 1, b"x" * 100)])), Send)


@pytest.mark.parametrize("bad", [[], [OutgoingEnvelope("b", 1, b"")] * 5])
def test_recipient_count_bounds(bad: list[OutgoingEnvelope]) -> None:
    pair = opened(Limits(max_recipients=4))
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server(Send("m", bad))
    assert info.value.code is ErrorCode.TOO_MANY_RECIPIENTS


def test_too_many_prekeys_per_upload() -> None:
    pair = opened(Limits(max_prekeys_per_upload=2))
    keys = [PrekeyRecord(3, i, b"k" * 32) for i in range(3)]
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server(UploadPrekeys(1, [], keys))
    assert info.value.code is ErrorCode.INVALID_PREKEY


def test_rate_limit_uses_the_injected_clock() -> None:
    clock = FakeClock()
    pair = ConnectionPair(Limits(frames_per_second=10, frame_burst=3), clock)
    pair.open("acct", 1, sign)  # the handshake took one token
    pair.to_server(Ping(1))
    pair.to_server(Ping(2))
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_server(Ping(3))
    assert info.value.code is ErrorCode.RATE_LIMITED and not info.value.fatal
    clock.advance(0.1)
    assert pair.to_server(Ping(4)) == Ping(4)


def test_client_refuses_frames_out_of_order() -> None:
    client = ClientConnection()
    with pytest.raises(RemoteProtocolError):
        client.receive(encode(SendResult("m", [])))
    with pytest.raises(LocalProtocolError):
        ClientConnection().send(Ack([]))


def test_client_cannot_authenticate_without_challenge() -> None:
    with pytest.raises(LocalProtocolError):
        ClientConnection().authenticate("a", 1, sign)


def test_server_cannot_push_before_ready() -> None:
    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError):
        pair.server.send(Deliver(b"g", "a", 1, "m", b"", 0))
    with pytest.raises(LocalProtocolError):
        pair.server.accept("a", 1)  # nothing pending


# -- hypothesis: the codec -----------------------------------------------------------------

small_bytes = st.binary(max_size=64)
names = st.text(min_size=1, max_size=20)
client_frames = st.one_of(
    st.builds(
        Send,
        names,
        st.lists(
            st.builds(OutgoingEnvelope, names, st.integers(0, 2**31 - 1), small_bytes),
            min_size=1,
            max_size=4,
        ),
    ),
    st.builds(Ack, st.lists(small_bytes, max_size=5)),
    st.builds(FetchBundle, st.integers(0, 2**31), names, st.integers(0, 100)),
    st.builds(Ping, st.integers(-(2**63), 2**63 - 1)),
    st.builds(
        UploadPrekeys,
        st.integers(0, 2**31),
        st.lists(
            st.builds(
                PrekeyRecord, st.integers(1, 4), st.integers(0, 2**32 - 1), small_bytes, small_bytes
            ),
            max_size=3,
        ),
        st.just([]),
    ),
)


@settings(max_examples=200)
@given(client_frames)
def test_codec_round_trips(frame: object) -> None:
    data = encode(frame)  # type: ignore[arg-type]
    assert decode_client(data) == frame


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    pair = opened()
    with contextlib.suppress(RemoteProtocolError):
        pair.server.receive(data, pair.clock())


@settings(max_examples=100)
@given(client_frames, st.integers(1, 10))
def test_split_or_extended_frames_are_refused(frame: object, extra: int) -> None:
    data = encode(frame)  # type: ignore[arg-type]
    pair = opened()
    with pytest.raises(RemoteProtocolError):
        pair.server.receive(data + b"\x00" * extra, pair.clock())


def test_server_frames_round_trip() -> None:
    frame = Deliver(b"g" * 16, "a", 2, "m", b"c", 9)
    assert decode_server(encode(frame)) == frame
