"""A graceful server shutdown (SIGTERM, close code 1012) while a client sends: every
failed send surfaces as ``NotConnected``, the message stays in the outbox, nothing is left
unretrieved, and after the restart everything arrives once."""

from __future__ import annotations

import asyncio
import gc
import signal
from pathlib import Path
from typing import Any

import pytest

from baat.client import schema as s
from baat.client.core import NotConnected
from baat.client.sdk import Client
from client.test_multidevice_support import PASS, texts, until
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def test_sigterm_during_sends_surfaces_as_not_connected(
    tmp_path: Path, server: ServerProcess
) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    alice = await Client.register(tmp_path / "alice", PASS, server.url, "alice")
    bob = await Client.register(tmp_path / "bob", PASS, server.url, "bob")
    await bob.connect()  # publishes its device list; then offline: the server queues
    await bob.disconnect()
    await alice.connect()
    sent: list[str] = []  # send_text returned: confirmed by the server
    held: list[str] = []  # send_text raised NotConnected: kept in the outbox
    other: list[BaseException] = []
    try:
        assert server.proc is not None
        proc = server.proc
        counter = iter(range(10_000))
        stop = asyncio.Event()

        async def sender() -> None:
            # Several senders at once, so that sends are in flight when the server stops.
            while len(held) < 8:
                text = f"m{next(counter):04d}"
                try:
                    await alice.send_text("bob", text)
                    sent.append(text)
                except NotConnected:
                    held.append(text)
                except Exception as exc:
                    other.append(exc)
                    return
                if len(sent) >= 20:
                    stop.set()

        async def terminate() -> None:
            await stop.wait()
            proc.send_signal(signal.SIGTERM)

        await asyncio.wait_for(asyncio.gather(terminate(), *(sender() for _ in range(4))), 120)
        assert other == []
        assert alice.incidents == []
        assert len(held) >= 8
        # A send that raised is still in the outbox, unless another sender's flush got it
        # confirmed before the connection closed; nothing unconfirmed left the outbox.
        queued = {_mid for _mid, _to, _p in alice.store.outbox()}
        chat = alice.store.messages(chat=bob.info.account_id)
        by_text = {str(m.body.get("text")): m for m in chat}
        for text in held:
            m = by_text[text]
            assert m.message_id in queued or m.status == "sent", (text, m.status)
        for m in chat:
            assert m.status == "sent" or m.message_id in queued, (m.body, m.status)
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        server.proc = None
        gc.collect()
        await asyncio.sleep(0.1)
        assert unhandled == []

        # Back up: the outbox goes out on the next connection, each message once.
        server.start()
        await alice.connect()
        await alice.flush_outbox()
        assert alice.store.outbox() == [], (alice.incidents, held, sent)
        await bob.connect()
        expected = sent + held
        await until([alice, bob], lambda: len(texts(bob, alice.info.account_id)) >= len(expected))
        assert texts(bob, alice.info.account_id) == expected
    finally:
        await alice.close()
        await bob.close()
        gc.collect()
        loop.set_exception_handler(None)
    assert unhandled == []


async def test_sigterm_with_sends_and_bundle_fetches_on_the_wire(
    tmp_path: Path, server: ServerProcess
) -> None:
    """The server is frozen while the first message to each of several new contacts is
    written (a bundle fetch, then a send, per contact), then told to stop: whatever was on
    the wire, each ``send_text`` returns or raises ``NotConnected``."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    alice = await Client.register(tmp_path / "alice", PASS, server.url, "alice")
    names = [f"bob{i}" for i in range(4)]
    bobs = []
    for name in names:
        bob = await Client.register(tmp_path / name, PASS, server.url, name)
        await bob.connect()
        await bob.disconnect()
        bobs.append(bob)
    await alice.connect()
    for name in names:  # contacts now: the sends below need the socket only
        await alice.send_text(name, f"first {name}")
    with alice.store.transaction() as tx:
        # As after a contact reinstalled: each next send first fetches a bundle.
        tx.execute(s.sessions.delete())
    assert server.proc is not None
    proc = server.proc
    outcomes: list[BaseException | str] = []
    try:
        proc.send_signal(signal.SIGSTOP)
        tasks = [asyncio.create_task(alice.send_text(n, f"hi {n}")) for n in names]
        await asyncio.sleep(0.3)  # the first bundle request is written and waits
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        for task in tasks:
            try:
                outcomes.append(await asyncio.wait_for(task, 60))
            except Exception as exc:
                outcomes.append(exc)
        assert [o for o in outcomes if not isinstance(o, str | NotConnected)] == []
        assert any(isinstance(o, NotConnected) for o in outcomes)
        assert proc.wait(30) in (0, -signal.SIGTERM)
        server.proc = None
        gc.collect()
        await asyncio.sleep(0.1)
        assert unhandled == []

        server.start()
        await alice.connect()
        await alice.flush_outbox()
        assert alice.store.outbox() == [] and alice.incidents == []
        for name, bob in zip(names, bobs, strict=True):
            await bob.connect()
            await until([alice, bob], lambda b=bob: len(texts(b)) >= 2)
            assert texts(bob) == [f"first {name}", f"hi {name}"]
    finally:
        for c in (alice, *bobs):
            await c.close()
        gc.collect()
        loop.set_exception_handler(None)
    assert unhandled == []
