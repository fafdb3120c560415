"""Fuzzing campaign against a live ``baat serve`` (issue 14, item 9).

Starts a server on a free port (SQLite in a temporary directory) unless ``--url`` names
one, then, for ``--frames`` frames or ``--seconds`` seconds, whichever comes first:

- fuzzing connections send mutated valid frames: bit flips, truncation, splicing of two
  real frames, extreme integers (2**63, 2**64-1, -1, ...), deep nesting, type confusion,
  huge declared lengths, unknown tags, random bytes and text messages; over authenticated
  connections (most) and unauthenticated ones; each one reconnects when the server closes
  it after a fatal error;
- now and then, malformed WebSocket frames (reserved bits, unknown opcodes, unmasked or
  oversized frames) and malformed HTTP requests (garbage, bad or huge Content-Length,
  oversized headers, bad upgrades);
- meanwhile a well-behaved pair exchanges messages one at a time (window 1) and
  acknowledges everything it receives.

It prints frames sent, the server's answers by error code, the server's tracebacks,
restarts (the server process exiting; it is restarted and the run goes on) and every
message the well-behaved pair lost, and exits non-zero if any of those three is not zero.
``--json`` prints the figures as one JSON object instead (tests/server/test_fuzz.py).

The fuzzing server runs with ``--frames-per-second 1000000`` so that frames reach the
decoder instead of the per-connection rate limit (which has its own tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baat.proto import (
    Ack,
    Authenticate,
    Deliver,
    Error,
    FetchBundle,
    OutgoingEnvelope,
    Ping,
    Pong,
    PrekeyRecord,
    Send,
    SendResult,
    UploadPrekeys,
    decode_server,
    encode,
)
from route_load import (
    ConnectionLost,
    Device,
    WsClient,
    baat_connect,
    register_http,
    ws_connect,
)

EXTREME_INTS = [2**63, 2**64 - 1, 2**63 - 1, -(2**63), -1, 2**31, 2**32, 0, 65536]
FUZZ_CONNECTIONS = 6  # of which one unauthenticated
WINDOW = 4  # fuzzed frames in flight per connection (those behind a fatal one are lost)
PROBE = 1 << 40  # probe Ping nonces start above this


class Window:
    __slots__ = ("freed", "outstanding")

    def __init__(self) -> None:
        self.outstanding = 0
        self.freed = asyncio.Event()


WS_GARBAGE = [
    b"\xc2\x81abcd\x00",  # RSV1 set
    b"\x83\x81abcd\x00",  # reserved opcode 3
    b"\x82\x01x",  # unmasked
    b"\x89\xfe\x00\x7eabcd" + b"\x00" * 126,  # control frame over 125 bytes
    b"\x09\x80abcd",  # fragmented ping
    b"\x80\x80abcd",  # continuation without a message
    b"\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xffabcd",  # 2**63-1 bytes declared
    b"\x88\x81abcd\x00",  # 1-byte close payload
]
HTTP_GARBAGE = [
    b"\x00\x01\x02 garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{not json}",
    b"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"X-Long: " + b"b" * 200000 + b"\r\n\r\n",
    b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 30\r\n\r\n" + b"[" * 30,
]


@dataclass
class Figures:
    frames: int = 0
    ws_garbage: int = 0
    http_requests: int = 0
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    http_status: Counter[int] = field(default_factory=Counter)
    sent_ok: int = 0
    received_ok: int = 0
    lost: int = 0
    good_errors: list[str] = field(default_factory=list)
    tracebacks: int = 0
    restarts: int = 0
    seconds: float = 0.0


class Mutator:
    def __init__(
        self,
        rng: random.Random,
        corpus: list[bytes],
        peer: Device,
        fatal_share: float,
        authenticated: bool,
    ) -> None:
        self.authenticated = authenticated
        self.rng = rng
        self.corpus = corpus
        self.peer = peer
        self.fatal_share = fatal_share

    def frame(self) -> tuple[str, bytes | str]:
        """One fuzzed frame and the name of its mutation. ``--fatal-share`` of them (one in
        twenty) are fatal mutations (the server answers with a fatal error and closes); the
        rest keep the connection open, so most frames reach the handlers, not just the
        decoder."""
        rng = self.rng
        base = rng.choice(self.corpus)
        if rng.random() < self.fatal_share or not self.authenticated:
            # Before authentication every frame but Ping is fatal anyway.
            return self._fatal(base)
        kind = rng.randrange(6)
        if kind == 0:
            return "valid", rng.choice(self.corpus[:-1])  # all but Authenticate
        if kind == 1:
            return "generated", self._generated()
        if kind == 2:
            return "payload_flip", self._payload_flip()
        if kind == 3:
            raw = msgspec.msgpack.decode(base)
            raw.append({"appended": [1, [2, [3]]]})  # a newer peer's extra field: accepted
            return "appended_field", msgspec.msgpack.encode(raw)
        if kind == 4:
            return "unknown_tag", msgspec.msgpack.encode([rng.randint(7, 63), rng.randbytes(8)])
        return "edge_ints", self._edge_in_range()

    def _fatal(self, base: bytes) -> tuple[str, bytes | str]:
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            out = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(out))
                out[i] ^= 1 << rng.randrange(8)
            return "bit_flip", bytes(out)
        if kind == 1:
            return "truncated", base[: rng.randrange(len(base))]
        if kind == 2:
            other = rng.choice(self.corpus)
            cut = rng.randrange(len(base) + 1)
            return "spliced", base[:cut] + other[rng.randrange(len(other)) :]
        if kind == 3:
            return "extreme_int", self._extreme_int(base)
        if kind == 4:
            depth = rng.choice([8, 64, 1000, 5000, 100_000])
            if rng.random() < 0.5:
                return "deep_nesting", b"\x91" * depth + b"\x01"
            head = b"\x93" + base[1:2] if base[:1] == b"\x92" else base[:2]
            return "deep_nesting", head + b"\x91" * depth + b"\x01"
        if kind == 5:
            return "type_confusion", self._confuse(base)
        if kind == 6:
            return "huge_length", rng.choice(
                [
                    b"\x92\x02\xdd\xff\xff\xff\xff",  # an array claiming 4 billion items
                    b"\x92\x03\x91\xc6\xff\xff\xff\xff",  # bin claiming 4 GiB
                    b"\x93\x04\x01\xdb\x7f\xff\xff\xff",  # str claiming 2 GiB
                    b"\xdf\xff\xff\xff\xff",  # map claiming 4 billion pairs
                ]
            )
        if kind == 7:
            return "random_bytes", rng.randbytes(rng.randint(0, 64))
        return "text_message", "text " + rng.randbytes(4).hex()

    def _generated(self) -> bytes:
        """A well-formed frame with random values inside the protocol's bounds."""
        rng = self.rng
        account = rng.choice([self.peer.account_id, "in-" + rng.randbytes(12).hex(), ""])
        device = rng.choice([0, 1, 2, rng.randrange(2**31)])
        kind = rng.randrange(5)
        if kind == 0:
            envs = [
                OutgoingEnvelope(account, device, rng.randbytes(rng.randint(0, 2048)))
                for _ in range(rng.randint(0, 4))
            ]
            mid = rng.choice(["m-" + rng.randbytes(6).hex(), "", "x" * 65, "y" * 256])
            return encode(Send(mid, envs))
        if kind == 1:
            return encode(Ack([rng.randbytes(rng.choice([0, 16, 64])) for _ in range(3)]))
        if kind == 2:
            return encode(FetchBundle(rng.randrange(2**63), account, device))
        if kind == 3:
            rec = PrekeyRecord(
                rng.randrange(6), rng.randrange(2**63), rng.randbytes(rng.choice([0, 32, 1184]))
            )
            return encode(UploadPrekeys(rng.randrange(2**40), [rec], [rec] * rng.randint(0, 3)))
        return encode(Ping(rng.randrange(-(2**63), 2**40)))

    def _payload_flip(self) -> bytes:
        """Bit flips inside an envelope's ciphertext: the server must route it untouched."""
        content = bytearray(self.rng.randbytes(128))
        content[self.rng.randrange(128)] ^= 0xFF
        env = OutgoingEnvelope(self.peer.account_id, self.peer.device_id, bytes(content))
        return encode(Send("pf-" + self.rng.randbytes(6).hex(), [env]))

    def _edge_in_range(self) -> bytes:
        rng = self.rng
        return rng.choice(
            [
                encode(Ping(2**63 - 1 if rng.random() < 0.5 else -(2**63))),
                encode(FetchBundle(2**63 - 1, self.peer.account_id, 2**31 - 1)),
                encode(Ack([b""] * rng.randint(0, 1024))),
            ]
        )

    def _extreme_int(self, base: bytes) -> bytes:
        raw = msgspec.msgpack.decode(base)
        ints = _int_paths(raw)
        if not ints:
            return base
        path = self.rng.choice(ints)
        _set(raw, path, self.rng.choice(EXTREME_INTS))
        return msgspec.msgpack.encode(raw)

    def _confuse(self, base: bytes) -> bytes:
        raw = msgspec.msgpack.decode(base)
        if len(raw) < 2:
            return base
        i = self.rng.randrange(1, len(raw))
        raw[i] = self.rng.choice([1.5, "str", {"k": 1}, [[[]]], None, True, b"\x00" * 3])
        return msgspec.msgpack.encode(raw)


