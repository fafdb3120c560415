"""On-device parser for WhatsApp "Export chat" files (docs/IMPORT.md).

Pure: it reads a ``.txt``, a ``.zip`` or bytes and returns frozen records; it never uses the
network and stores nothing. ::

    with open_export(path, chat_name="Family") as export:
        try:
            chat = export.parse(tz="Europe/Berlin")
        except AmbiguousDateOrder as exc:
            ...  # show exc.samples, ask, then:
            chat = export.parse(date_order="dmy", tz="Europe/Berlin")
        for message in chat.messages:
            attachment = message.attachment
            if attachment and attachment.status is AttachmentStatus.ATTACHED:
                data = export.read_attachment(attachment)

Errors form one tree under ``WhatsAppImportError``; see ``baat.importers.whatsapp._errors``.
``baat.importers.whatsapp.testing`` writes exports for tests.
"""

from ._api import WhatsAppExport, open_export, parse_export
from ._build import ProgressCallback
from ._container import DEFAULT_MAX_TRANSCRIPT_BYTES, chat_name_from_file, default_attachment_limit
from ._errors import (
    AmbiguousDateOrder,
    AttachmentNotInExport,
    AttachmentsTooLarge,
    Calendar,
    CorruptZip,
    DateOrder,
    DateOrderError,
    DateOrderMismatch,
    DateReading,
    EmptyExport,
    ExportTooLarge,
    ImplausibleYear,
    NoChatInZip,
    NotAChatExport,
    UnknownDialect,
    WhatsAppImportError,
)
from ._records import (
    Attachment,
    AttachmentStatus,
    Call,
    ChatImport,
    Dialect,
    Entry,
    ImportSummary,
    Location,
    MediaType,
    MessageKind,
    ParsedMessage,
    Platform,
    Poll,
    PollOption,
    SystemEvent,
    SystemEventKind,
    UnparsedLine,
    UnparsedReason,
)

__all__ = [
    "DEFAULT_MAX_TRANSCRIPT_BYTES",
    "AmbiguousDateOrder",
    "Attachment",
    "AttachmentNotInExport",
    "AttachmentStatus",
    "AttachmentsTooLarge",
    "Calendar",
    "Call",
    "ChatImport",
    "CorruptZip",
    "DateOrder",
    "DateOrderError",
    "DateOrderMismatch",
    "DateReading",
    "Dialect",
    "EmptyExport",
    "Entry",
    "ExportTooLarge",
    "ImplausibleYear",
    "ImportSummary",
    "Location",
    "MediaType",
    "MessageKind",
    "NoChatInZip",
    "NotAChatExport",
    "ParsedMessage",
    "Platform",
    "Poll",
    "PollOption",
    "ProgressCallback",
    "SystemEvent",
    "SystemEventKind",
    "UnknownDialect",
    "UnparsedLine",
    "UnparsedReason",
    "WhatsAppExport",
    "WhatsAppImportError",
    "chat_name_from_file",
    "default_attachment_limit",
    "open_export",
    "parse_export",
]
