"""Attachment benchmark: encryption on the device and transfer through one ``baat serve``.

Starts a server (temp data dir, SQLite and blob files unless ``--db``), registers a sender
and a recipient device, and for each size measures, separately:

- encrypt:  plaintext in memory -> ciphertext (AES-256-GCM chunks, digest), no IO;
- decrypt:  ciphertext file -> plaintext file (digest check, decryption, fsync, rename);
- upload:   ciphertext in memory -> POST + PATCHes of ``--patch-mib`` MiB (server fsyncs);
- download: GET -> ciphertext file (the recipient's fetch, after which the blob is gone);
- end to end: plaintext file -> encrypt while uploading -> download -> decrypt -> file.

Figures are MB/s (10^6 bytes) of plaintext, the median of ``--runs`` runs.

    .venv/bin/python bench/attachments.py
    .venv/bin/python bench/attachments.py --sizes 1,50 --runs 5 --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console
from rich.table import Table

from baat.client.attachments import (
    AttachmentPointer,
    Encryptor,
    decrypt_file,
    make_pointer,
)
from baat.contract import registration_message
from baat.crypto import identity_dh_signature_message

ROOT = Path(__file__).resolve().parent.parent
TARGET_E2E_MBS = 100.0
MB = 1_000_000
console = Console(highlight=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def baat_server(data: Path, db: str | None) -> Iterator[str]:
    """A ``baat serve`` process, stopped by its pid whatever happens."""
    port = free_port()
    cmd = [sys.executable, "-m", "baat", "serve", "--data", str(data), "--port", str(port)]
    cmd += ["--region", "in"]
    cmd += ["--registrations-per-minute", "1000", "--registrations-per-address", "1000"]
    scratch = None
    if db:
        # A database of its own on the named server, dropped afterwards.
        scratch = "baat_bench_" + secrets.token_hex(6)
        asyncio.run(_pg_admin(db, f"CREATE DATABASE {scratch}"))
        cmd += ["--db", db.rsplit("/", 1)[0] + "/" + scratch]
    log = (data / "server.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {data / 'server.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url + "/healthz", timeout=1) as r,
            ):
                if r.status == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if db and scratch:
            asyncio.run(_pg_admin(db, f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def register(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    ik = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    dh = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    body = {
        "username": username,
        "identity_key": b64(ik),
        "identity_dh_key": b64(dh),
        "identity_dh_sig": b64(key.sign(identity_dh_signature_message(dh))),
        "proof": b64(key.sign(registration_message(username, ik, dh))),
    }
    r = await http.post("/v1/accounts", json=body)
    r.raise_for_status()
    j = r.json()
    return {"Authorization": f"Bearer {j['account_id']}.{j['device_id']}.{j['token']}"}


class Bench:
    def __init__(self, http: httpx.AsyncClient, sender: dict[str, str], recipient: dict[str, str],
                 tmp: Path, patch_bytes: int) -> None:  # fmt: skip
        self.http, self.sender, self.recipient = http, sender, recipient
        self.tmp, self.patch_bytes = tmp, patch_bytes

    async def upload(self, pieces: Iterator[bytes], length: int) -> str:
        r = await self.http.post(
            "/v1/blobs", json={"length": length, "fetches_allowed": 1}, headers=self.sender
        )
        r.raise_for_status()
        blob_id, url = r.json()["id"], r.json()["url"]
        offset, pending = 0, bytearray()
        for piece in pieces:
            pending += piece
            while len(pending) >= self.patch_bytes or offset + len(pending) == length:
                part = bytes(pending[: self.patch_bytes])
                del pending[: self.patch_bytes]
                headers = {**self.sender, "Upload-Offset": str(offset)}
                r = await self.http.patch(url, content=part, headers=headers)
                if r.status_code != 204:
                    raise RuntimeError(f"upload refused: {r.text}")
                offset = int(r.headers["upload-offset"])
                if not pending:
                    break
        return str(blob_id)

    async def download(self, blob_id: str, dst: Path) -> None:
        async with self.http.stream("GET", f"/v1/blobs/{blob_id}", headers=self.recipient) as r:
            if r.status_code != 200:
                raise RuntimeError(f"download refused: {r.status_code}")
            with dst.open("wb") as f:
                async for data in r.aiter_bytes():
                    f.write(data)

    async def end_to_end(self, src: Path, size: int) -> None:
        with src.open("rb") as f:
            enc = Encryptor(size)
            blob_id = await self.upload(enc.stream(f), enc.ciphertext_size)
        pointer = make_pointer(blob_id, enc.result())
        blob = self.tmp / "e2e.blob"
        await self.download(blob_id, blob)
        decrypt_file(blob, self.tmp / "e2e.out", pointer)
        blob.unlink()

    async def case(self, size: int, runs: int) -> dict[str, float]:
        plain = os.urandom(size)
        src = self.tmp / "plain.bin"
        src.write_bytes(plain)
        times: dict[str, list[float]] = {k: [] for k in ("enc", "dec", "up", "down", "e2e")}

        async def timed(key: str, step: Callable[[], Awaitable[Any]]) -> Any:
            t = time.perf_counter()
            out = await step()
            times[key].append(time.perf_counter() - t)
            return out

        for _ in range(runs):
            enc = Encryptor(size)

            async def encrypt(enc: Encryptor = enc) -> bytes:
                return b"".join(enc.stream(io.BytesIO(plain)))

            blob = await timed("enc", encrypt)
            pointer: AttachmentPointer = make_pointer("x" * 32, enc.result())
            blob_path = self.tmp / "blob"
            blob_path.write_bytes(blob)

            async def decrypt(p: AttachmentPointer = pointer, b: Path = blob_path) -> None:
                decrypt_file(b, self.tmp / "plain.out", p)

            await timed("dec", decrypt)
            blob_id = await timed("up", lambda b=blob: self.upload(iter([b]), len(b)))
            await timed("down", lambda i=blob_id: self.download(i, self.tmp / "down.blob"))
            await timed("e2e", lambda: self.end_to_end(src, size))
        if (self.tmp / "e2e.out").read_bytes() != plain:
            raise RuntimeError("the end-to-end run did not give the plaintext back")
        return {k: size / statistics.median(v) / MB for k, v in times.items()}


async def run(args: argparse.Namespace, url: str, tmp: Path) -> list[tuple[int, dict[str, float]]]:
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        sender = await register(http, "sender")
        recipient = await register(http, "recipient")
        bench = Bench(http, sender, recipient, tmp, args.patch_mib << 20)
        await bench.case(1 << 20, 2)  # warm-up: imports, connections, page cache
        results = []
        for mib in args.sizes:
            runs = args.runs if mib <= 8 else max(3, args.runs // 4)
            results.append((mib << 20, await bench.case(mib << 20, runs)))
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50", help="MiB, comma-separated")
    parser.add_argument("--runs", type=int, default=12, help="runs per size (a quarter for >8 MiB)")
    parser.add_argument("--patch-mib", type=int, default=8, help="bytes per PATCH request")
    parser.add_argument("--db", help="postgresql://... to keep blobs in PostgreSQL chunks")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="baat-bench-attachments-"))
    try:
        (tmp / "server").mkdir()
        with baat_server(tmp / "server", args.db) as url:
            results = asyncio.run(run(args, url, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    store = "PostgreSQL chunks" if args.db else "SQLite + files"
    table = Table(title=f"Attachments through one baat server ({store}), MB/s of plaintext")
    for col in ("size", "encrypt", "decrypt", "upload", "download", "end to end", "target"):
        table.add_column(col, justify="right")
    ok = True
    for size, r in results:
        hit = r["e2e"] >= TARGET_E2E_MBS
        ok &= hit
        table.add_row(
            f"{size >> 20} MiB",
            *(f"{r[k]:,.0f}" for k in ("enc", "dec", "up", "down", "e2e")),
            f"[green]≥ {TARGET_E2E_MBS:.0f} ok[/]" if hit else f"[red]< {TARGET_E2E_MBS:.0f}[/]",
        )
    console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; encrypt/decrypt run on "
        "the client alone, upload/download move ciphertext only, end to end is one file "
        "from the sender's disk to the recipient's, every step in sequence."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
