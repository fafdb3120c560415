"""Groups through a real server: five accounts with two devices each, removal and sender
key rotation, sender key messages out of order (docs/GROUPS.md §4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from baat.client.group_messaging import is_group_message
from baat.client.sdk import Client
from baat.proto import Deliver
from client.test_multidevice_support import Recorder, account, link, texts, until
from support.server import ServerProcess

pytestmark = pytest.mark.e2e
NAMES = ("ana", "ben", "cai", "dev", "eli")


async def _team(tmp_path: Path, url: str) -> tuple[list[Client], list[Client]]:
    primaries = [await account(tmp_path, url, n) for n in NAMES]
    seconds = [await link(tmp_path, p, f"{n}2") for p, n in zip(primaries, NAMES, strict=True)]
    return primaries, seconds


def _deliver(envelope_content: bytes, sender: Client, message_id: str) -> Deliver:
    return Deliver(
        b"\x00" * 16,
        sender.info.account_id,
        sender.info.device_id,
        message_id,
        envelope_content,
        0,
    )


async def test_five_members_two_devices_each_and_removal(
    tmp_path: Path, server: ServerProcess
) -> None:
    primaries, seconds = await _team(tmp_path, server.url)
    everyone = primaries + seconds
    ana, ben, _cai, _dev, eli = primaries
    recorder = Recorder(ana)
    try:
        chat = await ana.groups.create("team", list(NAMES[1:]))
        await until(everyone, lambda: all(len(c.groups.all()) == 1 for c in everyone))
        for c in everyone:
            state = c.groups.find("team")[1]
            assert len(state.members) == 5 and state.admins == (ana.info.account_id,)
        # Every account's primary, and one second device, write to the group.
        for c in primaries:
            await c.groups.send_text("team", f"hello from {c.info.username}")
        await seconds[1].groups.send_text("team", "ben's other phone")
        wanted = {f"hello from {n}" for n in NAMES} | {"ben's other phone"}
        await until(everyone, lambda: all(wanted <= set(texts(c, chat)) for c in everyone))
        # The server got each group message once per member device, all the same bytes.
        group_sends = [e for _, e in recorder.sent if e and is_group_message(e[0].content)]
        assert len(group_sends[0]) == 9 and len({e.content for e in group_sends[0]}) == 1
        # A member is removed; what follows is under new sender keys it never gets.
        await ana.groups.remove("team", "eli")
        await until(everyone, lambda: not eli.groups.find("team")[1].is_member(eli.info.account_id))
        await until(
            everyone, lambda: all(len(c.groups.find("team")[1].members) == 4 for c in everyone)
        )
        await ana.groups.send_text("team", "after eli left")
        await ben.groups.send_text("team", "ben after eli left")
        after = {"after eli left", "ben after eli left"}
        remaining = [c for c in everyone if c.info.username != "eli"]
        await until(everyone, lambda: all(after <= set(texts(c, chat)) for c in remaining))
        for c in (eli, seconds[4]):
            assert not after & set(texts(c, chat))
        # Even given the ciphertext, eli's devices cannot read it: another sender key.
        last = [e for _, e in recorder.sent if e and is_group_message(e[0].content)][-1]
        assert {e.recipient_account for e in last} == {c.info.account_id for c in primaries[:4]}
        before = len(eli.incidents)
        assert eli._store_delivery(_deliver(last[0].content, ana, "stolen")) is None
        assert "rejected" in eli.incidents[before].detail
        assert "after eli left" not in texts(eli, chat)
    finally:
        for c in everyone:
            await c.close()


async def test_sender_key_messages_out_of_order(tmp_path: Path, server: ServerProcess) -> None:
    ana = await account(tmp_path, server.url, "ana")
    ben = await account(tmp_path, server.url, "ben")
    recorder = Recorder(ana)
    try:
        chat = await ana.groups.create("pair", ["ben"])
        await ana.groups.send_text("pair", "zero")
        await until([ana, ben], lambda: "zero" in texts(ben, chat))
        await ben.disconnect()  # the next three wait on the server; we replay them by hand
        for text in ("one", "two", "three"):
            await ana.groups.send_text("pair", text)
        sent = [(mid, e) for mid, e in recorder.sent if e and is_group_message(e[0].content)]
        got = []
        for mid, envelopes in reversed(sent[-3:]):
            stored = ben._store_delivery(_deliver(envelopes[0].content, ana, mid))
            assert stored is not None
            got.append(stored.body["text"])
        assert got == ["three", "two", "one"]  # skipped keys kept, then used (§1.4)
        assert texts(ben, chat)[-3:] == ["one", "two", "three"]  # shown in sending order
        # A replay of the same ciphertext is refused; the server's copies are duplicates.
        assert ben._store_delivery(_deliver(sent[-1][1][0].content, ana, "again")) is None
        await ben.connect()
        await ben.receive()
        shown = [m.body["text"] for m in ben.store.messages(chat) if not m.body.get("notice")]
        assert shown == ["zero", "one", "two", "three"]
    finally:
        await ana.close()
        await ben.close()


async def test_admin_rules_and_a_member_added_later(tmp_path: Path, server: ServerProcess) -> None:
    ana, ben, cai = [await account(tmp_path, server.url, n) for n in ("ana", "ben", "cai")]
    all3 = [ana, ben, cai]
    try:
        chat = await ana.groups.create("club", ["ben"])
        await ana.groups.send_text("club", "before cai")
        await until(all3, lambda: "before cai" in texts(ben, chat))
        from baat.client.groups import NotAdmin

        with pytest.raises(NotAdmin):
            await ben.groups.add("club", ["cai"])
        await ana.groups.add("club", ["cai"])
        await until(
            all3,
            lambda: len(cai.groups.all()) == 1 and len(ben.groups.find("club")[1].members) == 3,
        )
        await ben.groups.send_text("club", "welcome cai")
        await until(all3, lambda: "welcome cai" in texts(cai, chat))
        assert "before cai" not in texts(cai, chat)  # joined later: earlier messages stay unread
        await ana.groups.rename("club", "book club")
        await until(all3, lambda: cai.groups.find(chat)[1].name == "book club")
        await ben.groups.leave(chat)
        await until(all3, lambda: len(ana.groups.find(chat)[1].members) == 2)
        await cai.groups.send_text(chat, "ben is gone")
        await until(all3, lambda: "ben is gone" in texts(ana, chat))
        assert "ben is gone" not in texts(ben, chat)
        await asyncio.sleep(0)
    finally:
        for c in all3:
            await c.close()
