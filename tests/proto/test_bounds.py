"""Decode-time bounds (issue 14, "bad frames"): every malformed input is a typed
``RemoteProtocolError``, never ``RecursionError``, ``OverflowError`` or another escape."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baat.proto import (
    Ack,
    Authenticate,
    ErrorCode,
    FetchBundle,
    OutgoingEnvelope,
    Ping,
    PrekeyRecord,
    RemoteProtocolError,
    Send,
    ServerConnection,
    State,
    UploadPrekeys,
    encode,
    peek,
    request_hint,
)

DEEP = 200_000


def deep_array(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"


def refused(data: bytes, state: State = State.OPEN) -> RemoteProtocolError:
    conn = ServerConnection(b"n" * 32, 0.0)
    conn.state = state
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(data, 0.0)
    return info.value


@pytest.mark.parametrize(
    "data",
    [
        b"\x93\x06\x01" + deep_array(DEEP),  # appended unknown field, nested deeply
        b"\x92\x06" + deep_array(DEEP),  # a known field holding deep nesting
        b"\x93\x02\xa1m" + deep_array(DEEP),  # Send whose envelope list is nested
        deep_array(DEEP),  # nothing but nesting
        b"\x81" * DEEP + b"\x01",  # nested maps
    ],
)
def test_deep_nesting_is_a_typed_error(data: bytes) -> None:
    exc = refused(data)
    assert exc.code is ErrorCode.MALFORMED_FRAME


@pytest.mark.parametrize(
    "frame",
    [
        [1, 1, "acct", 2**63, b"s" * 64],  # device id 2**63
        [1, 1, "acct", -1, b"s" * 64],
        [1, 1, "acct", 2**64 - 1, b"s" * 64],
        [1, 2**40, "acct", 1, b"s"],  # absurd version
        [1, 1, "a" * 129, 1, b"s"],  # account id too long
        [1, 1, "acct", 1, b"s" * 4097],  # signature too long
    ],
)
def test_integer_and_string_ranges_before_authentication(frame: list[object]) -> None:
    exc = refused(msgspec.msgpack.encode(frame), State.AWAITING_AUTH)
    assert exc.code is ErrorCode.MALFORMED_FRAME


@pytest.mark.parametrize(
    "frame",
    [
        [2, "m", [["acct", 2**63, b"x"]]],  # recipient device 2**63
        [2, "m" * 257, [["acct", 1, b"x"]]],  # message id past the decoder's ceiling
        [3, [b"g" * 65]],  # guid too long
        [3, [b"g"] * 65_537],  # too many guids for the decoder
        [4, 2**63, "acct", 1],  # request id 2**63
        [4, 1, "acct", 2**31],  # device id past 32 bits
        [5, 1, [[1, 2**63, b"k", b""]], []],  # key id 2**63
        [5, 1, [], [[2**16 + 1, 1, b"k", b""]]],  # kind out of range
        [6, 2**63],  # ping nonce
        [6, 1.5],  # not an integer
    ],
)
def test_integer_list_and_string_ranges_when_open(frame: list[object]) -> None:
    exc = refused(msgspec.msgpack.encode(frame))
    assert exc.code is ErrorCode.MALFORMED_FRAME


def test_largest_allowed_values_still_decode() -> None:
    conn = ServerConnection(b"n" * 32, 0.0)
    conn.state = State.OPEN
    assert conn.receive(encode(Ping(nonce=2**63 - 1)), 0.0) == Ping(nonce=2**63 - 1)
    fetch = FetchBundle(request_id=2**63 - 1, account_id="a" * 128, device_id=2**31 - 1)
    assert conn.receive(encode(fetch), 0.0) == fetch


def test_appended_fields_of_a_newer_peer_are_still_accepted() -> None:
    conn = ServerConnection(b"n" * 32, 0.0)
    conn.state = State.OPEN
    data = msgspec.msgpack.encode([6, 9, {"new": [1, [2, [3]]]}])
    assert conn.receive(data, 0.0) == Ping(nonce=9)


FRAMES = [
    Authenticate(version=1, account_id="acct", device_id=3, signature=b"s" * 64),
    Send(message_id="msg-1", envelopes=[OutgoingEnvelope("b", 1, b"c")]),
    Ack(guids=[b"g" * 16]),
    FetchBundle(request_id=77, account_id="acct"),
    UploadPrekeys(request_id=2**40, signed=[PrekeyRecord(1, 1, b"k")], one_time=[]),
    Ping(nonce=5),
]


@pytest.mark.parametrize("frame", FRAMES)
def test_peek_reads_tag_and_first_field(frame: object) -> None:
    data = encode(frame)  # type: ignore[arg-type]
    tag, second = peek(data)
    assert tag == type(frame).__struct_config__.tag
    first_field = msgspec.msgpack.decode(data)[1]
    assert second == (first_field if isinstance(first_field, int | str) else None)


def test_request_hint_names_what_was_refused() -> None:
    assert request_hint(encode(FetchBundle(request_id=77, account_id="a"))) == (77, "")
    assert request_hint(encode(FRAMES[1])) == (0, "msg-1")
    assert request_hint(b"\x92\x04" + deep_array(DEEP)) == (0, "")
    assert request_hint(msgspec.msgpack.encode([4, 2**64 - 1])) == (0, "")


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_peek_never_raises(data: bytes) -> None:
    tag, second = peek(data)
    assert tag is None or isinstance(tag, int)
    assert second is None or isinstance(second, int | str)


@settings(max_examples=300)
@given(st.sampled_from(FRAMES), st.integers(min_value=0, max_value=200), st.binary(max_size=9))
def test_truncated_or_spliced_frames_are_typed_errors(frame: object, cut: int, junk: bytes) -> None:
    data = encode(frame)  # type: ignore[arg-type]
    mutated = data[: cut % (len(data) + 1)] + junk
    conn = ServerConnection(b"n" * 32, 0.0)
    conn.state = State.OPEN if not isinstance(frame, Authenticate) else State.AWAITING_AUTH
    try:
        conn.receive(mutated, 0.0)
    except RemoteProtocolError as exc:
        assert exc.code in set(ErrorCode)
