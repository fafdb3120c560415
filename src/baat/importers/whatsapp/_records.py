"""The records an import produces.

All are frozen ``msgspec.Struct`` values: they are created once per message on the hot path,
where a frozen dataclass costs several times more per instance, and they encode straight to
JSON for a preview screen or ``--json`` output. ``gc=False`` is safe because frozen records
that hold only strings, numbers, datetimes, tuples and other such records cannot form cycles.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping

import msgspec

from ._errors import DateOrder


class Platform(enum.StrEnum):
    """Which app family wrote the header (docs/IMPORT.md, "Header dialects")."""

    ANDROID = "android"
    IOS = "ios"
    IOS_LEGACY = "ios-legacy"


class MessageKind(enum.StrEnum):
    """What a message written by a person carries."""

    TEXT = "text"
    ATTACHMENT = "attachment"  # a file, attached or omitted; see Attachment.status
    DELETED = "deleted"
    POLL = "poll"
    LOCATION = "location"
    CALL = "call"
    EMPTY = "empty"  # ``Name:`` with no body: view-once media or content the export skipped


class AttachmentStatus(enum.StrEnum):
    """Whether the bytes of an attachment can be had."""

    ATTACHED = "attached"  # the marker names a file and the export holds it
    OMITTED = "omitted"  # exported "without media": WhatsApp wrote a placeholder
    NOT_IN_EXPORT = "not-in-export"  # the marker names a file the export does not hold


class MediaType(enum.StrEnum):
    """The kind of file, from the placeholder wording or the file name."""

    IMAGE = "image"
    VIDEO = "video"
    VIDEO_NOTE = "video-note"
    AUDIO = "audio"
    VOICE_NOTE = "voice-note"
    STICKER = "sticker"
    GIF = "gif"
    DOCUMENT = "document"
    CONTACT = "contact"
    UNKNOWN = "unknown"


class SystemEventKind(enum.StrEnum):
    """Typed system lines (spec section 5); ``OTHER`` keeps any line we cannot type."""

    ENCRYPTION_NOTICE = "encryption-notice"
    GROUP_CREATED = "group-created"
    ADDED = "added"
    REMOVED = "removed"
    LEFT = "left"
    JOINED = "joined"
    ICON_CHANGED = "icon-changed"
    ICON_DELETED = "icon-deleted"
    SUBJECT_CHANGED = "subject-changed"
    DESCRIPTION_CHANGED = "description-changed"
    DISAPPEARING_TIMER = "disappearing-timer"
    SECURITY_CODE_CHANGED = "security-code-changed"
    NUMBER_CHANGED = "number-changed"
    ADMIN_CHANGED = "admin-changed"
    SETTINGS_CHANGED = "settings-changed"
    SERVICE_NOTICE = "service-notice"
    OTHER = "other"


class UnparsedReason(enum.StrEnum):
    """Why a line could not be placed in a record."""

    BEFORE_FIRST_MESSAGE = "before-first-message"
    INVALID_DATE_TIME = "invalid-date-time"  # header-shaped, but no such date or time


class _Record(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    pass


class Attachment(_Record, frozen=True, kw_only=True, gc=False):
    """A file a message carries.

    ``name`` is the file name from the marker (``None`` when the placeholder names none, as in
    ``<Media omitted>``). ``zip_entry`` is the entry to read when ``status`` is ``ATTACHED``.
    """

    name: str | None
    status: AttachmentStatus
    media_type: MediaType
    zip_entry: str | None = None
    size: int | None = None


class PollOption(_Record, frozen=True, kw_only=True, gc=False):
    text: str
    votes: int


class Poll(_Record, frozen=True, kw_only=True, gc=False):
    question: str
    options: tuple[PollOption, ...]


class Location(_Record, frozen=True, kw_only=True, gc=False):
    """A shared location; coordinates are read from the map link when it carries them."""

    url: str | None
    latitude: float | None
    longitude: float | None
    live: bool


class Call(_Record, frozen=True, kw_only=True, gc=False):
    """An iOS call line: ``Missed voice call. Tap to call back``, ``Voice call. 12 min``."""

    video: bool
    missed: bool
    detail: str | None


class ParsedMessage(_Record, frozen=True, kw_only=True, gc=False):
    """A message a person wrote.

    ``text`` is what a reader should see: the body as written for text (lines joined with
    ``\\n``), the caption for an attachment, the question for a poll, the link for a
    location, the call line for a call, and ``""`` for a deleted or empty message.
    ``header`` is the date/time header exactly as the file has it. ``timestamp`` is the
    header's wall time attached to the import's time zone. ``import_key`` identifies the
    message across re-imports (docs/IMPORT.md, "Import keys").
    """

    line_no: int
    end_line_no: int
    timestamp: _dt.datetime
    author: str
    kind: MessageKind
    text: str
    header: str
    import_key: str
    edited: bool = False
    attachment: Attachment | None = None
    poll: Poll | None = None
    location: Location | None = None
    call: Call | None = None

    @property
    def deleted(self) -> bool:
        return self.kind is MessageKind.DELETED


class SystemEvent(_Record, frozen=True, kw_only=True, gc=False):
    """A line WhatsApp wrote about the chat rather than a message someone sent.

    ``author`` is the name in the header when the line has one: iOS attributes notices to
    the chat or to the actor (spec section 4). ``actor`` is who did it as the text names them
    (``You`` stays as written), ``target`` whom it was done to, ``value`` the new subject,
    group name or timer, ``old_value`` the previous one when the text gives it.
    """

    line_no: int
    end_line_no: int
    timestamp: _dt.datetime
    kind: SystemEventKind
    text: str
    header: str
    import_key: str
    author: str | None = None
    actor: str | None = None
    target: str | None = None
    value: str | None = None
    old_value: str | None = None


Entry = ParsedMessage | SystemEvent


class UnparsedLine(_Record, frozen=True, kw_only=True, gc=False):
    line_no: int
    text: str
    reason: UnparsedReason


class Dialect(_Record, frozen=True, kw_only=True, gc=False):
    """The header format of one export, detected once and then applied to every line."""

    platform: Platform
    date_separator: str
    comma: bool
    klo: bool
    time_separator: str
    seconds: bool
    clock12: bool
    date_order: DateOrder | None = None
    # What settled the date order ("valid dates: line 3 …", "attachment names: …",
    # "progression: …", "given"), for the user to check.
    date_order_evidence: str | None = None
    calendar: str = "gregorian"


class ImportSummary(_Record, frozen=True, kw_only=True, gc=False):
    """Counts for a preview screen. Nothing the file holds is left out of it.

    Every line ends up in a record or in ``unparsed``; ``ambiguous_local_times`` and
    ``nonexistent_local_times`` list the header lines that fell in a DST change
    (docs/IMPORT.md, "Time zones").
    """

    lines: int
    messages: int
    system_events: int
    authors: tuple[str, ...]
    messages_by_author: Mapping[str, int]
    messages_by_kind: Mapping[MessageKind, int]
    system_events_by_kind: Mapping[SystemEventKind, int]
    first_timestamp: _dt.datetime | None
    last_timestamp: _dt.datetime | None
    edited: int
    attachments_linked: int
    attachments_not_in_export: int
    attachments_omitted: int
    unlinked_files: tuple[str, ...]
    unparsed: tuple[UnparsedLine, ...]
    ambiguous_local_times: tuple[int, ...]
    nonexistent_local_times: tuple[int, ...]


class ChatImport(_Record, frozen=True, kw_only=True, gc=False):
    """The result of parsing one export: its records in file order and a summary."""

    chat_name: str | None
    dialect: Dialect
    tz: str
    entries: tuple[Entry, ...]
    summary: ImportSummary

    @property
    def messages(self) -> tuple[ParsedMessage, ...]:
        return tuple(e for e in self.entries if isinstance(e, ParsedMessage))

    @property
    def system_events(self) -> tuple[SystemEvent, ...]:
        return tuple(e for e in self.entries if isinstance(e, SystemEvent))
