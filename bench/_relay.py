"""A minimal asyncio WebSocket relay: the ceiling that ``bench/route.py`` compares Baat to.

No storage, no authentication, no framing of its own. A client connects to ``/r/<pair>``
(receiver) or ``/s/<pair>`` (sender); the relay greets it with ``b"ok"`` once registered.
Each binary message from a sender is forwarded unchanged to the receiver of the same pair;
each message from a receiver (its acknowledgement) becomes a small ack (the first 8 bytes)
sent to the sender. That is the same four WebSocket messages per envelope as Baat's
Send -> Deliver -> Ack -> SendResult, with none of the work in between.

Run: ``python bench/_relay.py --port 8790`` (stops on SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal

from websockets.asyncio.server import ServerConnection, serve

ACK_BYTES = 8


class Relay:
    def __init__(self) -> None:
        self.senders: dict[str, ServerConnection] = {}
        self.receivers: dict[str, ServerConnection] = {}

    async def handler(self, ws: ServerConnection) -> None:
        parts = ws.request.path.strip("/").split("/") if ws.request is not None else []
        if len(parts) != 2 or parts[0] not in ("s", "r"):
            await ws.close(1008, "path must be /s/<pair> or /r/<pair>")
            return
        role, pair = parts
        mine, theirs = (
            (self.senders, self.receivers) if role == "s" else (self.receivers, self.senders)
        )
        mine[pair] = ws
        try:
            await ws.send(b"ok")
            async for message in ws:
                peer = theirs.get(pair)
                if peer is None or isinstance(message, str):
                    continue
                with contextlib.suppress(Exception):  # the peer went away
                    await peer.send(message if role == "s" else message[:ACK_BYTES])
        finally:
            if mine.get(pair) is ws:
                del mine[pair]


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    relay = Relay()
    async with serve(
        relay.handler,
        host,
        port,
        compression=None,
        max_size=1 << 20,
        ping_interval=30.0,
        ping_timeout=30.0,
        backlog=4096,
    ):
        print(f"relay listening on ws://{host}:{port}", flush=True)
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    _raise_nofile()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(_main(args.host, args.port))
    else:
        uvloop.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