def _int_paths(value: Any, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _int_paths(v, (*path, i))]
    return []


def _set(value: list[Any], path: tuple[int, ...], new: int) -> None:
    for i in path[:-1]:
        value = value[i]
    value[path[-1]] = new


def corpus_for(me: Device, peer: Device) -> list[bytes]:
    env = OutgoingEnvelope(peer.account_id, peer.device_id, os.urandom(64))
    return [
        encode(Send("fz-" + secrets.token_hex(4), [env])),
        encode(Send("fz-many", [env, OutgoingEnvelope(peer.account_id, 2, b"x")])),
        encode(Ack([os.urandom(16), os.urandom(16)])),
        encode(Ping(7)),
        encode(FetchBundle(1, peer.account_id, 0)),
        encode(FetchBundle(2, me.account_id, 1)),
        encode(UploadPrekeys(3, [PrekeyRecord(1, 5, os.urandom(32), os.urandom(64))], [])),
        encode(Authenticate(1, me.account_id, me.device_id, os.urandom(64))),
    ]


class Target:
    """The server under test: ours (restarted if it exits) or one named by --url."""

    def __init__(self, url: str | None, tmp: Path) -> None:
        self.external = url
        self.tmp = tmp
        self.port = _free_port() if url is None else int(url.rsplit(":", 1)[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "server.log"
        self.restarts = 0

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.external:
            return
        cmd = [sys.executable, "-m", "baat", "serve", "--data", str(self.tmp / "data")]
        cmd += ["--region", "in"]
        cmd += ["--port", str(self.port), "--frames-per-second", "1000000"]
        cmd += ["--envelopes-per-second", "1000000", "--registrations-per-minute", "100000"]
        # The well-behaved pair sends faster than the per-recipient quota (which has its
        # own tests); lift it so that the pair's messages measure loss, not the quota.
        cmd += ["--recipient-envelopes-per-second", "1000000"]
        cmd += ["--max-connections-per-address", "0"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/healthz", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def check(self) -> None:
        """Restart the server if it died (and count it)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tracebacks(self) -> tuple[int, str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        first = text.find("Traceback")
        return text.count("Traceback"), (text[first : first + 3000] if first >= 0 else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    def __init__(self, args: argparse.Namespace, target: Target) -> None:
        self.args = args
        self.target = target
        self.fig = Figures()
        self.rng = random.Random(args.seed)
        self.deadline = time.monotonic() + args.seconds
        self.ready = asyncio.Event()

    def over(self) -> bool:
        return self.fig.frames >= self.args.frames or time.monotonic() >= self.deadline

    async def fuzz_connection(self, me: Device, peer: Device, authenticated: bool) -> None:
        """Each mutated frame is followed by a probe ``Ping``: its ``Pong`` proves that the
        server decoded and answered the frame before it; a fatal ``Error`` counts the frame
        that caused it. Only frames the server answered are counted, WINDOW in flight."""
        host, port = "127.0.0.1", self.target.port
        await self.ready.wait()
        mutator = Mutator(
            random.Random(self.rng.random()),
            corpus_for(me, peer),
            peer,
            self.args.fatal_share,
            authenticated,
        )
        probe = PROBE
        while not self.over():
            try:
                if authenticated:
                    client = await baat_connect(host, port, me, 30)
                else:
                    client = await ws_connect(host, port, "/v1/ws", 30)
            except (ConnectionLost, OSError, TimeoutError):
                await asyncio.sleep(0.05)
                self.target.check()
                continue
            self.fig.reconnects += 1
            window = Window()
            reader = asyncio.create_task(self._read_answers(client, window))
            try:
                while not self.over():
                    transport = client.transport
                    if client.closed or transport is None or transport.is_closing():
                        break
                    if window.outstanding >= WINDOW:
                        window.freed.clear()
                        await window.freed.wait()
                        continue
                    name, frame = mutator.frame()
                    self.fig.mutations[name] += 1
                    if isinstance(frame, str):
                        client._write_frame(0x81, frame.encode())
                    else:
                        client._write_frame(0x82, frame)
                    probe += 1
                    client._write_frame(0x82, encode(Ping(probe)))
                    window.outstanding += 1
            finally:
                client.close()
                await reader
            if not authenticated:
                await asyncio.sleep(0.005)  # leave the loop to the authenticated fuzzers

    async def _read_answers(self, client: WsClient, window: Window) -> None:
        while True:
            data = await client.inbox.get()
            if data is None:
                window.freed.set()
                return
            try:
                frame = decode_server(data)
            except (msgspec.MsgspecError, ValueError):
                self.fig.errors["<undecodable server frame>"] += 1
                continue
            if isinstance(frame, Pong) and frame.nonce > PROBE:
                self.fig.frames += 1
                window.outstanding -= 1
                window.freed.set()
            elif isinstance(frame, Error):
                self.fig.errors[frame.code] += 1
                if frame.fatal:
                    self.fig.frames += 1

    async def ws_garbage(self) -> None:
        await self.ready.wait()
        while not self.over():
            try:
                client = await ws_connect("127.0.0.1", self.target.port, "/v1/ws", 30)
            except (ConnectionLost, OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            assert client.transport is not None
            client.transport.write(self.rng.choice(WS_GARBAGE))
            self.fig.ws_garbage += 1
            with contextlib.suppress(TimeoutError):
                while await asyncio.wait_for(client.inbox.get(), 10) is not None:
                    pass
            client.close()
            await asyncio.sleep(0.02)

    async def http_garbage(self) -> None:
        while not self.over():
            with contextlib.suppress(OSError, TimeoutError):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.target.port), 30
                )
                writer.write(self.rng.choice(HTTP_GARBAGE))
                with contextlib.suppress(OSError):
                    await writer.drain()
                try:
                    head = await asyncio.wait_for(reader.read(64), 15)
                except (OSError, TimeoutError):
                    head = b""
                status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b"0"
                self.fig.http_status[int(status) if status.isdigit() else 0] += 1
                self.fig.http_requests += 1
                writer.close()
            await asyncio.sleep(0.02)

    async def good_pair(self, alice: Device, bob: Device) -> None:
        """Window 1, alice to bob; bob acknowledges. Every message must arrive once."""
        host, port = "127.0.0.1", self.target.port
        a = await baat_connect(host, port, alice, 30)
        b = await baat_connect(host, port, bob, 30)
        self.ready.set()  # bob is online: fuzzed sends to him are pushed and acknowledged
        sent: set[str] = set()
        got: set[str] = set()

        async def receive() -> None:
            while True:
                data = await b.inbox.get()
                if data is None:
                    return
                frame = decode_server(data)
                if isinstance(frame, Deliver):
                    if frame.sender_account == alice.account_id:
                        got.add(frame.message_id)
                    b.send(encode(Ack([frame.guid])))
                elif isinstance(frame, Error):
                    self.fig.good_errors.append(f"receiver: {frame.code}")

        receiver = asyncio.create_task(receive())
        n = 0
        while not self.over():
            mid = f"good-{n}"
            body = os.urandom(256)
            a.send(encode(Send(mid, [OutgoingEnvelope(bob.account_id, bob.device_id, body)])))
            try:
                while True:
                    frame = decode_server(await a.recv(30))
                    if isinstance(frame, SendResult) and frame.message_id == mid:
                        sent.add(mid)
                        break
                    if isinstance(frame, Error):
                        self.fig.good_errors.append(f"sender: {frame.code}")
                        break
            except (ConnectionLost, TimeoutError) as exc:
                self.fig.good_errors.append(f"sender connection: {exc}")
                break
            n += 1
            await asyncio.sleep(0.005)  # a person's pace, not a load test
        deadline = time.monotonic() + 30
        while sent - got and time.monotonic() < deadline:  # noqa: ASYNC110 - polls two sets
            await asyncio.sleep(0.05)
        a.close()
        b.close()
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        self.fig.sent_ok = len(sent)
        self.fig.received_ok = len(sent & got)
        self.fig.lost = len(sent - got)

    async def main(self) -> Figures:
        start = time.monotonic()
        devices = await register_http(self.target.url, 2 + FUZZ_CONNECTIONS, 4)
        alice, bob, *fuzzers = devices
        jobs = [self.good_pair(alice, bob), self.ws_garbage(), self.http_garbage()]
        for i, me in enumerate(fuzzers):
            jobs.append(self.fuzz_connection(me, bob, authenticated=i > 0))
        await asyncio.gather(*jobs)
        self.fig.seconds = time.monotonic() - start
        return self.fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--fatal-share", type=float, default=0.05, help="share of frames mutated to be fatal"
    )
    parser.add_argument("--url", default=None, help="fuzz this server instead of starting one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = secrets.randbits(32)
    with tempfile.TemporaryDirectory(prefix="baat-fuzz-") as tmp:
        target = Target(args.url, Path(tmp))
        target.start()
        try:
            fig = asyncio.run(Run(args, target).main())
            target.check()
        finally:
            target.stop()
        fig.restarts = target.restarts
        fig.tracebacks, first = target.tracebacks()
    out = {
        "seed": args.seed,
        "seconds": round(fig.seconds, 1),
        "frames": fig.frames,
        "frames_per_second": round(fig.frames / fig.seconds) if fig.seconds else 0,
        "fuzz_connections": fig.reconnects,
        "ws_garbage": fig.ws_garbage,
        "http_requests": fig.http_requests,
        "http_status": dict(sorted(fig.http_status.items())),
        "mutations_written": dict(fig.mutations.most_common()),
        "errors": dict(fig.errors.most_common()),
        "tracebacks": fig.tracebacks,
        "restarts": fig.restarts,
        "good_sent": fig.sent_ok,
        "good_received": fig.received_ok,
        "lost": fig.lost,
        "good_errors": fig.good_errors[:20],
        "first_traceback": first,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            if key != "first_traceback":
                print(f"{key:>18}: {value}")
        if first:
            print("first traceback:\n" + first)
    bad = fig.tracebacks or fig.restarts or fig.lost or fig.good_errors
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
