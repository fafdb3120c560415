"""What a person's message carries: text, an attachment, a poll, a location, a call (spec 5).

Markers are matched on a copy with direction marks removed (iOS puts an LRM before
``<attached:`` and ``This message was deleted.``); the text kept for display is the body as
written. Only the wordings the spec records are recognised, plus the obvious sibling forms
(other media types in the same sentence); anything else stays text, which loses nothing.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._records import Call, Location, MediaType, MessageKind, Poll, PollOption
from ._text import LEADING_MARKS, without_marks
from ._wordings import (
    deleted_bodies,
    missed_call_starts,
    omitted_bodies,
    option_prefixes,
    poll_heads,
    view_once_bodies,
)


class FileMarker(NamedTuple):
    """An attachment as the marker describes it, before it is looked up in the export."""

    name: str | None
    omitted: bool
    media_type: MediaType


class Body(NamedTuple):
    kind: MessageKind
    text: str
    edited: bool
    file: FileMarker | None
    extra: Poll | Location | Call | None


# Whole-body notices from every language of the table (``_wordings``), case-folded:
# deleted messages, media placeholders and view-once messages.
_DELETED = deleted_bodies()
_OMITTED = omitted_bodies()
_VIEW_ONCE = view_once_bodies()
# Placeholders are short; a longer first line skips the look-up (and its casefold).
_NOTICE_MAX = 48
_MISSED = missed_call_starts()
_POLL_HEADS = poll_heads()
# The last three characters (case-folded) of every such notice: a message that does not
# end like one skips the look-up, which otherwise costs a translate and a casefold.
_NOTICE_ENDS = frozenset(
    k[-3:] for k in (*_DELETED, *_OMITTED, *_VIEW_ONCE, *(c.casefold() for c in _MISSED))
)
_VIDEO_WORDS = ("video", "vídeo", "vidéo", "видео", "görüntülü", "वीडियो", "فيديو", "تصویری")
_EDITED = (" <This message was edited>", "<This message was edited>")

# Cheap guards: only a first line with one of these ends or starts can be a marker, so
# ordinary text skips every regex below.
_MARKER_ENDS = (")", ">", "omitted", "weggelassen", "edilmedi")
_MARKER_STARTS = (
    "location:",
    "Location:",
    "Standort:",
    "live location",
    "Live location",
    "POLL:",
    "Missed ",
    "Voice call",
    "Video call",
    "voice call",
    "video call",
    "Group voice call",
    "Group video call",
)

_FILE_ATTACHED = re.compile(r"(.+?) \((?:file attached|Datei angehängt|archivo adjunto)\)")
_IOS_ATTACHED = re.compile(r"<(?:attached|Anhang): (.+)>")
_TR_ATTACHED = re.compile(r"<(.+) eklendi>")
_OLD_IOS_ATTACHED = re.compile(r"(\S.*?) ?<attached>")
_ANDROID_OMITTED = {
    "<Media omitted>": MediaType.UNKNOWN,
    "<Video message omitted>": MediaType.VIDEO_NOTE,
    "<Video note omitted>": MediaType.VIDEO_NOTE,
    "<Medien ausgeschlossen>": MediaType.UNKNOWN,
    "<رسانه حذف شد>": MediaType.UNKNOWN,
}
_IOS_OMITTED = re.compile(r"(.+) (?:omitted|weggelassen|dahil edilmedi)")
_OMITTED_WORDS = {
    "image": MediaType.IMAGE,
    "photo": MediaType.IMAGE,
    "audio": MediaType.AUDIO,
    "video": MediaType.VIDEO,
    "gif": MediaType.GIF,
    "sticker": MediaType.STICKER,
    "contact card": MediaType.CONTACT,
    "video message": MediaType.VIDEO_NOTE,
    "video note": MediaType.VIDEO_NOTE,
    "voice message": MediaType.VOICE_NOTE,
    "document": MediaType.DOCUMENT,
    "bild": MediaType.IMAGE,
    "kontaktkarte": MediaType.CONTACT,
    "dokument": MediaType.DOCUMENT,
    "görüntü": MediaType.IMAGE,
    "ses": MediaType.AUDIO,
    "belge": MediaType.DOCUMENT,
}
# ``Invoice_2018.pdf • 2 pages document omitted``: the name, then optional page count.
_DOCUMENT_OMITTED = re.compile(r"(.+?)(?: • \d+ pages?)? document omitted")
_LOCATION = re.compile(r"(?:location|Location|Standort): (\S+)")
_LIVE_LOCATION = frozenset({"live location shared", "Live location shared"})
_COORDS = re.compile(r"(?:[?&]q=|@)(-?\d{1,3}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)")
_CALL = re.compile(
    r"(?P<missed>Missed )?(?:[Gg]roup )?(?P<media>[Vv]oice|[Vv]ideo) call(?:\. (?P<detail>.+))?"
)
_POLL_OPTION = re.compile(
    "(?:" + "|".join(map(re.escape, option_prefixes())) + r") (.*?)(?: \((\d+) [^\d()]+\))?"
)

# File-name conventions (spec 1): iOS ``00000003-PHOTO-…``, old iOS ``…-PHOTO-…``, Android
# ``IMG-``/``VID-``/``PTT-``/``STK-`` prefixes; otherwise the extension decides.
_NAME_TYPES = (
    ("PHOTO", MediaType.IMAGE),
    ("IMG-", MediaType.IMAGE),
    ("VIDEO", MediaType.VIDEO),
    ("VID-", MediaType.VIDEO),
    ("PTT-", MediaType.VOICE_NOTE),
    ("AUDIO", MediaType.AUDIO),
    ("AUD-", MediaType.AUDIO),
    ("STICKER", MediaType.STICKER),
    ("STK-", MediaType.STICKER),
    ("GIF", MediaType.GIF),
)
_EXT_TYPES = {
    "jpg": MediaType.IMAGE,
    "jpeg": MediaType.IMAGE,
    "png": MediaType.IMAGE,
    "heic": MediaType.IMAGE,
    "webp": MediaType.STICKER,
    "mp4": MediaType.VIDEO,
    "mov": MediaType.VIDEO,
    "3gp": MediaType.VIDEO,
    "opus": MediaType.AUDIO,
    "m4a": MediaType.AUDIO,
    "mp3": MediaType.AUDIO,
    "aac": MediaType.AUDIO,
    "gif": MediaType.GIF,
    "vcf": MediaType.CONTACT,
}


def media_type_of(name: str) -> MediaType:
    """Guess the media type from a WhatsApp file name."""
    ext = name.rpartition(".")[2].lower()
    if ext == "vcf":
        return MediaType.CONTACT
    upper = name.upper()
    for token, media in _NAME_TYPES:
        if token in upper:
            return media
    return _EXT_TYPES.get(ext, MediaType.DOCUMENT)


def classify(body: str) -> Body | None:
    """Sort one message body (all its lines joined with ``\\n``) into a kind.

    Returns ``None`` for plain, unedited text, the common case, so the caller can build that
    record without an intermediate value.
    """
    edited = False
    if body.endswith(">") and body.endswith(_EDITED):
        # Android appends the marker to the last line of the body (spec 5, "Edited").
        edited = True
        body = body.removesuffix(_EDITED[1]).rstrip()
    if "\n" in body:
        first, _, rest = body.partition("\n")
    else:
        first, rest = body, ""
    head = first.lstrip(LEADING_MARKS)
    if not head:
        if not rest:
            return Body(MessageKind.EMPTY, "", edited, None, None)
    elif (
        not rest
        and len(head) <= _NOTICE_MAX
        and head[-3:].casefold() in _NOTICE_ENDS
        and (notice := _notice(head, edited))
    ):
        return notice
    elif head.endswith(_MARKER_ENDS) or head.startswith(_MARKER_STARTS) or head in _POLL_HEADS:
        special = _classify_marker(without_marks(head).rstrip(), rest, edited)
        if special is not None:
            return special
    return Body(MessageKind.TEXT, body, True, None, None) if edited else None


def _notice(head: str, edited: bool) -> Body | None:
    """A one-line notice of the table: deleted, a media placeholder, view-once, missed call."""
    key = without_marks(head).strip().casefold()
    if key in _DELETED:
        return Body(MessageKind.DELETED, "", edited, None, None)
    media = _OMITTED.get(key)
    if media is not None:
        return Body(MessageKind.ATTACHMENT, "", edited, FileMarker(None, True, media), None)
    if key in _VIEW_ONCE:
        return Body(MessageKind.EMPTY, "", edited, None, None)
    plain = without_marks(head).strip()
    if plain.startswith(_MISSED) and not plain.startswith("Missed "):
        # English calls keep their detail ("Tap to call back"); see _CALL below.
        video = any(w in key for w in _VIDEO_WORDS)
        call = Call(video=video, missed=True, detail=None)
        return Body(MessageKind.CALL, plain, edited, None, call)
    return None


def _classify_marker(head: str, rest: str, edited: bool) -> Body | None:
    file = _file_marker(head)
    if file is not None:
        # Android puts the caption on the lines after the marker (spec 5, "Attachment").
        return Body(MessageKind.ATTACHMENT, rest, edited, file, None)
    if head in _POLL_HEADS:
        question, poll = _poll(rest)
        return Body(MessageKind.POLL, question, edited, None, poll)
    m = _LOCATION.fullmatch(head)
    if m is not None:
        url = m[1]
        c = _COORDS.search(url)
        lat, lon = (float(c[1]), float(c[2])) if c is not None else (None, None)
        location = Location(url=url, latitude=lat, longitude=lon, live=False)
        return Body(MessageKind.LOCATION, url, edited, None, location)
    if head in _LIVE_LOCATION:
        location = Location(url=None, latitude=None, longitude=None, live=True)
        return Body(MessageKind.LOCATION, rest, edited, None, location)
    if not rest:
        m = _CALL.fullmatch(head)
        if m is not None:
            call = Call(
                video=m["media"].lower() == "video", missed=bool(m["missed"]), detail=m["detail"]
            )
            return Body(MessageKind.CALL, head, edited, None, call)
    return None


def _file_marker(head: str) -> FileMarker | None:
    last = head[-1]
    if last == ")":
        m = _FILE_ATTACHED.fullmatch(head)
        if m is not None:
            return FileMarker(m[1], False, media_type_of(m[1]))
        return None
    if last == ">":
        media = _ANDROID_OMITTED.get(head)
        if media is not None:
            return FileMarker(None, True, media)
        m = _IOS_ATTACHED.fullmatch(head) or _TR_ATTACHED.fullmatch(head)
        if m is None:
            m = _OLD_IOS_ATTACHED.fullmatch(head)
        if m is not None:
            name = m[1].strip()
            return FileMarker(name, False, media_type_of(name))
        return None
    m = _DOCUMENT_OMITTED.fullmatch(head)
    if m is not None:
        return FileMarker(m[1], True, MediaType.DOCUMENT)
    m = _IOS_OMITTED.fullmatch(head)
    if m is not None:
        media = _OMITTED_WORDS.get(m[1].lower())
        if media is not None:
            return FileMarker(None, True, media)
    return None


def _poll(rest: str) -> tuple[str, Poll]:
    # ``POLL:`` / question line(s) / ``OPTION: text (N votes)`` lines (spec 5, "Poll").
    question: list[str] = []
    options: list[PollOption] = []
    for line in rest.split("\n"):
        m = _POLL_OPTION.fullmatch(line)
        if m is not None:
            options.append(PollOption(text=m[1], votes=int(m[2] or 0)))
        elif not options:
            question.append(line)
        else:
            # A line after the options began: the previous option's text ran on.
            last = options[-1]
            options[-1] = PollOption(text=last.text + "\n" + line, votes=last.votes)
    text = "\n".join(question)
    return text, Poll(question=text, options=tuple(options))
