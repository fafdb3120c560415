"""``baat admin backup`` of a running SQLite server, restored into a new data directory:
the restored server has the queued messages, the attachment and the same signing key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from baat.client.sdk import Client
from client.test_multidevice_support import PASS, texts, until
from support.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def admin_backup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baat", "admin", "backup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


async def signing_keys(url: str) -> object:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(url + "/.well-known/baat/keys")).json()


async def test_backup_of_a_running_server_restores_its_data(
    tmp_path: Path, server: ServerProcess
) -> None:
    alice = await Client.register(tmp_path / "alice", PASS, server.url, "alice")
    bob = await Client.register(tmp_path / "bob", PASS, server.url, "bob")
    await bob.connect()
    await bob.disconnect()  # offline: what alice sends waits on the server
    await alice.connect()
    photo = tmp_path / "photo.bin"
    photo.write_bytes(os.urandom(300_000))
    keys_before = await signing_keys(server.url)
    try:
        for n in range(5):
            await alice.send_text("bob", f"before backup {n}")
        await alice.send_file("bob", photo, caption="the file")

        out = tmp_path / "backup"
        made = admin_backup("--out", str(out), "--data", str(server.data_dir), "--json")
        assert made.returncode == 0, made.stderr
        manifest = json.loads(made.stdout)
        assert manifest["schema_version"] >= 5 and manifest["blobs"] == 1
        assert manifest["keys"] == ["receipt-signing.kek", "sealed-sender-root.key"]
        assert json.loads((out / "MANIFEST.json").read_text()) == manifest
        assert oct(out.stat().st_mode & 0o777) == "0o700"
        assert oct((out / "data" / "receipt-signing.kek").stat().st_mode & 0o777) == "0o600"
        root = out / "data" / "sealed-sender-root.key"
        assert oct(root.stat().st_mode & 0o777) == "0o600"
        # The server went on working during the backup; this one is not in the copy.
        await alice.send_text("bob", "after backup")
        # A second backup into the same directory is refused; PostgreSQL is pg_dump's.
        again = admin_backup("--out", str(out), "--data", str(server.data_dir))
        assert again.returncode == 1 and "not empty" in again.stderr
        pg = admin_backup(
            "--out", str(tmp_path / "pg"), "--data", str(server.data_dir),
            "--db", "postgresql://baat@db/baat",
        )  # fmt: skip
        assert pg.returncode == 1 and "pg_dump" in pg.stderr
        await alice.disconnect()
    finally:
        server.stop()

    # Restore as docs/BACKUP.md says: the contents of data/ into an empty --data directory,
    # on the address the clients know.
    restored_dir = tmp_path / "restored"
    shutil.copytree(out / "data", restored_dir)
    restored = ServerProcess(restored_dir)
    restored.port = server.port
    restored.start()
    try:
        # The key file came back with the database: the same receipt-signing key.
        assert await signing_keys(restored.url) == keys_before
        await bob.connect()
        await until([bob], lambda: len(texts(bob)) >= 6)
        got = texts(bob)
        assert got == [f"before backup {n}" for n in range(5)] + ["the file"]
        await bob.attachments.wait()
        message = next(m for m in bob.store.messages() if m.body.get("text") == "the file")
        saved = bob.attachments.save(bob.attachments.find(message.message_id), tmp_path / "got")
        assert saved.read_bytes() == photo.read_bytes()
    finally:
        await alice.close()
        await bob.close()
        restored.stop()
