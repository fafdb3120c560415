"""The socket path's share of the loop (``transport/ws.py`` with ``server/fairness.py``):
a quantum of messages per connection per turn, and a held sender that reads nothing more.

The protocol object is the real one with the real codec; its transport records what the
protocol asks of it and its session records the messages it is handed, so each loop turn
can be inspected. (The e2e test in ``test_fairness_e2e.py`` runs all of it for real.)
"""

from __future__ import annotations

import asyncio

from baat.server.fairness import MESSAGES_PER_TURN
from support.wsfake import conn, frames
from support.wsfake import hub as make_hub


async def test_a_pipelining_connection_gets_one_quantum_per_turn() -> None:
    log: list[str] = []
    hub = make_hub()
    big, big_t, _ = conn(hub, "big", log)
    small, small_t, _ = conn(hub, "small", log)
    big.data_received(frames([b"m"] * 100))
    assert log == ["big"] * MESSAGES_PER_TURN and big_t.paused
    small.data_received(frames([b"m"] * 3))  # the next socket callback of the same turn
    assert log[-3:] == ["small"] * 3 and not small_t.paused
    turns = 0
    while big_t.paused and turns < 50:
        await asyncio.sleep(0)
        turns += 1
    assert log.count("big") == 100
    assert turns >= 100 // MESSAGES_PER_TURN  # one quantum per turn, never all at once
    assert not big_t.paused  # backlog done: reading again


async def test_a_held_sender_handles_nothing_more_until_released() -> None:
    log: list[str] = []
    hub = make_hub()
    c, transport, _ = conn(hub, "c", log)
    c.data_received(frames([b"m", b"greedy", b"m", b"m"]))
    assert log == ["c", "c"] and transport.paused  # held after the second
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["c", "c"] and transport.paused
    c.release_reading()
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["c"] * 4 and not transport.paused
