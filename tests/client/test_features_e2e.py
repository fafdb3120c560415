"""Replies, reactions, edits, deletes, receipts, timers through a real server, applied on
every device of both accounts (docs/GROUPS.md §5)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from baat.client.core import Content
from baat.client.features import READ_RECEIPTS, FeatureError
from baat.client.sdk import Client
from client.test_multidevice_support import account, link, until
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def body(client: Client, message_id: str) -> dict[str, object]:
    with client.store.transaction() as tx:
        found = client.store.find_messages(tx, message_id)
    return found[0].body if found else {}


def status(client: Client, message_id: str) -> str:
    with client.store.transaction() as tx:
        found = client.store.find_messages(tx, message_id)
    return found[0].status if found else ""


async def test_edits_deletes_reactions_replies_receipts_everywhere(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    laptop = await link(tmp_path, alice, "alice-laptop")
    tablet = await link(tmp_path, bob, "bob-tablet")
    everyone = [alice, bob, laptop, tablet]
    try:
        mid = await alice.send_text("bob", "helo")
        await until(everyone, lambda: all(body(c, mid).get("text") == "helo" for c in everyone))
        await alice.features.edit(mid, "hello")
        await until(everyone, lambda: all(body(c, mid).get("text") == "hello" for c in everyone))
        assert all(body(c, mid).get("edited") for c in everyone)
        # Only the author edits; a reaction is anyone's, and reaches every device.
        with pytest.raises(FeatureError):
            await bob.features.edit(mid, "not mine")
        await tablet.features.react(mid, "👍")
        await until(
            everyone, lambda: all(body(c, mid).get("reactions") == {"bob": "👍"} for c in everyone)
        )
        reply = await bob.features.reply(mid, "hi back")
        await until(everyone, lambda: all(body(c, reply).get("reply_to") == mid for c in everyone))
        # Delivery, then read receipts; read receipts can be turned off.
        await until(everyone, lambda: status(alice, mid) in ("delivered", "read"))
        bob.features.mark_read(bob.store.messages(status="new"))
        bob.features.queue_receipts()
        await bob.flush_outbox()
        await until(
            everyone, lambda: status(alice, mid) == "read" and status(laptop, mid) == "read"
        )
        bob.features.set_enabled(READ_RECEIPTS, False)
        quiet = await alice.send_text("bob", "unread for you")
        await until(everyone, lambda: status(alice, quiet) == "delivered")
        bob.features.mark_read(bob.store.messages(status="new"))
        bob.features.queue_receipts()
        await bob.flush_outbox()
        await until(everyone, lambda: not bob.store.outbox())
        await alice.receive()
        assert status(alice, quiet) == "delivered"
        # Delete for everyone: the text is gone on every device.
        await alice.features.delete(mid)
        await until(everyone, lambda: all(body(c, mid).get("deleted") for c in everyone))
        assert all(body(c, mid).get("text") == "" for c in everyone)
    finally:
        for c in everyone:
            await c.close()


async def test_time_windows_are_enforced_by_receivers(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    try:
        start = alice.clock()
        mid = await alice.send_text("bob", "original")
        await until([alice, bob], lambda: body(bob, mid).get("text") == "original")
        alice.clock = lambda: start + 16 * 60 * 1000
        with pytest.raises(FeatureError) as late:
            await alice.features.edit(mid, "too late")
        assert late.value.code == "too_late"
        # A client that skips its own check is still refused by the receiver.
        forged = Content(v=1, type="edit", sender_name="alice", sent_at=0, ref=mid, text="late")
        await alice.features.post(bob.info.account_id, forged, {})
        await until([alice, bob], lambda: not alice.store.outbox())
        await bob.receive()
        assert body(bob, mid).get("text") == "original"
        # Unknown content types are kept as "unsupported", not dropped.
        odd = Content(v=1, type="poll", sender_name="alice", sent_at=0, text="?")
        poll = await alice.features.post(bob.info.account_id, odd, {})
        await until([alice, bob], lambda: body(bob, poll).get("unsupported") == "poll")
        assert msgspec.msgpack.encode(odd)  # still plain Content on the wire
    finally:
        await alice.close()
        await bob.close()


async def test_disappearing_messages_expire_on_every_device(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    tablet = await link(tmp_path, bob, "bob-tablet")
    everyone = [alice, bob, tablet]
    try:
        bob_chat, _ = await alice.resolve("bob")
        await alice.features.set_timer(bob_chat, 60, {"peer": "bob"})
        chat = alice.info.account_id
        await until(everyone, lambda: bob.features.timer(chat) == 60 == tablet.features.timer(chat))
        mid = await alice.send_text("bob", "this will vanish")
        keep_until = alice.clock()
        await until(everyone, lambda: body(bob, mid) != {} and body(tablet, mid) != {})
        # Each device keeps the timer with its own (here injected) clock.
        for c in everyone:
            c.clock = lambda: keep_until + 30_000
            assert c.features.expire() == 0
        for c in everyone:
            c.clock = lambda: keep_until + 61_000
            assert c.features.expire() == 1
            assert body(c, mid) == {}
        # Off again: new messages stay.
        await tablet.features.set_timer(alice.info.account_id, 0, {"peer": "alice"})
        await until(everyone, lambda: alice.features.timer(bob.info.account_id) == 0)
        kept = await alice.send_text("bob", "this stays")
        await until(everyone, lambda: body(bob, kept) != {})
        for c in everyone:
            c.clock = lambda: keep_until + 10**9
            assert c.features.expire() == 0
    finally:
        for c in everyone:
            await c.close()


async def test_typing_that_waited_on_the_server_is_not_shown(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    seen: list[tuple[str, str]] = []
    bob.features.typing_listeners.append(lambda chat, who, kind: seen.append((who, kind)))
    try:
        await alice.send_text("bob", "hi")
        await until([alice, bob], lambda: bool(bob.store.messages()))
        # Live: shown.
        assert await alice.features.typing(bob.info.account_id)
        await until([alice, bob], lambda: seen == [("alice", "started")])
        # Bob's clock runs 40 s ahead: the next indicator arrives "late" and is dropped,
        # while a message sent with it is stored as usual.
        real = bob.clock
        bob.clock = lambda: real() + 40_000
        assert await alice.features.typing(bob.info.account_id, started=False)
        later = await alice.send_text("bob", "still there?")
        await until([alice, bob], lambda: status(bob, later) != "")
        assert seen == [("alice", "started")]
    finally:
        await alice.close()
        await bob.close()


async def test_group_message_is_read_only_when_every_member_read_it(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await account(tmp_path, server.url, "alice")
    bob = await account(tmp_path, server.url, "bob")
    carol = await account(tmp_path, server.url, "carol")
    everyone = [alice, bob, carol]
    try:
        chat = await alice.groups.create("Chai", ["bob", "carol"])
        mid = await alice.groups.send_text(chat, "Chai at five?")
        recipients = body(alice, mid).get("recipients")
        assert isinstance(recipients, list)
        assert set(recipients) == {bob.info.account_id, carol.info.account_id}
        await until(everyone, lambda: all(body(c, mid).get("text") for c in (bob, carol)))
        for c in (bob, carol):
            c.features.queue_receipts()
            await c.flush_outbox()
        await until(everyone, lambda: status(alice, mid) == "delivered")

        # Bob reads it; Carol has not: the ticks stay "delivered", the log says who read.
        bob.features.mark_read(bob.store.messages(chat=chat, status="new"))
        bob.features.queue_receipts()
        await bob.flush_outbox()
        await until(
            everyone,
            lambda: body(alice, mid).get("receipts") == {"bob": "read", "carol": "delivered"},
        )
        assert status(alice, mid) == "delivered"
        carol.features.mark_read(carol.store.messages(chat=chat, status="new"))
        carol.features.queue_receipts()
        await carol.flush_outbox()
        await until(everyone, lambda: status(alice, mid) == "read")

        with alice.store.transaction() as tx:
            mine = alice.store.find_messages(tx, mid)[0]
        details = alice.features.receipt_details(mine)
        assert [d["name"] for d in details] == ["bob", "carol"]
        for d in details:
            assert isinstance(d["delivered_at"], int) and isinstance(d["read_at"], int)
            assert d["delivered_at"] <= d["read_at"]
    finally:
        for c in everyone:
            await c.close()
