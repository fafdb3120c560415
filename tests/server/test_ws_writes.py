"""The socket path's writes (``transport/ws.py``): a connection sent one frame a loop turn
gets it at once; one sent several gets them in one write at the end of the turn; the order
holds, and nothing written before a close is lost.

The protocol object and codec are the real ones over a recording transport, as in
``test_ws_fairness.py``; ``test_ws_interop.py`` runs the same path over real sockets.
"""

from __future__ import annotations

import asyncio

from baat.proto import CLOSE_POLICY, Message, WebSocketCodec
from support.wsfake import conn, hub


def _messages(written: list[bytes]) -> list[bytes]:
    # A client's view: unmasked server frames, decoded by a second codec in client mode.
    codec = WebSocketCodec(65536, client=True)
    return [e.data for e in codec.receive(b"".join(written)) if isinstance(e, Message)]


async def test_the_first_frame_leaves_at_once_the_rest_of_the_turn_in_one_write() -> None:
    c, transport, _ = conn(hub(), "c", [])
    for i in range(5):
        c.write_message(b"frame %d" % i)
    assert _messages(transport.written) == [b"frame 0"]  # its reader need not wait
    await asyncio.sleep(0)  # the turn's callbacks are done: the other four, together
    assert len(transport.written) == 2
    assert _messages(transport.written) == [b"frame %d" % i for i in range(5)]
    # Several frames last turn: this turn's all wait for its end, and go in one write.
    c.write_message(b"a")
    c.write_message(b"b")
    assert len(transport.written) == 2
    await asyncio.sleep(0)
    assert len(transport.written) == 3 and _messages(transport.written)[-2:] == [b"a", b"b"]
    # One frame a turn again: after one gathered turn, back to at once.
    c.write_message(b"alone")
    await asyncio.sleep(0)
    c.write_message(b"at once")
    assert _messages(transport.written)[-1] == b"at once"


async def test_a_close_sends_what_was_written_before_it() -> None:
    c, transport, _ = conn(hub(), "c", [])
    c.write_message(b"last words")
    c.close(CLOSE_POLICY)
    await asyncio.sleep(0)
    data = b"".join(transport.written)
    assert data.index(b"last words") < data.index(bytes((0x88,)))  # then the Close frame


async def test_a_long_burst_is_written_before_the_turn_ends() -> None:
    c, transport, _ = conn(hub(), "c", [])
    for _ in range(40):
        c.write_message(b"x" * 4000)  # 160 kB in one turn: written every 64 KiB
    assert 3 <= len(transport.written) <= 4  # the first at once, then every 64 KiB
    await asyncio.sleep(0)
    assert len(_messages(transport.written)) == 40


async def test_a_reader_too_slow_for_a_gathered_burst_is_closed_once() -> None:
    """Over ``max_write_buffer`` while paused: the connection is closed with 1008 after the
    frames gathered before it, once (the close must not re-enter the buffer check)."""
    h = hub()
    c, transport, _ = conn(h, "c", [])
    transport.get_write_buffer_size = lambda: h.settings.max_write_buffer + 1  # type: ignore[method-assign]
    closed: list[bool] = []
    transport.close = lambda: closed.append(True)  # type: ignore[method-assign]
    transport.is_closing = lambda: bool(closed)  # type: ignore[method-assign]
    c.write_message(b"one")
    await asyncio.sleep(0)
    c.write_message(b"two")
    c.write_message(b"three")  # several a turn: the next turn gathers
    await asyncio.sleep(0)
    c.pause_writing()
    for _ in range(40):
        c.write_message(b"x" * 4000)  # crosses 64 KiB: written, then found too slow
    assert closed == [True]
    data = b"".join(transport.written)
    assert data.count(bytes((0x88,))) == 1 and data.rstrip().endswith(b"too slow to read")
