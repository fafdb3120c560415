"""Encrypted backups of a whole profile, and restoring them (docs/EXPORT.md, "Backups").

The plaintext is an uncompressed tar of the profile directory: ``BACKUP.json`` first (every
file's size and SHA-256), then ``profile.json``, a consistent snapshot of the SQLite store
taken with SQLite's online backup (so a running ``baat sync`` does not matter), and any
other file there. It is encrypted with AES-256-GCM under a key Argon2id derives from the
backup passphrase, in chunks (the STREAM construction: the nonce holds the chunk index and
a last-chunk flag, so reordering, truncation and extension fail), with the header as
associated data of every chunk. A restore writes into a temporary directory beside the
target and renames it into place only once every chunk authenticated, every file matched
its hash and the database passed ``PRAGMA integrity_check``.

Errors::

    BackupError
    ├── NotABackup              not a Baat backup, or a version this Baat cannot read
    ├── WrongBackupPassphrase   the key check fails
    ├── DamagedBackup           header digest, a chunk, the archive or a file hash fails
    ├── BackupTooCostly         its key derivation asks for more than the ceiling
    └── TargetExists            a profile (or any file) is already where it would go
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import struct
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from baat.client.store import PROFILE_FILE, STORE_FILE, NoProfile

MAGIC = b"BAATBKUP"
VERSION = 1
KDF_ARGON2ID = 1
# Stronger than the profile's own key: a backup file travels and can be attacked offline.
KDF_PARAMS = {"time_cost": 3, "memory_cost": 131072, "parallelism": 1}
CHUNK = 1 << 20
MANIFEST = "BACKUP.json"
TAG = 16
_FIELDS = struct.Struct(">8sBBIII16s7sI")  # magic .. chunk size
_HEADER = _FIELDS.size + TAG + 8  # + key check + header digest
_CHECK_INDEX = 0xFFFFFFFF  # the key check's nonce index; chunks stay below it
# The ceiling on what a backup's header may ask of the machine restoring it, checked before
# any key is derived (docs/EXPORT.md, "Container format"): the header is not authenticated
# until the key is, so a crafted file could otherwise ask for hours of work or all memory.
# Eight times the time and memory this Baat writes (KDF_PARAMS), lanes as a laptop has.
MAX_KDF_MEMORY_KIB = 1 << 20  # 1 GiB
MAX_KDF_TIME = 24
MAX_KDF_LANES = 8
# SQLite side files: the snapshot replaces them.
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".part")

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``."""


class BackupError(Exception):
    pass


class NotABackup(BackupError):
    pass


class WrongBackupPassphrase(BackupError):
    pass


class DamagedBackup(BackupError):
    pass


class BackupTooCostly(BackupError):
    """The backup's key derivation parameters are above the ceiling this Baat accepts."""


class TargetExists(BackupError):
    pass


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    files: int
    bytes: int  # of the backup file


def _derive(passphrase: str, salt: bytes, t: int, m: int, p: int) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=t,
        memory_cost=m,
        parallelism=p,
        hash_len=32,
        type=Type.ID,
    )


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class _SealingWriter(io.RawIOBase):
    """What tarfile writes to: buffered into chunks, each sealed as it fills."""

    def __init__(self, out: IO[bytes], aead: AESGCM, prefix: bytes, ad: bytes) -> None:
        self._out, self._aead, self._prefix, self._ad = out, aead, prefix, ad
        self._buf = bytearray()
        self._index = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buf += data
        # Keep at least one byte back: the last chunk is sealed by finish() with its flag.
        while len(self._buf) > CHUNK:
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self._index >= _CHECK_INDEX:
            raise BackupError("the profile is too large for one backup")
        nonce = _nonce(self._prefix, self._index, last)
        self._out.write(self._aead.encrypt(nonce, chunk, self._ad))
        self._index += 1

    def finish(self) -> None:
        self._seal(bytes(self._buf), last=True)
        self._buf.clear()


def _profile_files(profile: Path) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(profile.rglob("*")):
        rel = path.relative_to(profile).as_posix()
        if path.is_symlink() or not path.is_file() or rel == STORE_FILE:
            continue
        if rel.endswith(_SKIP_SUFFIXES) or path.name.startswith("."):
            continue
        out.append((rel, path))
    return out


