"""Sealed sender end to end (issue 16): SDK clients and a real ``baat serve`` on SQLite and
PostgreSQL. After two accounts exchange messages, receipts and an attachment while the
recipient is offline, nothing on the server names a sender next to a recipient."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baat.client.sdk import Client, Incident
from baat.crypto.sealed import (
    access_key,
    issue_sender_certificate,
    issue_server_certificate,
    seal,
)
from baat.proto import SealedEnvelope, SealedSend
from baat.server.sealed import CertificateKeys, load_root
from client.test_multidevice_support import account, link, texts, until
from support.sealed_scan import files_naming, linking_rows, log_lines_linking, server_db
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


def status(client: Client, message_id: str) -> str:
    return next(m.status for m in client.store.messages() if m.message_id == message_id)


async def introduce(alice: Client, bob: Client) -> None:
    """One message each way: each learns the other's profile key end to end."""
    await alice.send_text("bob", "hi bob")
    await until([alice, bob], lambda: "hi bob" in texts(bob))
    await bob.send_text("alice", "hi alice")
    await until([alice, bob], lambda: "hi alice" in texts(alice))
    assert alice.sealed.contact_key(bob.info.account_id) == bob.sealed.own_key()
    assert bob.sealed.contact_key(alice.info.account_id) == alice.sealed.own_key()


async def test_offline_exchange_leaves_no_sender_on_the_server(
    tmp_path: Path, sealed_server: ServerProcess, db_url: str
) -> None:
    url = sealed_server.url
    alice = await account(tmp_path, url, "alice")
    bob = await account(tmp_path, url, "bob")
    try:
        await introduce(alice, bob)
        before = alice.sealed.stats()["sealed"]
        # Bob offline: a message and an attachment wait for him, sealed.
        await bob.disconnect()
        photo = tmp_path / "photo.bin"
        photo.write_bytes(b"\x89PNG" + bytes(50_000))
        mid = await alice.send_text("bob", "while you were away")
        fid = await alice.send_file("bob", photo, caption="a file")
        assert alice.sealed.stats()["sealed"] > before
        assert status(alice, mid) == "sent"
        db = server_db(sealed_server.data_dir, None if "sqlite" in db_url else db_url)
        a_id, b_id = alice.info.account_id, bob.info.account_id
        assert await linking_rows(db, [a_id], b_id) == []
        # Alice offline in turn: Bob's delivery and read receipts wait for her, sealed.
        await alice.disconnect()
        await bob.connect()
        await until([bob], lambda: "while you were away" in texts(bob))
        await until([bob], lambda: any(m.body.get("attachment") for m in bob.store.messages()))
        bob.features.mark_read(bob.store.messages(status="new"))
        bob.features.queue_receipts()
        await bob.flush_outbox()
        await bob.receive()
        assert await linking_rows(db, [b_id], a_id) == []
        assert await linking_rows(db, [a_id], b_id) == []
        await alice.connect()
        await until([alice, bob], lambda: status(alice, mid) == "read")
        await until([alice, bob], lambda: status(alice, fid) in ("delivered", "read"))
        assert bob.sealed.stats()["sealed"] > 0
        # Nothing in the files either: blobs, keys and the log.
        await bob.disconnect()
        await alice.disconnect()
        await asyncio.to_thread(sealed_server.stop)
        for sender, recipient in ((a_id, b_id), (b_id, a_id)):
            assert await linking_rows(db, [sender], recipient) == []
            assert log_lines_linking(sealed_server.log(), sender, recipient) == []
        # Blob files hold ciphertext only (SQLite keeps them under the data directory).
        assert files_naming(sealed_server.data_dir / "blobs", [a_id, b_id]) == []
    finally:
        await alice.close()
        await bob.close()


async def test_no_access_key_falls_back_and_rotation_locks_out_the_old_key(
    tmp_path: Path, sealed_server: ServerProcess
) -> None:
    url = sealed_server.url
    alice = await account(tmp_path, url, "alice")
    bob = await account(tmp_path, url, "bob")
    try:
        # Alice has no key of Bob's yet: her first message goes authenticated.
        await alice.send_text("bob", "first")
        stats = alice.sealed.stats()
        assert stats["fallback"] >= 1 and stats["sealed"] == 0
        assert stats["last_fallback"]["reason"] == "no profile key"
        await until([alice, bob], lambda: "first" in texts(bob))
        await bob.send_text("alice", "reply")
        await until([alice, bob], lambda: "reply" in texts(alice))
        # Bob rotates his profile key; Alice still holds the old one.
        old = bob.sealed.own_key()
        bob.sealed.rotate_profile_key()
        await bob.sealed.register_access()
        assert alice.sealed.contact_key(bob.info.account_id) == old
        sent = alice.sealed.stats()
        mid = await alice.send_text("bob", "with the old key")
        after = alice.sealed.stats()
        assert after["fallback"] == sent["fallback"] + 1
        assert after["last_fallback"]["reason"] == "sealed_access_denied"
        assert status(alice, mid) == "sent"  # the fallback delivered it
        await until([alice, bob], lambda: "with the old key" in texts(bob))
        # Bob's next message carries the new key; Alice's sends are sealed again.
        await bob.send_text("alice", "new key inside")
        await until([alice, bob], lambda: "new key inside" in texts(alice))
        assert alice.sealed.contact_key(bob.info.account_id) == bob.sealed.own_key() != old
        sealed_before = alice.sealed.stats()["sealed"]
        await alice.send_text("bob", "sealed again")
        assert alice.sealed.stats()["sealed"] == sealed_before + 1
        await until([alice, bob], lambda: "sealed again" in texts(bob))
        assert alice.sealed.status()["access_key_registered"] is True
        assert bob.sealed.status()["sealed_from_anyone"] is False
    finally:
        await alice.close()
        await bob.close()


