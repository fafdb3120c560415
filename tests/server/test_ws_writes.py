"""The socket path's writes (``transport/ws.py``): the frames a connection is sent during
one loop turn leave in one write, in order, and nothing written before a close is lost.

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


async def test_frames_of_one_turn_leave_in_one_write_in_order() -> None:
    c, transport, _ = conn(hub(), "c", [])
    for i in range(5):
        c.write_message(b"frame %d" % i)
    assert transport.written == []  # nothing before the turn's callbacks are done
    await asyncio.sleep(0)
    assert len(transport.written) == 1
    assert _messages(transport.written) == [b"frame %d" % i for i in range(5)]
    c.write_message(b"next turn")
    await asyncio.sleep(0)
    assert len(transport.written) == 2
    assert _messages(transport.written)[-1] == b"next turn"


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
        c.write_message(b"x" * 4000)  # 160 kB in one turn: flushed every 64 KiB
    assert 2 <= len(transport.written) <= 3
    await asyncio.sleep(0)
    assert len(_messages(transport.written)) == 40
