"""Where the transcript comes from: a ``.txt``, a ``.zip`` with or without media, or bytes.

Spec section 1: iOS always zips, naming the transcript ``_chat.txt``; Android shares
``WhatsApp Chat with <Name>.txt`` alone or zipped with its media, with the prefix localised.
A zip may also hold ``.txt`` files people sent as documents, so every candidate is sniffed
for a header before it is taken as the transcript.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

from ._dialect import looks_like_chat
from ._errors import (
    AttachmentNotInExport,
    AttachmentsTooLarge,
    CorruptZip,
    ExportTooLarge,
    NoChatInZip,
    WhatsAppImportError,
)

Source = str | os.PathLike[str] | bytes

DEFAULT_MAX_TRANSCRIPT_BYTES = 256 * 1024 * 1024
"""WhatsApp caps exports near 40 000 messages (spec 1), a few MB; far above that is a bomb."""


def default_attachment_limit(where: Path | None = None) -> int:
    """Half the free space on the disk of ``where`` (the home directory, where profiles
    live, by default): what the attachments of one import may add up to. Half, because
    what is written goes through SQLite's write-ahead log before the database."""
    return shutil.disk_usage(where or Path.home()).free // 2


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_SNIFF_BYTES = 4096
# "WhatsApp Chat with Anna", "WhatsApp Chat - Anna", "Conversa do WhatsApp com Anna",
# "WhatsApp-Chat mit Anna": the name is whatever follows "WhatsApp" and its connector.
_CHAT_NAME = re.compile(
    r".*?WhatsApp(?:[ -]Chat)?\s*(?:-|with|mit|com|con|avec|met|med|ile|z)?\s+(?P<name>.+)",
    re.IGNORECASE,
)
_COPY_SUFFIX = re.compile(r"\s*\(\d+\)$")  # "… (1).zip" from a browser's second download

# What zipfile and zlib raise on damaged or unusual archives. RuntimeError is an encrypted
# entry and NotImplementedError a compression method zipfile lacks; WhatsApp writes neither.
_ZIP_FAILURES = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


def chat_name_from_file(name: str) -> str | None:
    """The chat's name from an export's file name, or ``None`` when it carries none."""
    stem = _COPY_SUFFIX.sub("", Path(name).stem).strip()
    m = _CHAT_NAME.fullmatch(stem)
    if m is None:
        return None
    return m["name"].strip() or None


class _FileIndex:
    """Zip entries by base name, matched the way markers name them.

    Names are compared NFC-normalised because zips made on macOS store NFD names, and then
    case-insensitively as a fallback for archives repacked on case-folding file systems.
    """

    def __init__(self, infos: list[zipfile.ZipInfo]) -> None:
        self._exact: dict[str, zipfile.ZipInfo] = {}
        self._folded: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            base = unicodedata.normalize("NFC", info.filename.rpartition("/")[2])
            self._exact.setdefault(base, info)
            self._folded.setdefault(base.casefold(), info)
        self.names = tuple(info.filename for info in infos)

    def find(self, name: str) -> tuple[str, int] | None:
        base = unicodedata.normalize("NFC", name.strip().rpartition("/")[2])
        info = self._exact.get(base) or self._folded.get(base.casefold())
        return (info.filename, info.file_size) if info is not None else None

    def info(self, name: str) -> zipfile.ZipInfo | None:
        base = unicodedata.normalize("NFC", name.strip().rpartition("/")[2])
        return self._exact.get(base) or self._folded.get(base.casefold())