async def test_forged_and_expired_certificates_are_incidents(
    tmp_path: Path, sealed_server: ServerProcess, db_url: str
) -> None:
    url = sealed_server.url
    alice = await account(tmp_path, url, "alice")
    bob = await account(tmp_path, url, "bob")
    try:
        await introduce(alice, bob)
        now = int(time.time() * 1000)
        bob_dh = alice.sealed._device_keys(bob.info.account_id, [1])
        assert bob_dh is not None
        ident = alice.identity
        # A forger's own root and server key, naming Alice.
        fake_root, fake_server = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        server_cert = issue_server_certificate(
            fake_root, 1, fake_server.public_key().public_bytes_raw(), now + 10**9
        )
        forged = issue_sender_certificate(
            fake_server,
            server_cert,
            alice.info.account_id,
            1,
            ident.identity_key,
            ident.identity_dh_key,
            now + 10**8,
        )
        # The real server's chain, but a certificate that expired yesterday.
        keys = CertificateKeys(load_root(sealed_server.data_dir))
        expired, expires = keys.issue(
            alice.info.account_id,
            1,
            ident.identity_key,
            ident.identity_dh_key,
            now - 2 * 86_400_000,
        )
        assert expires < now
        own = bob.sealed.own_key()
        assert own is not None
        incidents: list[Incident] = []
        bob.incident_listeners.append(incidents.append)
        t = await alice.sealed._anonymous()
        for n, cert in enumerate([forged, expired]):
            body = seal(bob_dh[1], ident.dh_pair, cert, b"\x92\xa1x\xc4\x00")
            frame = SealedSend(
                f"bad-{n}", bob.info.account_id, access_key(own), [SealedEnvelope(1, body)]
            )
            await t.send(frame)
        await until([alice, bob], lambda: len(incidents) >= 2)
        kinds = [(i.kind, i.account_id) for i in incidents]
        assert kinds == [("sealed_sender_invalid", alice.info.account_id)] * 2
        assert "pinned root" in incidents[0].detail
        assert "expired" in incidents[1].detail
        # Refused and acknowledged: nothing reached the chat, nothing waits on the server.
        assert texts(bob) == ["hi bob", "hi alice"]
        db = server_db(sealed_server.data_dir, None if "sqlite" in db_url else db_url)
        assert await linking_rows(db, [alice.info.account_id], bob.info.account_id) == []
    finally:
        await alice.close()
        await bob.close()


async def test_group_of_five_with_two_devices_each_is_sealed(
    tmp_path: Path, server: ServerProcess
) -> None:
    names = ("ana", "ben", "cai", "dev", "eli")
    primaries = [await account(tmp_path, server.url, n) for n in names]
    seconds = [await link(tmp_path, p, f"{n}2") for p, n in zip(primaries, names, strict=True)]
    everyone = primaries + seconds
    ana = primaries[0]
    try:
        chat = await ana.groups.create("team", list(names[1:]))
        await until(everyone, lambda: all(len(c.groups.all()) == 1 for c in everyone), 60)
        # Each member writes once: the others learn its profile key end to end, and each
        # linked device learns its account's key from its first device.
        for c in primaries:
            await c.groups.send_text("team", f"hello from {c.info.username}")
        wanted = {f"hello from {n}" for n in names}
        await until(everyone, lambda: all(wanted <= set(texts(c, chat)) for c in everyone), 60)
        for c in everyone:
            others = [
                p.info.account_id for p in primaries if p.info.account_id != c.info.account_id
            ]
            assert all(c.sealed.contact_key(a) is not None for a in others), c.info.username
        assert all(
            s.sealed.own_key() == p.sealed.own_key()
            for p, s in zip(primaries, seconds, strict=True)
        )
        # Now every member device's group message is sealed to the four other accounts
        # (two devices each); copies to its own other device go authenticated.
        for c in (ana, seconds[2]):
            before = c.sealed.stats()
            await c.groups.send_text("team", f"sealed from {c.info.username}/{c.info.device_id}")
            after = c.sealed.stats()
            assert after["sealed"] - before["sealed"] >= 8  # with any sender-key update
            assert after["fallback"] == before["fallback"]
        wanted = {"sealed from ana/1", "sealed from cai/2"}
        await until(everyone, lambda: all(wanted <= set(texts(c, chat)) for c in everyone), 60)
        db = server_db(server.data_dir, None)
        for a in primaries:
            for b in primaries:
                if a is not b:
                    assert await linking_rows(db, [a.info.account_id], b.info.account_id) == []
    finally:
        for c in everyone:
            await c.close()
