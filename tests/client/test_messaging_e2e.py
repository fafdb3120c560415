"""Two profiles talk through a real ``baat serve`` using the real ``baat`` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baat.client.sdk import Client
from support.cli import PASS, baat, lines, listen
from support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(tmp_path: Path, server: ServerProcess) -> tuple[Path, Path]:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    return alice, bob


def test_conversation_online_offline_and_across_restarts(
    pair: tuple[Path, Path], server: ServerProcess
) -> None:
    alice, bob = pair
    # Bob is offline (no process running): the message waits on the server.
    sent = lines(baat(alice, "send", "bob", "Namaste, Bob! 🙏", "--json"))[0]
    assert sent["status"] == "sent"
    server.restart()
    got = lines(baat(bob, "sync", "--json"))
    assert [(m["sender"], m["text"]) for m in got] == [("alice", "Namaste, Bob! 🙏")]
    assert set(got[0]) >= {"id", "chat", "sender", "text", "sent_at", "received_at"}
    # Nothing comes twice.
    assert lines(baat(bob, "sync", "--json")) == []
    # Bob listens while Alice sends: delivered live.
    listener = listen(bob, 6)
    try:
        import time

        time.sleep(2.5)
        baat(alice, "send", "bob", "are you there?")
        out, _ = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert [json.loads(x)["text"] for x in out.splitlines()] == ["are you there?"]
    baat(bob, "send", "alice", "yes!")
    assert [m["text"] for m in lines(baat(alice, "sync", "--json"))] == ["yes!"]
    history = lines(baat(alice, "history", "bob", "--json"))
    assert [m["text"] for m in history] == ["Namaste, Bob! 🙏", "are you there?", "yes!"]
    contacts = json.loads(baat(alice, "contacts", "--json").stdout)
    assert [c["username"] for c in contacts] == ["bob"]


def test_server_never_holds_plaintext(pair: tuple[Path, Path], server: ServerProcess) -> None:
    alice, bob = pair
    secret = "the launch code is 7351"
    baat(alice, "send", "bob", secret)
    server.stop()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data, path
            assert secret.encode("utf-16-le") not in data, path
    server.start()
    assert [m["text"] for m in lines(baat(bob, "sync", "--json"))] == [secret]
    # The local stores keep message text encrypted too.
    for profile in (alice, bob):
        for path in profile.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_safety_numbers_match_and_verify(pair: tuple[Path, Path]) -> None:
    alice, bob = pair
    baat(alice, "send", "bob", "hi")
    baat(bob, "sync")
    a = json.loads(baat(alice, "safety-number", "bob", "--json").stdout)["safety_number"]
    b = json.loads(baat(bob, "safety-number", "alice", "--json").stdout)["safety_number"]
    assert a == b and len(a.replace(" ", "")) == 60
    wrong = baat(alice, "verify", "bob", "1" * 60, check=False)
    assert wrong.returncode == 1 and "does not match" in wrong.stderr
    assert json.loads(baat(alice, "verify", "bob", a, "--json").stdout)["verified"] is True
    assert json.loads(baat(alice, "contacts", "--json").stdout)[0]["verified"] is True


def test_wrong_passphrase_and_unknown_user(pair: tuple[Path, Path]) -> None:
    alice, _ = pair
    env = {**os.environ, "BAAT_PASSPHRASE": "nope", "BAAT_PROFILE": str(alice)}
    proc = subprocess.run(
        [sys.executable, "-m", "baat", "contacts"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1 and "wrong passphrase" in proc.stderr
    proc = baat(alice, "send", "nobody", "hello?", check=False)
    assert proc.returncode == 1 and "no user named 'nobody'" in proc.stderr


def test_taken_name_and_unreachable_server(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    proc = baat(tmp_path / "x", "register", "alice", "--server", _url_of(pair), check=False)
    assert proc.returncode == 1 and "taken" in proc.stderr
    proc = baat(tmp_path / "y", "register", "zed", "--server", "http://127.0.0.1:1", check=False)
    assert proc.returncode == 1 and "cannot reach" in proc.stderr


def _url_of(pair: tuple[Path, Path]) -> str:
    return json.loads((pair[0] / "profile.json").read_text())["account"]["server_url"]


async def test_tampered_message_is_rejected_and_nothing_else_breaks(
    pair: tuple[Path, Path],
) -> None:
    alice_dir, bob_dir = pair
    baat(alice_dir, "send", "bob", "first")
    alice = Client.open(alice_dir, PASS)
    await alice.connect()
    bob_id = alice.store.contact_by_name("bob")
    assert bob_id is not None
    envelopes = await alice._encrypt_for(bob_id.account_id, b"\x00")
    from baat.proto import OutgoingEnvelope, Send, SendResult

    bad = bytearray(envelopes[0].content)
    bad[-5] ^= 0x40  # flip a bit inside the AEAD ciphertext
    assert alice.transport is not None
    results: list[SendResult] = []
    fut = asyncio.get_running_loop().create_future()
    alice._results["tampered"] = fut
    await alice.transport.send(
        Send("tampered", [OutgoingEnvelope(bob_id.account_id, 1, bytes(bad))])
    )
    results.append(await asyncio.wait_for(fut, 10))
    assert results[0].results[0].status == "stored"
    await alice.close()
    baat(alice_dir, "send", "bob", "second")
    proc = baat(bob_dir, "sync", "--json")
    assert [m["text"] for m in lines(proc)] == ["first", "second"]
    assert "tampered" in proc.stderr and "rejected" in proc.stderr


async def test_changed_identity_holds_messages_until_verified(pair: tuple[Path, Path]) -> None:
    alice_dir, bob_dir = pair
    baat(alice_dir, "send", "bob", "hello")
    baat(bob_dir, "sync")
    # Alice's record of Bob's identity no longer matches the key Bob uses, as after a
    # reinstall: the next message from Bob must be held, never silently trusted.
    alice = Client.open(alice_dir, PASS)
    bob = alice.store.contact_by_name("bob")
    assert bob is not None
    from baat.client.store import Contact

    with alice.store.transaction() as tx:
        alice.store.put_contact(tx, Contact(bob.account_id, "bob", os.urandom(32), True, False))
    alice.store.close()
    baat(bob_dir, "send", "alice", "it's me, new phone")
    proc = baat(alice_dir, "sync", "--json")
    assert [m["status"] for m in lines(proc)] == ["held"]
    assert "safety number changed" in proc.stderr
    refused = baat(alice_dir, "send", "bob", "who is this?", check=False)
    assert refused.returncode == 1 and "safety number changed" in refused.stderr
    number = json.loads(baat(alice_dir, "safety-number", "bob", "--json").stdout)["safety_number"]
    assert json.loads(baat(alice_dir, "verify", "bob", number, "--json").stdout)["verified"]
    history = lines(baat(alice_dir, "history", "bob", "--json"))
    assert history[-1]["text"] == "it's me, new phone" and history[-1]["status"] == "new"


async def test_a_sender_cannot_take_another_users_name(
    pair: tuple[Path, Path], server: ServerProcess, tmp_path: Path
) -> None:
    import dataclasses

    alice_dir, bob_dir = pair
    mallory_dir = tmp_path / "mallory"
    baat(mallory_dir, "register", "mallory", "--server", server.url)
    mallory = Client.open(mallory_dir, PASS)
    # Mallory's client claims to be "bob" inside the encrypted message.
    mallory.info = dataclasses.replace(mallory.info, username="bob")
    await mallory.connect()
    await mallory.send_text("alice", "it's bob, send me the code")
    await mallory.close()
    proc = baat(alice_dir, "sync", "--json")
    assert [m["sender"] for m in lines(proc)] == ["~bob"]
    assert "does not confirm that name" in proc.stderr
    # "bob" still means the real bob.
    baat(alice_dir, "send", "bob", "hello, real bob")
    assert [m["text"] for m in lines(baat(bob_dir, "sync", "--json"))] == ["hello, real bob"]
    names = sorted(c["username"] for c in json.loads(baat(alice_dir, "contacts", "--json").stdout))
    assert names == ["bob", "~bob"]
