"""``baat export``: every chat, contact and file as JSON Lines in a zip (docs/EXPORT.md)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from baat.cli.leave import export
from baat.client.importing import chat_id_for
from baat.client.store import Store
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export
from support.server import ServerProcess

PASS = "export test passphrase"
T0 = dt.datetime(2024, 2, 27, 18, 30)
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(5000)

# Until the root command registers them, the commands run through this module's objects.
LEAVE = "import sys; from baat.cli import leave; getattr(leave, sys.argv[1])(sys.argv[2:], 'baat')"


def baat(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``baat ARGS``; the commands of ``baat.cli.leave`` by their module attribute name."""
    env = {**os.environ, "BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    leave = args[0] in ("import_", "export", "backup")
    cmd = ["-c", LEAVE, *args] if leave else ["-m", "baat", *args]
    proc = subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=90
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"baat {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_export(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        out: dict[str, Any] = {"names": set(zf.namelist())}
        out["manifest"] = json.loads(zf.read("manifest.json"))
        for part in ("chats", "messages", "contacts"):
            text = zf.read(f"{part}.jsonl").decode()
            out[part] = [json.loads(line) for line in text.splitlines()]
        out["media"] = {n: zf.read(n) for n in zf.namelist() if n.startswith("media/")}
        out["raw"] = b"".join(zf.read(n) for n in zf.namelist())
    return out


def whatsapp_zip(tmp: Path, author: str = "Ravi K") -> Path:
    lines = [
        ChatLine(timestamp=T0, author=author, body="IMG-0001.jpg (file attached)\nsunset"),
        ChatLine(timestamp=T0 + dt.timedelta(minutes=1), author="Me", body="gorgeous"),
        ChatLine(timestamp=T0 + dt.timedelta(days=13), author=None, body="Ravi K left"),
        ChatLine(
            timestamp=T0 + dt.timedelta(days=14), author=author, body="IMG-2.jpg (file attached)"
        ),
    ]
    path = tmp / f"WhatsApp Chat - {author}.zip"
    path.write_bytes(zip_export(render_chat(lines, ExportStyle()), media={"IMG-0001.jpg": PHOTO}))
    return path


def test_export_of_an_imported_chat_matches_the_store(tmp_path: Path) -> None:
    profile = tmp_path / "p"
    Store.create(profile, PASS).close()
    env = {"BAAT_PASSPHRASE": PASS, "BAAT_PROFILE": str(profile)}
    from baat.cli.leave import import_

    path = whatsapp_zip(tmp_path)
    imported = CliRunner().invoke(
        import_, ["whatsapp", str(path), "--me", "Me", "--tz", "UTC"], env=env
    )
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "export.zip"
    result = CliRunner().invoke(export, ["--out", str(out), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["messages"] == 4
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    data = read_export(out)
    assert data["manifest"]["format"] == "baat-export" and data["manifest"]["version"] == 1
    assert data["manifest"]["counts"] == {
        "chats": 1,
        "messages": 4,
        "contacts": 0,
        "media_files": 1,
        "media_bytes": len(PHOTO),
        "media_missing": 0,
    }
    (chat,) = data["chats"]
    assert chat["id"] == chat_id_for("Ravi K") and chat["kind"] == "imported"
    assert chat["name"] == "Ravi K" and chat["me"] == "Me" and chat["messages"] == 4
    assert chat["imports"][0]["dialect"]["date_order"] == "dmy"
    store = Store.open(profile, PASS)
    try:
        mine = store.messages()
    finally:
        store.close()
    assert [m["id"] for m in data["messages"]] == [m.message_id for m in mine]
    assert [m["text"] for m in data["messages"]] == [m.body["text"] for m in mine]
    assert [m["direction"] for m in data["messages"]] == ["in", "out", "in", "in"]
    photo = data["messages"][0]["attachment"]
    assert photo["status"] == "attached" and data["media"][photo["file"]] == PHOTO
    assert data["messages"][3]["attachment"]["file"] is None
    assert data["messages"][2]["system"]["kind"] == "left"
    assert data["messages"][0]["sent_at"] == "2024-02-27T18:30:00.000+00:00"
    again = CliRunner().invoke(export, ["--out", str(out)], env=env)
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.e2e
def test_export_after_a_real_conversation(tmp_path: Path, server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    baat(alice, "send", "bob", "namaste 🙏")
    baat(bob, "sync")
    baat(bob, "send", "alice", "hello back")
    baat(alice, "sync")
    wa = whatsapp_zip(tmp_path, author="Bob WhatsApp")
    imported = baat(
        alice,
        "import_",
        "whatsapp",
        str(wa),
        "--me",
        "Me",
        "--map",
        "Bob WhatsApp=bob",
        "--tz",
        "Asia/Kolkata",
        "--json",
    )
    report = json.loads(imported.stdout)
    out = tmp_path / "alice-export.zip"
    done = json.loads(baat(alice, "export", "--out", str(out), "--json").stdout)
    assert done["messages"] == 6 and done["contacts"] == 1
    data = read_export(out)
    bob_id = data["contacts"][0]["account_id"]
    assert data["contacts"] == [
        {"account_id": bob_id, "username": "bob", "verified": False, "identity_changed": False}
    ]
    assert report["conversation"] == bob_id
    in_bob = [m for m in data["messages"] if m["chat"] == bob_id]
    native = [m for m in in_bob if m["status"] != "imported"]
    assert [(m["direction"], m["text"], m["sender"]) for m in native] == [
        ("out", "namaste 🙏", "alice"),
        ("in", "hello back", "bob"),
    ]
    assert native[1]["sender_account"] == bob_id and "imported" not in native[1]
    imported_msgs = [m for m in in_bob if m["status"] == "imported"]
    assert len(imported_msgs) == 4 and imported_msgs[0]["imported"]["author"] == "Bob WhatsApp"
    assert imported_msgs[0]["sender"] == "bob"
    kinds = {c["kind"]: c for c in data["chats"]}
    assert kinds["native"]["id"] == bob_id and kinds["native"]["name"] == "bob"
    assert kinds["native"]["contact"] == bob_id and kinds["native"]["messages"] == 6
    assert kinds["imported"]["messages_in"] == bob_id and kinds["imported"]["messages"] == 4
    assert kinds["imported"]["mapped"] == {"Bob WhatsApp": {"account": bob_id, "username": "bob"}}
    assert kinds["imported"]["first_message_at"] == "2024-02-27T13:00:00.000+00:00"
    assert data["manifest"]["account"]["username"] == "alice"
    # Nothing secret: no token, no key material, no session state.
    store = Store.open(alice, PASS)
    try:
        identity, creds = store.load_identity()
    finally:
        store.close()
    assert creds["token"].encode() not in data["raw"]
    for window in (identity[i : i + 16] for i in range(0, len(identity) - 16, 16)):
        assert window not in data["raw"]
    for word in (b"identity_key", b"token", b"session", b"prekey", b"state_blob"):
        assert word not in data["raw"]