class Container:
    """An opened export: the transcript's bytes, and the zip for lazy attachment reads."""

    def __init__(
        self,
        source: Source,
        *,
        max_transcript_bytes: int,
        max_attachment_bytes: int | None = None,
    ) -> None:
        # Counted by each entry's declared size, which bounds what zipfile will inflate
        # from it (more fails its CRC check); each entry once however often it is read.
        self._attachment_limit = max_attachment_bytes
        self._attachments_opened: set[str] = set()
        self.attachment_bytes = 0
        self._zip: zipfile.ZipFile | None = None
        self._handle: BinaryIO | None = None
        self.transcript = b""
        self.files = _FileIndex([])
        self.transcript_name: str | None = None
        self.file_name: str | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            if data[:4] in _ZIP_MAGIC:
                self._open_zip(io.BytesIO(data), max_transcript_bytes)
            else:
                self.transcript = _capped(data, max_transcript_bytes)
            return
        path = Path(os.fspath(source))
        self.file_name = path.name
        handle = path.open("rb")  # OSError (missing file, permissions) is the caller's
        try:
            magic = handle.read(4)
            handle.seek(0)
            if magic in _ZIP_MAGIC:
                self._handle = handle
                self._open_zip(handle, max_transcript_bytes)
                return
            if path.suffix.lower() == ".zip" and magic:
                raise CorruptZip(f"{path.name} is not a zip archive")
            self.transcript_name = path.name
            self.transcript = _capped(handle.read(max_transcript_bytes + 1), max_transcript_bytes)
        except BaseException:
            self.close()
            handle.close()
            raise
        handle.close()

    def _open_zip(self, handle: BinaryIO, limit: int) -> None:
        try:
            self._zip = zipfile.ZipFile(handle)
            infos = [i for i in self._zip.infolist() if not _skipped(i)]
            chat = self._find_chat(infos)
            self.transcript = self._read(chat, limit)
        except WhatsAppImportError:
            self.close()
            raise
        except _ZIP_FAILURES as exc:
            self.close()
            raise CorruptZip(f"the zip is truncated or damaged ({exc})") from exc
        except BaseException:
            self.close()
            raise
        self.transcript_name = chat.filename
        self.files = _FileIndex([i for i in infos if i is not chat])

    def _find_chat(self, infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
        texts = [i for i in infos if i.filename.lower().endswith(".txt")]
        zip_stem = _letters(Path(self.file_name or "").stem)

        def rank(info: zipfile.ZipInfo) -> tuple[int, int]:
            base = info.filename.rpartition("/")[2]
            score = 0
            if base == "_chat.txt":
                score = 3
            elif "whatsapp" in base.casefold() or (zip_stem and _letters(base[:-4]) == zip_stem):
                # Spec 1: the zip and txt names mangle odd characters differently
                # ("School 2025_2026" vs "School 20252026"), so compare letters and digits.
                score = 2
            return (-score, info.filename.count("/"))

        ranked = sorted(texts, key=rank)
        for info in ranked:
            if looks_like_chat(self._sniff(info)):
                return info
        if ranked and rank(ranked[0])[0] < 0:
            # Named like a transcript but no header recognised: take it anyway, so the
            # caller hears what is wrong with it (UnknownDialect, NotAChatExport, ...)
            # rather than that there is none.
            return ranked[0]
        if not infos:
            raise NoChatInZip("the zip archive is empty")
        shown = ", ".join(i.filename for i in texts[:5]) or "it holds no .txt file"
        raise NoChatInZip(f"no chat transcript in the zip ({shown})")

    def _sniff(self, info: zipfile.ZipInfo) -> str:
        assert self._zip is not None
        with self._zip.open(info) as f:
            return f.read(_SNIFF_BYTES).decode("utf-8", "ignore")

    def _read(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        assert self._zip is not None
        with self._zip.open(info) as f:
            return _capped(f.read(limit + 1), limit)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except _ZIP_FAILURES as exc:
            raise CorruptZip(f"cannot read the attachment: the zip is damaged ({exc})") from exc

    def open_file(self, name: str) -> IO[bytes]:
        info = self.files.info(name) if self._zip is not None else None
        if info is None or self._zip is None:
            raise AttachmentNotInExport(f"{name!r} is not in this export")
        self._count(info)
        with self._translated():
            return self._zip.open(info)

    def _count(self, info: zipfile.ZipInfo) -> None:
        if info.filename in self._attachments_opened:
            return
        if self._attachment_limit is None:
            self._attachment_limit = default_attachment_limit()
        total = self.attachment_bytes + info.file_size
        if total > self._attachment_limit:
            raise AttachmentsTooLarge(
                f"the attachments would add up to {total:,} bytes with {info.filename!r}, "
                f"more than the limit of {self._attachment_limit:,} bytes (by default half "
                "the free disk space): free some space, or import the chat without its media"
            )
        self._attachments_opened.add(info.filename)
        self.attachment_bytes = total

    def read_file(self, name: str) -> bytes:
        with self.open_file(name) as f, self._translated():
            return f.read()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _skipped(info: zipfile.ZipInfo) -> bool:
    # Directories and the resource forks macOS adds when a user re-zips an export.
    name = info.filename
    return info.is_dir() or name.startswith("__MACOSX/") or "/._" in name or name.startswith("._")


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _capped(data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise ExportTooLarge(f"the transcript is larger than {limit} bytes")
    return data
