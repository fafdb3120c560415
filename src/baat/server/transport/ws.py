"""The ``/v1/ws`` socket path on ``asyncio.Protocol`` (issue 18, item 1).

1. The HTTP protocol (``transport.http``) sees an upgrade request and hands this protocol
   the transport and the request's bytes; no ASGI application is involved.
2. ``data_received`` feeds the sans-IO codec (``baat.proto.WebSocketCodec``); each whole
   binary message goes to ``Session.receive``, which handles an ``Ack``, a ``Ping`` and a
   ``Send`` decidable from memory on the spot (``Router.try_accept_send``). What needs
   storage comes back as a coroutine: one task finishes it, and the messages behind it wait
   in arrival order with reading paused.
3. What the session pushes is framed and gathered per connection; at the end of the loop
   turn ``Hub.flush`` writes each connection's frames in one write. The transport's
   ``pause_writing``/``resume_writing`` is the back-pressure: the router awaits
   ``wait_writable`` while draining a queue, and a connection with more than
   ``max_write_buffer`` bytes unwritten is closed as too slow.
4. Fairness (``server/fairness.py``): at most ``MESSAGES_PER_TURN`` messages of one
   connection are handled per loop turn; the rest wait in its backlog, reading paused,
   and the hub's ring serves backlogs round-robin. A sender over its share of outstanding
   envelopes is held (reading paused) until the router settles enough of them.
5. One timer for all connections (``Hub.sweep``) enforces the authentication deadline and
   pings silent authenticated connections, so an idle connection owns no task, no timer
   handle and no buffer: a few slotted objects (docs/PERFORMANCE.md, "Idle memory").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from baat.proto import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CloseEvent,
    ErrorCode,
    HandshakeError,
    Message,
    PingEvent,
    WebSocketCodec,
    WebSocketError,
    accept_response,
    parse_handshake,
)
from baat.server.fairness import RoundRobin
from baat.server.session import Session
from baat.server.transport.guard import ConnectionGuard, TransportSettings

if TYPE_CHECKING:
    from baat.server.state import ServerState

log = logging.getLogger("baat.transport")

WS_PATH = "/v1/ws"
CLOSE_LINGER_S = 2.0
# Frames gathered for one write at most (``WebSocketProtocol.flush``).
FLUSH_BYTES = 65536
SWEEP_S = 1.0


class Hub:
    """What all WebSocket connections of one server share: settings, counts, one timer."""

    def __init__(
        self,
        settings: TransportSettings,
        guard: ConnectionGuard,
        state: Callable[[], ServerState | None],
        max_message: int,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.state = state
        self.max_message = max_message
        self.pending_auth: dict[WebSocketProtocol, float] = {}
        self.live: set[WebSocketProtocol] = set()
        # uvicorn's set of open connections (for its graceful shutdown), once known.
        self.connections: set[Any] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._last_ping_sweep = 0.0
        # Connections with more messages read than one turn's quantum (item 1 of fairness).
        self.ring = RoundRobin()
        # Connections with frames written this turn, and the one callback that sends them.
        self._dirty: list[WebSocketProtocol] = []
        self._flush_handle: asyncio.Handle | None = None

    def dirty(self, conn: WebSocketProtocol) -> None:
        """``conn`` has frames to send: send them once this turn's callbacks are done."""
        self._dirty.append(conn)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send what each connection gathered this turn, one write each.

        Why: on loopback and on a LAN the write system call, not Python, is the largest
        cost of a small frame (docs/PERFORMANCE.md); a receiver that gets several
        ``Deliver`` frames, or a sender several ``SendResult`` frames, in one turn gets them
        in one segment. A connection sent one frame a turn (a conversation, one message in
        flight) is not held back: its frame goes out at once, so its reader, on another
        core, works on it while this turn goes on (``WebSocketProtocol._write`` chooses per
        connection from its last turn). ``call_soon`` runs this after the socket callbacks
        already due, so no frame waits for more than the rest of its own turn.
        """
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    def watch(self, conn: WebSocketProtocol, now: float) -> None:
        self.pending_auth[conn] = now + self.settings.auth_timeout
        self.live.add(conn)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_S, self.sweep)

    def forget(self, conn: WebSocketProtocol) -> None:
        self.pending_auth.pop(conn, None)
        self.live.discard(conn)

    def sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = [c for c, deadline in self.pending_auth.items() if deadline <= now]
        for conn in expired:
            del self.pending_auth[conn]
            conn.auth_timed_out()
        interval = self.settings.ping_interval
        if interval > 0 and now - self._last_ping_sweep >= min(interval / 4, 5.0):
            self._last_ping_sweep = now
            for conn in list(self.live):
                conn.check_alive(now, interval)
        self._timer = loop.call_later(SWEEP_S, self.sweep) if self.live else None


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection; the session's ``Link``."""

    __slots__ = (
        "_codec",
        "_drive",
        "_gather",
        "_held",
        "_hub",
        "_out",
        "_out_bytes",
        "_pending",
        "_pinged",
        "_read_paused",
        "_ticket",
        "_writable",
        "_write_waiter",
        "address",
        "closing",
        "last_seen",
        "session",
        "transport",
    )

    def __init__(self, hub: Hub, address: str) -> None:
        self._hub = hub
        self.address = address
        self._ticket = True  # counted by the guard until connection_lost
        self.transport: asyncio.Transport | None = None
        self._codec: WebSocketCodec | None = None
        self.session: Session | None = None
        self._pending: deque[Message] | None = None  # messages behind a waiting handler
        self._drive: asyncio.Task[None] | None = None
        self._writable = True
        self._write_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._held = False  # over its share of outstanding envelopes
        self._pinged = False
        # None: nothing written this loop turn. Else the frames gathered this turn, sent in
        # one write when the turn ends (Hub.flush).
        self._out: list[bytes] | None = None
        self._out_bytes = 0
        # Whether this turn's frames all wait for the turn's end (several a turn lately).
        self._gather = False
        self.closing = False
        self.last_seen = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        codec = self._codec
        if codec is None:
            self._handshake(data)
            return
        self.last_seen = asyncio.get_running_loop().time()
        self._pinged = False
        try:
            events = codec.receive(data)
        except WebSocketError as exc:
            log.info("websocket error from %s: %s", self._who(), exc.message)
            self._close_now(exc.close_code, exc.message)
            return
        budget = self._hub.ring.quantum
        for event in events:
            if isinstance(event, Message):
                if self._pending is not None:
                    self._pending.append(event)
                    self._pause_reading()
                elif budget <= 0 or self._held:
                    # This turn's quantum is spent (or the sender is over its share): the
                    # rest waits for the ring.
                    self._pending = deque((event,))
                    self._pause_reading()
                    self._hub.ring.defer(self)
                else:
                    budget -= 1
                    self._dispatch(event)
            elif isinstance(event, PingEvent):
                self._write(codec.pong(event.payload))
            elif isinstance(event, CloseEvent):
                self._on_close(event)
                return

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._hub.forget(self)
        self._hub.connections.discard(self)
        if self._ticket:
            self._ticket = False
            self._hub.guard.release(self.address)
            if self.session is not None and self.session.conn.account_id is not None:
                self._hub.guard.authenticated -= 1
        if self.session is not None:
            self.session.closed()
        self._release_writers()
        self._pending = None
        self._out = None

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._release_writers()

    # -- uvicorn's graceful shutdown ------------------------------------------------------

    def shutdown(self) -> None:
        self.close(CLOSE_RESTART)

    # -- the session's Link ---------------------------------------------------------------

    @property
    def peer(self) -> str:
        return self.address

    def write_message(self, data: bytes) -> None:
        if self.closing or self._codec is None:
            return
        self._write(self._codec.binary(data))

    async def wait_writable(self) -> None:
        if self._writable or self.closing:
            return
        if self._write_waiter is None:
            self._write_waiter = asyncio.get_running_loop().create_future()
        await self._write_waiter

    def close(self, code: int) -> None:
        """Send a Close frame; the socket closes when the peer answers or after a linger."""
        if self.closing or self.transport is None or self._codec is None:
            return
        self.closing = True
        self._hub.forget(self)
        self._write_gathered()
        self.transport.write(self._codec.close(code))
        asyncio.get_running_loop().call_later(CLOSE_LINGER_S, self.transport.close)

    def hold_reading(self) -> None:
        self._held = True
        self._pause_reading()

    def release_reading(self) -> None:
        self._held = False
        if self._pending and self._drive is None:
            self._hub.ring.defer(self)  # what it had read waits no longer
        else:
            self._maybe_resume_reading()

    def take_turn(self, quantum: int) -> bool:
        """The ring's call: handle up to ``quantum`` messages of the backlog."""
        if self._drive is not None or self.closing or self._held:
            # A handler task holds the backlog and resumes it when done; a held sender's
            # backlog waits for ``release_reading``.
            return False
        self._drain(quantum)
        return self._pending is not None and self._drive is None and not self.closing

    def authenticated(self) -> None:
        self._hub.pending_auth.pop(self, None)
        if self._ticket:
            self._hub.guard.authenticated += 1

    # -- timers (called by the hub's sweep) -----------------------------------------------

    def auth_timed_out(self) -> None:
        if self.session is not None and not self.closing:
            self.session.refuse(
                ErrorCode.AUTH_TIMEOUT,
                f"no successful Authenticate within {self._hub.settings.auth_timeout:g} s",
            )

    def check_alive(self, now: float, interval: float) -> None:
        if self.closing or self._codec is None:
            return
        silent = now - self.last_seen
        if silent >= 2 * interval and self._pinged:
            log.debug("%s did not answer a ping; closing", self._who())
            self._close_now(CLOSE_GOING_AWAY, "no answer to ping")
        elif silent >= interval and not self._pinged:
            self._pinged = True
            self._write(self._codec.ping(b"baat"))

    # -- internals ------------------------------------------------------------------------

    def _handshake(self, request: bytes) -> None:
        transport = self.transport
        assert transport is not None
        hub = self._hub
        state = hub.state()
        try:
            shake = parse_handshake(request)
            if shake.path != WS_PATH:
                raise HandshakeError(404, f"no WebSocket at {shake.path}")
            if state is None:
                raise HandshakeError(503, "server is starting")
        except HandshakeError as exc:
            log.info("refused WebSocket upgrade from %s: %s", self.address, exc.message)
            transport.write(exc.response())
            transport.close()
            return
        transport.write(accept_response(shake.key))
        self._codec = WebSocketCodec(hub.max_message)
        self.last_seen = asyncio.get_running_loop().time()
        self.session = Session(self, state)
        hub.watch(self, self.last_seen)
        self.session.start()

    def _dispatch(self, message: Message) -> None:
        session = self.session
        assert session is not None
        if message.text:
            session.refuse(ErrorCode.MALFORMED_FRAME, "text messages are not part of this protocol")
            return
        coro, eager = session.receive(message.data)
        if coro is None:
            return
        if not eager:
            # It reads storage, whose drivers need a current task (asyncio.timeout).
            self._pending = deque()
            self._drive = asyncio.get_running_loop().create_task(coro)
            self._drive.add_done_callback(self._handler_done)
            return
        self._step(coro)

    def _step(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` until it first waits; only then give it a task (see step 2)."""
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except Exception:  # a bug in a handler, never the client's input
            log.exception("handler of %s failed", self._who())
            self._close_now(CLOSE_INTERNAL, "internal error")
            return
        self._pending = deque()
        self._drive = asyncio.get_running_loop().create_task(_finish(coro, yielded))
        self._drive.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._drive = None
        if not task.cancelled() and task.exception() is not None:
            log.error("handler of %s failed", self._who(), exc_info=task.exception())
            self._close_now(CLOSE_INTERNAL, "internal error")
            return
        if self._drain(self._hub.ring.quantum):
            self._hub.ring.defer(self)

    def _drain(self, quantum: int) -> bool:
        """Dispatch up to ``quantum`` messages of the backlog, in order; True if some are
        left for the ring (none are while a handler task waits: it resumes the backlog)."""
        pending = self._pending
        while pending and not self.closing:
            if self._held:
                return False  # over its share: release_reading puts it back in the ring
            if quantum <= 0:
                return True
            quantum -= 1
            self._pending = None
            self._dispatch(pending.popleft())
            if self._pending is not None:  # waiting again: the rest stays behind it
                self._pending.extend(pending)
                return False
            self._pending = pending
        self._pending = None
        self._maybe_resume_reading()
        return False

    def _maybe_resume_reading(self) -> None:
        if (
            self._read_paused
            and not self._held
            and self._pending is None
            and self.transport is not None
        ):
            self._read_paused = False
            self.transport.resume_reading()

    def _on_close(self, event: CloseEvent) -> None:
        assert self.transport is not None and self._codec is not None
        if not self.closing:
            # Echo the peer's code (RFC 6455 section 5.5.1), then close the TCP connection.
            self.closing = True
            self._hub.forget(self)
            code = event.code if event.code != 1005 else CLOSE_NORMAL
            self._write_gathered()
            self.transport.write(self._codec.close(code))
        self.transport.close()

    def _close_now(self, code: int, reason: str) -> None:
        if self.transport is None:
            return
        if self._codec is not None and not self.closing:
            self._write_gathered()
            self.transport.write(self._codec.close(code, reason))
        self.closing = True
        self._hub.forget(self)
        self.transport.close()

    def _write(self, data: bytes) -> None:
        out = self._out
        if out is None:
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            self._hub.dirty(self)
            if self._gather:
                self._out = [data]
                self._out_bytes = len(data)
                return
            # One frame a turn lately (a conversation): it goes out at once, and its reader,
            # on another core, works on it while this loop finishes the turn.
            transport.write(data)
            self._out = []
            self._out_bytes = 0
            self._check_buffer(transport)
            return
        out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= FLUSH_BYTES:
            self._out = []  # a long queue drain does not gather in memory
            self._out_bytes = 0
            self._send_gathered(out)

    def flush(self) -> None:
        """End of the turn: send what was gathered (see ``Hub.flush``), and choose how the
        next turn writes: gathered if this one had more than one frame, else at once."""
        out = self._out
        if out is None:
            return
        self._out = None
        self._gather = len(out) + (0 if self._gather else 1) > 1
        if out:
            self._send_gathered(out)

    def _send_gathered(self, out: list[bytes]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        self._check_buffer(transport)

    def _write_gathered(self) -> None:
        """Before a Close frame: what was gathered goes first, with no buffer check (the
        connection is closing anyway, and the check would close it again)."""
        out, self._out = self._out, None
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _check_buffer(self, transport: asyncio.Transport) -> None:
        if not self._writable and transport.get_write_buffer_size() > (
            self._hub.settings.max_write_buffer
        ):
            log.info("%s reads too slowly; closing", self._who())
            self._close_now(CLOSE_POLICY, "too slow to read")

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def _release_writers(self) -> None:
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _who(self) -> str:
        if self.session is not None and self.session.key[0]:
            return "{}/{}".format(*self.session.key)
        return self.address


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a coroutine that ``_step`` started, from the future it first waited on."""
    await _Resume(coro, yielded)


class _Resume:
    """``yield from`` a coroutine that is already running: the task sees the future the
    coroutine yielded exactly as if the coroutine had been the task's from the start (its
    ``_asyncio_future_blocking`` flag, cancellation and results all pass straight through)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coro, yielded = self.coro, self.first
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # thrown in by the task (cancellation)
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration:
                    return