def _snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included)."""
    with (
        contextlib.closing(sqlite3.connect(src)) as a,
        contextlib.closing(sqlite3.connect(dst)) as b,
    ):
        a.backup(b)
    with contextlib.closing(sqlite3.connect(dst)) as b:
        b.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    return h.hexdigest()


def create_backup(
    profile: Path, out: Path, passphrase: str, progress: Progress | None = None
) -> BackupInfo:
    """Write an encrypted backup of ``profile`` to ``out`` (which must not exist).

    Raises:
        NoProfile: ``profile`` holds no Baat profile.
        TargetExists: ``out`` exists.
        BackupError: an empty passphrase, or the backup cannot be written.
    """
    if not (profile / PROFILE_FILE).exists():
        raise NoProfile(f"no Baat profile in {profile}")
    if out.exists():
        raise TargetExists(f"{out} already exists; choose another file name")
    if not passphrase:
        raise BackupError("the backup passphrase is empty")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        files = _profile_files(profile)
        if (profile / STORE_FILE).exists():
            snap = Path(tmp, STORE_FILE)
            _snapshot(profile / STORE_FILE, snap)
            files.append((STORE_FILE, snap))
        sizes = {rel: path.stat().st_size for rel, path in files}
        created = int(time.time())
        manifest = {
            "format": "baat-backup",
            "version": VERSION,
            "created_at": created,
            "files": {rel: {"size": sizes[rel], "sha256": _sha256(path)} for rel, path in files},
        }
        total = sum(sizes.values())
        salt, prefix = secrets.token_bytes(16), secrets.token_bytes(7)
        p = KDF_PARAMS
        fields = _FIELDS.pack(
            MAGIC,
            VERSION,
            KDF_ARGON2ID,
            p["time_cost"],
            p["memory_cost"],
            p["parallelism"],
            salt,
            prefix,
            CHUNK,
        )
        key = _derive(passphrase, salt, p["time_cost"], p["memory_cost"], p["parallelism"])
        aead = AESGCM(key)
        check = aead.encrypt(_nonce(prefix, _CHECK_INDEX, False), b"", fields)
        part = Path(tmp, "backup.part")
        done = 0
        with part.open("wb") as f:
            # The digest only tells damage apart from a wrong passphrase; the AEAD, with
            # the fields as associated data of every chunk, is what authenticates them.
            f.write(fields + check + hashlib.sha256(fields + check).digest()[:8])
            writer = _SealingWriter(f, aead, prefix, fields)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest, indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(data), created, 0o600
                tar.addfile(info, io.BytesIO(data))
                for rel, path in files:
                    info = tar.gettarinfo(str(path), arcname=rel)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with path.open("rb") as src:
                        tar.addfile(info, src)
                    done += info.size
                    if progress is not None:
                        progress(done, total)
            writer.finish()
            f.flush()
            os.fsync(f.fileno())
        os.chmod(part, 0o600)
        if out.exists():
            raise TargetExists(f"{out} appeared while the backup was written")
        os.replace(part, out)
    return BackupInfo(out, len(files), out.stat().st_size)


# -- restoring -----------------------------------------------------------------------------


class _OpeningReader(io.RawIOBase):
    """What tarfile reads from: chunks authenticated one by one as they are needed."""

    def __init__(self, src: IO[bytes], aead: AESGCM, prefix: bytes, ad: bytes, chunk: int):
        self._src, self._aead, self._prefix, self._ad = src, aead, prefix, ad
        self._size = chunk + TAG
        self._next = src.read(self._size)
        self._buf = b""
        self._index = 0
        self.finished = False
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def _advance(self) -> None:
        sealed, self._next = self._next, self._src.read(self._size)
        self.read_bytes += len(sealed)
        last = not self._next
        try:
            self._buf = self._aead.decrypt(
                _nonce(self._prefix, self._index, last), sealed, self._ad
            )
        except InvalidTag as exc:
            raise DamagedBackup(
                f"the backup is damaged or truncated (chunk {self._index} fails authentication)"
            ) from exc
        self._index += 1
        self.finished = last

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self.finished:
            self._advance()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def drain(self) -> None:
        """Authenticate the rest (the archive's zero padding), up to the chunk flagged last:
        a backup cut off right after the archive's last file must fail too."""
        while not self.finished:
            self._advance()


def check_backup(path: Path) -> None:
    """Read ``path``'s header and check it, without the passphrase and without deriving
    anything: what a restore does first.

    Raises:
        NotABackup, DamagedBackup, BackupTooCostly; OSError when ``path`` cannot be read.
    """
    with path.open("rb") as f:
        _read_header(f)


def _read_header(src: IO[bytes]) -> tuple[bytes, bytes, tuple[int, int, int], bytes, bytes, int]:
    raw = src.read(_HEADER)
    if len(raw) < 8 or raw[:8] != MAGIC:
        raise NotABackup("this is not a Baat backup file")
    if len(raw) < _HEADER:
        raise DamagedBackup("the backup is truncated (incomplete header)")
    fields, check, digest = raw[: _FIELDS.size], raw[_FIELDS.size : -8], raw[-8:]
    if hashlib.sha256(fields + check).digest()[:8] != digest:
        raise DamagedBackup("the backup's header is damaged")
    _, version, kdf, t, m, p, salt, prefix, chunk = _FIELDS.unpack(fields)
    if version != VERSION or kdf != KDF_ARGON2ID:
        raise NotABackup(f"backup format {version} (KDF {kdf}) is not one this Baat reads")
    if t < 1 or p < 1 or m < 8 * p:
        raise DamagedBackup("the backup's key derivation parameters are out of range")
    if t > MAX_KDF_TIME or m > MAX_KDF_MEMORY_KIB or p > MAX_KDF_LANES:
        raise BackupTooCostly(
            f"the backup asks for Argon2id with time {t}, memory {m} KiB and {p} lanes; "
            f"this Baat derives keys with at most time {MAX_KDF_TIME}, "
            f"{MAX_KDF_MEMORY_KIB} KiB and {MAX_KDF_LANES} lanes, and restores nothing else"
        )
    if not 4096 <= chunk <= 64 << 20:
        raise DamagedBackup("the backup's chunk size is out of range")
    return fields, check, (t, m, p), salt, prefix, chunk


def _open_header(src: IO[bytes], passphrase: str) -> tuple[AESGCM, bytes, bytes, int]:
    fields, check, (t, m, p), salt, prefix, chunk = _read_header(src)
    aead = AESGCM(_derive(passphrase, salt, t, m, p))
    try:
        aead.decrypt(_nonce(prefix, _CHECK_INDEX, False), check, fields)
    except InvalidTag as exc:
        raise WrongBackupPassphrase("wrong backup passphrase") from exc
    return aead, prefix, fields, chunk


def _safe_name(name: str) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        return None
    return path.as_posix()


def _extract(
    tar: tarfile.TarFile, dest: Path, tick: Callable[[], None]
) -> dict[str, dict[str, object]]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise DamagedBackup("the backup's archive does not start with its manifest")
    stream = tar.extractfile(first)
    assert stream is not None
    try:
        manifest = json.loads(stream.read())
        expected: dict[str, dict[str, object]] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedBackup("the backup's manifest does not parse") from exc
    seen = set()
    # tar.next() rather than iteration: iterating would start over at the manifest.
    while (member := tar.next()) is not None:
        tick()
        name = _safe_name(member.name)
        if name is None or not member.isfile() or name not in expected or name in seen:
            raise DamagedBackup(f"unexpected entry {member.name!r} in the backup")
        seen.add(name)
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        h = hashlib.sha256()
        src = tar.extractfile(member)
        assert src is not None
        with target.open("wb") as out:
            while data := src.read(1 << 20):
                h.update(data)
                out.write(data)
        os.chmod(target, 0o600)
        want = expected[name]
        if h.hexdigest() != want.get("sha256") or member.size != want.get("size"):
            raise DamagedBackup(f"{name} in the backup does not match its recorded hash")
    if seen != set(expected):
        raise DamagedBackup(f"files missing from the backup: {sorted(set(expected) - seen)}")
    return expected


def _check_store(dest: Path) -> None:
    if not (dest / PROFILE_FILE).exists():
        raise DamagedBackup("the backup holds no profile.json")
    store = dest / STORE_FILE
    if store.exists():
        try:
            with contextlib.closing(sqlite3.connect(store)) as db:
                result = db.execute("PRAGMA integrity_check").fetchone()
        except sqlite3.Error as exc:
            raise DamagedBackup(f"the backed-up store does not open: {exc}") from exc
        if result is None or result[0] != "ok":
            raise DamagedBackup("the backed-up store fails SQLite's integrity check")


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def restore_backup(
    src: Path, target: Path, passphrase: str, progress: Progress | None = None
) -> int:
    """Restore the backup at ``src`` as the profile directory ``target``; returns the number
    of files. ``target`` must not exist or be an empty directory; nothing is left behind
    unless every check passed.

    Raises:
        TargetExists, NotABackup, WrongBackupPassphrase, DamagedBackup; OSError when
        ``src`` cannot be read.
    """
    if (target / PROFILE_FILE).exists():
        raise TargetExists(f"{target} already holds a Baat profile; restore into a new directory")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TargetExists(f"{target} exists and is not empty; restore into a new directory")
    total = src.stat().st_size
    with src.open("rb") as f:
        aead, prefix, fields, chunk = _open_header(f, passphrase)
        reader = _OpeningReader(f, aead, prefix, fields, chunk)
        with _staging(target) as tmp:
            content = tmp / "profile"
            content.mkdir(mode=0o700)

            def tick() -> None:
                if progress is not None:
                    progress(min(reader.read_bytes + _HEADER, total), total)

            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    files = _extract(tar, content, tick)
            except tarfile.TarError as exc:
                raise DamagedBackup(f"the backup's archive is damaged ({exc})") from exc
            reader.drain()
            _check_store(content)
            if target.exists():
                if any(target.iterdir()):
                    raise TargetExists(f"{target} is no longer empty; nothing was restored")
                target.rmdir()
            os.rename(content, target)
    return len(files)
