"""The server's own CPU per routed envelope, without sockets or a second process.

``bench/route.py`` measures the whole path over loopback, where the kernel's share (the
write and read system calls, waking the peer) is half of the cost and the machine's noise
is large. This bench runs the same Python path in one process: the real
``WebSocketProtocol``, codec, ``Session``, ``Router`` and quotas over an in-memory SQLite
store, with transports that hand each written frame to a stand-in client on the next loop
turn. Only the server's callbacks are timed (``time.perf_counter`` around each
``data_received`` and each loop turn's flush), so the figure is the server's Python cost
per envelope (Send, Deliver, Ack, SendResult), repeatable to a few per cent, to compare a
change against its parent.

    .venv/bin/python bench/hotpath.py                  # 25 pairs, window 1, 40,000 envelopes
    .venv/bin/python bench/hotpath.py --pairs 250 --window 8 --envelopes 100000
    .venv/bin/python bench/hotpath.py --profile        # and the top functions (cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import uvloop

from baat.proto import (
    Ack,
    Deliver,
    OutgoingEnvelope,
    Send,
    SendResult,
    State,
    WebSocketCodec,
    decode_server,
    encode,
)
from baat.server.config import ServerConfig
from baat.server.delivery import Router
from baat.server.quotas import SendQuotas
from baat.server.session import Session
from baat.server.state import ServerState
from baat.server.storage.base import Account, Device, StorageUnavailable
from baat.server.transport.guard import ConnectionGuard, TransportSettings
from baat.server.transport.ws import Hub, WebSocketProtocol
from baat.testing import memory_store

CONTENT = bytes(256)
UNLIMITED = 1e9


class Clock:
    """Seconds spent inside the server's callbacks."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        t0 = time.perf_counter()
        fn(*args)
        self.cpu += time.perf_counter() - t0


class Pipe:
    """A transport for the server's protocol: frames written go to a client next turn."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.closing = False

    def write(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.client.receive, data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True


class Client:
    """One end of a pair: sends masked frames to the server, answers what it is sent."""

    def __init__(self, clock: Clock, proto: WebSocketProtocol) -> None:
        self.clock = clock
        self.proto = proto
        self.codec = WebSocketCodec(1 << 20, client=True)
        self.on_message: Callable[[Any], None] = lambda frame: None

    def send(self, frame: Any) -> None:
        data = self.codec.binary(encode(frame))
        asyncio.get_running_loop().call_soon(self.clock.run, self.proto.data_received, data)

    def receive(self, data: bytes) -> None:
        for event in self.codec.receive(data):
            self.on_message(decode_server(event.data))


async def run(args: argparse.Namespace) -> dict[str, float]:
    store = await memory_store()
    names = [f"u{i}" for i in range(2 * args.pairs)]
    for name in names:
        await store.create_account(
            Account(name, name, "local", "IN", 1, 1),
            Device(name, 1, b"i" * 32, b"d" * 32, b"s" * 64, 1, b"h" * 32),
        )
    router = Router(
        store,
        envelopes_per_second=UNLIMITED,
        envelope_burst=UNLIMITED,
        quotas=SendQuotas(store.engine, per_second=UNLIMITED),
    )
    await router.start()
    state = ServerState(ServerConfig(), store, router)
    settings = TransportSettings()
    hub = Hub(settings, ConnectionGuard(settings), lambda: state, 1 << 20)
    clock = Clock()
    loop = asyncio.get_running_loop()
    flush = hub.flush
    hub.flush = lambda: clock.run(flush)  # type: ignore[method-assign]
    clients: dict[str, Client] = {}
    for name in names:
        proto = WebSocketProtocol(hub, "127.0.0.1")
        client = Client(clock, proto)
        proto.connection_made(Pipe(client))  # type: ignore[arg-type]
        proto._codec = WebSocketCodec(1 << 20)
        session = Session(proto, state)
        proto.session = session
        # Authenticated without the signature exchange (route.py measures that path).
        session.conn.state = State.OPEN
        session.conn.account_id, session.conn.device_id = name, 1
        session.key = (name, 1)
        router.learn_devices(name, frozenset({1}))
        await router.attach(session)
        clients[name] = client
    done = 0
    target = args.envelopes
    finished = loop.create_future()
    counter = iter(range(1 << 62))

    def send_one(sender: Client, to: str) -> None:
        env = OutgoingEnvelope(recipient_account=to, recipient_device=1, content=CONTENT)
        sender.send(Send(message_id=f"m{next(counter)}", envelopes=[env]))

    for i in range(args.pairs):
        a, b = clients[names[2 * i]], clients[names[2 * i + 1]]
        to = names[2 * i + 1]

        def on_sender(frame: Any, a: Client = a, to: str = to) -> None:
            nonlocal done
            if isinstance(frame, SendResult):
                done += 1
                if done >= target:
                    if not finished.done():
                        finished.set_result(None)
                    return
                send_one(a, to)

        def on_receiver(frame: Any, b: Client = b) -> None:
            if isinstance(frame, Deliver):
                b.send(Ack(guids=[frame.guid]))

        a.on_message = on_sender
        b.on_message = on_receiver
    gc.collect()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    for i in range(args.pairs):
        for _ in range(args.window):
            send_one(clients[names[2 * i]], names[2 * i + 1])
    await finished
    wall = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    stored = router.stats.stored
    with contextlib.suppress(StorageUnavailable):
        await router.stop()  # its last write may find the in-memory database gone
    await store.close()
    return {"us_per_env": clock.cpu / done * 1e6, "wall_s": wall, "stored": stored, "n": done}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=25)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--envelopes", type=int, default=40_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    figures = []
    for _ in range(1 if args.profile else args.repeat):
        r = uvloop.run(run(args))
        figures.append(r["us_per_env"])
        print(
            f"{r['n']:,} envelopes, {args.pairs} pairs, window {args.window}: "
            f"{r['us_per_env']:.2f} µs of server CPU per envelope "
            f"(wall {r['wall_s']:.2f} s, {r['stored']} stored)"
        )
    if len(figures) > 1:
        print(
            f"median {statistics.median(figures):.2f} µs, min {min(figures):.2f}, "
            f"max {max(figures):.2f}"
        )


if __name__ == "__main__":
    main()
