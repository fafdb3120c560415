"""``baat backup create`` and ``baat backup restore``: the whole profile under a passphrase."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from baat.cli.leave import backup
from baat.client.backup import (
    MAGIC,
    MAX_KDF_LANES,
    MAX_KDF_MEMORY_KIB,
    MAX_KDF_TIME,
    BackupTooCostly,
    DamagedBackup,
    NotABackup,
    TargetExists,
    WrongBackupPassphrase,
    create_backup,
    restore_backup,
)
from baat.client.importing import import_chat
from baat.client.store import Contact, Store
from baat.importers.whatsapp import open_export
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export
from support.server import ServerProcess

PASS = "profile passphrase"
BACKUP_PASS = "a long backup passphrase"
PHOTO = b"\xff\xd8\xff" + os.urandom(1_500_000)  # two chunks of the backup, two of the store
LEAVE = "import sys; from baat.cli import leave; getattr(leave, sys.argv[1])(sys.argv[2:], 'baat')"


def make_profile(tmp: Path) -> Path:
    """A profile with a contact, an imported chat and a stored file."""
    profile = tmp / "profile"
    store = Store.create(profile, PASS)
    try:
        with store.transaction() as tx:
            store.put_contact(tx, Contact("acct-1", "ravi", b"k" * 32, verified=True))
        text = render_chat(
            [
                ChatLine(timestamp=dt.datetime(2024, 1, 20, 9), author="Ravi", body="hi"),
                ChatLine(
                    timestamp=dt.datetime(2024, 1, 20, 9, 5),
                    author="Ravi",
                    body="IMG-1.jpg (file attached)",
                ),
            ],
            ExportStyle(),
        )
        zipped = tmp / "WhatsApp Chat - Ravi.zip"
        zipped.write_bytes(zip_export(text, media={"IMG-1.jpg": PHOTO}))
        with open_export(zipped) as export:
            import_chat(store, export, export.parse(date_order="dmy", tz="UTC"))
    finally:
        store.close()
    (profile / "seen-policy.json").write_text('{"version": 3}')
    return profile


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(backup, list(args), env=env, input=stdin)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_create_and_restore_bring_back_the_whole_profile(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    out = tmp_path / "profile.baatbackup"
    env = {"BAAT_BACKUP_PASSPHRASE": BACKUP_PASS, "BAAT_PROFILE": str(profile)}
    made = cli("create", "--out", str(out), "--json", env=env)
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["files"] == 3
    raw = out.read_bytes()
    assert raw.startswith(MAGIC) and PHOTO[-64:] not in raw and b"ravi" not in raw
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    restored = tmp_path / "restored"
    env["BAAT_PROFILE"] = str(restored)
    done = cli("restore", str(out), "--json", env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"profile": str(restored), "files": 3}
    assert (restored / "seen-policy.json").read_text() == '{"version": 3}'
    old, new = Store.open(profile, PASS), Store.open(restored, PASS)
    try:
        assert new.contacts() == old.contacts()
        assert new.messages() == old.messages()
        att = new.messages()[1].body["attachment"]
        from baat.client.importing import imported_chats, read_media

        assert b"".join(read_media(new, att["media"], att["chunks"])) == PHOTO
        assert [c.name for c in imported_chats(new)] == ["Ravi"]
    finally:
        old.close()
        new.close()
    assert leftovers(tmp_path) == []
    again = cli("restore", str(out), "--profile", str(restored), env=env)
    assert again.exit_code == 1 and "already holds a Baat profile" in again.output
    over = cli("create", "--out", str(out), "--profile", str(profile), env=env)
    assert over.exit_code == 1 and "already exists" in over.output


def test_wrong_passphrase_and_damage_leave_nothing_behind(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    out = tmp_path / "b.baatbackup"
    create_backup(profile, out, BACKUP_PASS)
    target = tmp_path / "new"
    with pytest.raises(WrongBackupPassphrase):
        restore_backup(out, target, "not the passphrase")
    result = cli(
        "restore", str(out), "--profile", str(target), env={"BAAT_BACKUP_PASSPHRASE": "nope"}
    )
    assert result.exit_code == 1 and "wrong backup passphrase" in result.output
    data = out.read_bytes()
    chunk = 73 + (1 << 20) + 16
    for position in (20, 60, 80, chunk - 1, chunk + 500, len(data) - 1):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        bad = tmp_path / "damaged.baatbackup"
        bad.write_bytes(bytes(damaged))
        with pytest.raises(DamagedBackup):
            restore_backup(bad, target, BACKUP_PASS)
        assert not target.exists() and leftovers(tmp_path) == [], position
    for cut in (len(data) - 1, chunk, 73, 40):
        bad.write_bytes(data[:cut])
        with pytest.raises(DamagedBackup):
            restore_backup(bad, target, BACKUP_PASS)
        assert not target.exists() and leftovers(tmp_path) == [], cut
    bad.write_bytes(data + b"\x00" * 40)
    with pytest.raises(DamagedBackup):
        restore_backup(bad, target, BACKUP_PASS)
    flipped = cli(
        "restore", str(bad), "--profile", str(target), env={"BAAT_BACKUP_PASSPHRASE": BACKUP_PASS}
    )
    assert flipped.exit_code == 1 and "damaged" in flipped.output
    bad.write_bytes(b"PK\x03\x04 not a backup")
    with pytest.raises(NotABackup):
        restore_backup(bad, target, BACKUP_PASS)
    assert not target.exists() and leftovers(tmp_path) == []
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(TargetExists):
        restore_backup(out, target, BACKUP_PASS)
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    assert restore_backup(out, target, BACKUP_PASS) == 3  # an empty directory is fine


def test_passphrase_prompt_confirms_on_create(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    out = tmp_path / "b.baatbackup"
    env = {"BAAT_PROFILE": str(profile)}
    mismatch = cli("create", "--out", str(out), env=env, stdin="one\ntwo\none\none\n")
    assert "do not match" in mismatch.output and mismatch.exit_code == 0
    assert out.exists()
    target = tmp_path / "r"
    ok = cli("restore", str(out), "--profile", str(target), env=env, stdin="one\n")
    assert ok.exit_code == 0, ok.output
    assert (target / "profile.json").exists()
    missing = cli("create", "--out", str(tmp_path / "x"), "--profile", str(tmp_path / "none"))
    assert missing.exit_code == 1 and "no Baat profile" in missing.output


# -- through a real server -----------------------------------------------------------------


def baat(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BAAT_PASSPHRASE": PASS,
        "BAAT_BACKUP_PASSPHRASE": BACKUP_PASS,
        "BAAT_PROFILE": str(profile),
    }
    leave = args[0] in ("import_", "export", "backup")
    cmd = ["-c", LEAVE, *args] if leave else ["-m", "baat", *args]
    proc = subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=90
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"baat {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def texts(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [json.loads(line)["text"] for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.e2e
def test_a_restored_profile_keeps_talking(tmp_path: Path, server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    baat(alice, "register", "alice", "--server", server.url)
    baat(bob, "register", "bob", "--server", server.url)
    baat(alice, "send", "bob", "before the backup")
    assert texts(baat(bob, "sync", "--json")) == ["before the backup"]
    baat(bob, "send", "alice", "reply before")
    assert texts(baat(alice, "sync", "--json")) == ["reply before"]
    out = tmp_path / "alice.baatbackup"
    baat(alice, "backup", "create", "--out", str(out))
    # Sent after the backup, never fetched by the old device: the server still holds it.
    baat(bob, "send", "alice", "while you were away")
    moved = tmp_path / "alice-new-phone"
    baat(moved, "backup", "restore", str(out), "--profile", str(moved))
    assert texts(baat(moved, "sync", "--json")) == ["while you were away"]
    baat(moved, "send", "bob", "from the restored profile")
    assert texts(baat(bob, "sync", "--json")) == ["from the restored profile"]
    baat(bob, "send", "alice", "and back")
    assert texts(baat(moved, "sync", "--json")) == ["and back"]
    history = [
        json.loads(x)["text"]
        for x in baat(moved, "history", "bob", "--json").stdout.split("\n")
        if x
    ]
    assert history == [
        "before the backup",
        "reply before",
        "while you were away",
        "from the restored profile",
        "and back",
    ]
    refused = baat(moved, "backup", "restore", str(out), "--profile", str(moved), check=False)
    assert refused.returncode == 1 and "already holds a Baat profile" in refused.stderr


def with_kdf(data: bytes, t: int, m: int, p: int) -> bytes:
    """The backup ``data`` with other Argon2id parameters and a header digest to match, as
    a crafted file would have them (the key check then fails, but only after deriving)."""
    header = bytearray(data[:65])
    header[10:22] = struct.pack(">III", t, m, p)
    return bytes(header) + hashlib.sha256(header).digest()[:8] + data[73:]


def test_key_derivation_above_the_ceiling_is_refused_before_any_work(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    out = tmp_path / "b.baatbackup"
    create_backup(profile, out, BACKUP_PASS)
    data = out.read_bytes()
    target = tmp_path / "new"
    crafted = tmp_path / "crafted.baatbackup"
    for t, m, p in [
        (MAX_KDF_TIME + 1, 131072, 1),
        (3, MAX_KDF_MEMORY_KIB + 1, 1),
        (3, 4 << 20, 1),  # 4 GiB
        (3, 131072, MAX_KDF_LANES + 1),
        (2**32 - 1, 2**32 - 1, 2**24 - 1),
    ]:
        crafted.write_bytes(with_kdf(data, t, m, p))
        with pytest.raises(BackupTooCostly, match="at most"):
            restore_backup(crafted, target, BACKUP_PASS)
        assert not target.exists() and leftovers(tmp_path) == []
    # The command refuses before it even asks for the passphrase (no input is given).
    result = cli("restore", str(crafted), "--profile", str(target), env={})
    assert result.exit_code == 1 and "at most" in result.output
    assert "passphrase" not in result.output.lower().replace("restores nothing else", "")
    # The parameters this Baat writes are well inside the ceiling.
    assert restore_backup(out, target, BACKUP_PASS) == 3
