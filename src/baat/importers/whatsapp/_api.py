"""The two entry points: ``open_export`` (keep the zip open) and ``parse_export`` (one shot)."""

from __future__ import annotations

import datetime as _dt
from types import TracebackType
from typing import IO

from ._build import ProgressCallback
from ._container import DEFAULT_MAX_TRANSCRIPT_BYTES, Container, Source, chat_name_from_file
from ._dialect import detect_dialect
from ._errors import Calendar, DateOrder
from ._parser import parse_transcript
from ._records import Attachment, ChatImport, Dialect
from ._text import decode, split_lines


class WhatsAppExport:
    """An opened export: parse it (again, with another date order if need be) and read its
    attachments lazily. Close it, or use it as a context manager, to release the zip.
    """

    def __init__(self, container: Container, chat_name: str | None) -> None:
        self._container = container
        try:
            # Only the lines are kept: the text itself would be a second copy (a wide one:
            # one emoji makes every character of a str take four bytes).
            self._lines = split_lines(decode(container.transcript))
        except BaseException:
            container.close()
            raise
        container.transcript = b""  # the decoded lines are all we need from here on
        self.chat_name = chat_name
        """The chat's name: as passed in, else from the file names, else ``None``."""

    @property
    def transcript_name(self) -> str | None:
        """The transcript's file or zip entry name (``None`` for bytes of a bare ``.txt``)."""
        return self._container.transcript_name

    @property
    def files(self) -> tuple[str, ...]:
        """Every zip entry except the transcript (empty for a bare ``.txt``)."""
        return self._container.files.names

    def detect_dialect(self) -> Dialect:
        """The header dialect, without settling the date order (for a preview).

        Raises:
            UnknownDialect: no line starts with a supported header.
        """
        return detect_dialect(self._lines[0])

    def parse(
        self,
        *,
        date_order: DateOrder | None = None,
        tz: str | _dt.tzinfo | None = None,
        progress: ProgressCallback | None = None,
        calendar: Calendar = "gregorian",
        summary_only: bool = False,
    ) -> ChatImport:
        """Parse the transcript into records.

        ``date_order`` is ``"dmy"``, ``"mdy"`` or ``"ymd"``; leave it ``None`` to settle it
        from the file. ``tz`` is a zoneinfo name or ``tzinfo`` for the exporting phone's
        zone (default: this machine's zone). ``progress(lines_done, lines_total)`` is called
        every few thousand messages and once at the end. ``calendar="buddhist"`` reads
        four-digit years in the Thai Buddhist era (2566 is 2023). ``summary_only=True``
        counts every record for ``summary`` but keeps none (``entries`` is empty): a
        preview of a large export in a fraction of the memory.

        Raises:
            UnknownDialect: no line has a readable header, or none a valid date and time.
            AmbiguousDateOrder: ``date_order`` is ``None`` and the file cannot settle it.
            DateOrderMismatch: ``date_order`` makes fewer dates valid than another order.
            ImplausibleYear: a year outside 1970-2100 (another calendar, e.g. Buddhist).
            ValueError: ``tz`` names no known time zone.
        """
        container = self._container
        return parse_transcript(
            self._lines,
            chat_name=self.chat_name,
            date_order=date_order,
            tz=tz,
            progress=progress,
            find_file=container.files.find if container.files.names else None,
            all_files=container.files.names,
            calendar=calendar,
            keep_entries=not summary_only,
        )

    def open_attachment(self, attachment: Attachment | str) -> IO[bytes]:
        """A stream over one attachment's bytes, read from the zip as it is consumed.

        Raises:
            AttachmentNotInExport: the export holds no such file.
            AttachmentsTooLarge: with this one, the attachments read exceed the limit.
            CorruptZip: the zip entry is damaged.
        """
        name = attachment if isinstance(attachment, str) else _entry_name(attachment)
        return self._container.open_file(name)

    def read_attachment(self, attachment: Attachment | str) -> bytes:
        """One attachment's bytes.

        Raises:
            AttachmentNotInExport: the export holds no such file.
            AttachmentsTooLarge: with this one, the attachments read exceed the limit.
            CorruptZip: the zip entry is damaged or fails its CRC check.
        """
        name = attachment if isinstance(attachment, str) else _entry_name(attachment)
        return self._container.read_file(name)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> WhatsAppExport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _entry_name(attachment: Attachment) -> str:
    return attachment.zip_entry or attachment.name or ""


def open_export(
    source: Source,
    *,
    chat_name: str | None = None,
    max_transcript_bytes: int = DEFAULT_MAX_TRANSCRIPT_BYTES,
    max_attachment_bytes: int | None = None,
) -> WhatsAppExport:
    """Open an export given as a path (``.txt`` or ``.zip``) or as the file's bytes.

    ``max_attachment_bytes`` bounds what the attachments read from a zip may add up to
    (``None``: half the free disk space, see ``default_attachment_limit``); reading past it
    raises ``AttachmentsTooLarge``.

    A zip is recognised by its content, not its name. ``chat_name`` feeds the import keys;
    pass the name of the conversation being imported into so that keys survive a renamed
    file. Without it the name comes from ``WhatsApp Chat with <Name>.txt`` or
    ``WhatsApp Chat - <Name>.zip``.

    Raises:
        NotAChatExport: binary data, or text that is not UTF-8.
        EmptyExport: the transcript is empty.
        ExportTooLarge: the transcript exceeds ``max_transcript_bytes``.
        NoChatInZip: a zip with no chat transcript in it.
        CorruptZip: a truncated or damaged zip.
        OSError: the path cannot be read.
    """
    container = Container(
        source,
        max_transcript_bytes=max_transcript_bytes,
        max_attachment_bytes=max_attachment_bytes,
    )
    if chat_name is None:
        for name in (container.transcript_name, container.file_name):
            if name:
                chat_name = chat_name_from_file(name)
                if chat_name:
                    break
    return WhatsAppExport(container, chat_name)


def parse_export(
    source: Source,
    *,
    date_order: DateOrder | None = None,
    tz: str | _dt.tzinfo | None = None,
    chat_name: str | None = None,
    progress: ProgressCallback | None = None,
    max_transcript_bytes: int = DEFAULT_MAX_TRANSCRIPT_BYTES,
    calendar: Calendar = "gregorian",
) -> ChatImport:
    """Open, parse and close in one call (see ``open_export`` and ``WhatsAppExport.parse``).

    Attachments are linked to zip entries but cannot be read afterwards; use
    ``open_export`` to keep the zip open for that.

    Raises:
        Everything ``open_export`` and ``WhatsAppExport.parse`` raise.
    """
    with open_export(
        source, chat_name=chat_name, max_transcript_bytes=max_transcript_bytes
    ) as export:
        return export.parse(date_order=date_order, tz=tz, progress=progress, calendar=calendar)
